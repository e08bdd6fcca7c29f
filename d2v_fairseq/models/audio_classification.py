"""``data2vec_audio_classification``: multi-label audio tagging (AudioSet) over a pre-trained
``data2vec_audio`` (v1) or ``data2vec2_audio`` (2.0).

The pre-trained model's config and student weights come from ``model_path`` (like
``wav2vec_ctc``'s ``w2v_path``); fine-tuning masks its features (mask_prob 0.6, spans of 5),
drops layers (0.1) and keeps the conv front end frozen. A linear layer gives per-frame class
logits, pooled over the clip (``prediction_mode``: ``lin_softmax``, ``mean`` or ``max``). In
training, waveforms are mixed in pairs (source mixup: weight r ~ U[0.5, 1]) and, with
``label_mixup``, their targets with the same r. Defaults: fairseq's
``examples/data2vec/config/audio/classification/base_classification.yaml``.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.models import BaseFairseqModel, register_model
from omegaconf import open_dict
from torch import nn

from .pretrained import PretrainedEncoderConfig, pretrained_for_finetuning
from ..modules.mixup import mix_sources
from ..modules.pooling import POOLING, pool_frames
from ..modules.seeding import seeded_generator
from .data2vec2_audio import Data2Vec2AudioModel
from .data2vec_audio import Data2VecAudioModel
from ..modules.ema import EMA_KEY
from .data2vec_multi import Data2VecMultiModel

# the speech encoders a tagger can start from, by the model name their checkpoints carry
ENCODERS = {"data2vec_audio": Data2VecAudioModel, "data2vec2_audio": Data2Vec2AudioModel,
            "data2vec_multi": Data2VecMultiModel}

logger = logging.getLogger(__name__)

# fine-tuning values written into the pre-trained model's config
FINETUNING_FIELDS = ("mask_prob", "mask_length", "mask_channel_prob", "mask_channel_length", "dropout",
                     "activation_dropout", "attention_dropout", "feature_grad_mult")


@dataclass
class AudioClassificationConfig(PretrainedEncoderConfig):
    """Fine-tuning a pre-trained ``data2vec_audio``, ``data2vec2_audio`` or ``data2vec_multi`` to tag clips (the
    release's AudioSet values)."""

    apply_mask: bool = field(default=True, metadata={"help": "mask features in fine-tuning"})
    mask_prob: float = field(default=0.6, metadata={"help": "span mask probability in fine-tuning"})
    mask_length: int = field(default=5, metadata={"help": "span length in fine-tuning"})
    mask_channel_prob: float = field(default=0.0, metadata={"help": "channel mask probability"})
    mask_channel_length: int = field(default=64, metadata={"help": "channel mask length"})
    layerdrop: float = field(default=0.1, metadata={"help": "probability of dropping a block"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the blocks"})
    activation_dropout: float = field(default=0.1, metadata={"help": "dropout after the FFN activation"})
    attention_dropout: float = field(default=0.2, metadata={"help": "dropout on attention weights"})
    final_dropout: float = field(default=0.0, metadata={"help": "dropout before the class projection"})
    feature_grad_mult: float = field(default=0.0, metadata={"help": "0 freezes the conv front end"})
    label_mixup: bool = field(default=True, metadata={"help": "mix targets with the sources' weight"})
    source_mixup: float = field(default=0.5, metadata={"help": "mix waveforms, weight r ~ U[this, 1]; < 0: off"})
    prediction_mode: ChoiceEnum(list(POOLING)) = field(  # type: ignore[valid-type]
        default="lin_softmax", metadata={"help": "frame pooling: lin_softmax, mean or max"}
    )


@register_model("data2vec_audio_classification", dataclass=AudioClassificationConfig)
class Data2VecAudioClassificationModel(BaseFairseqModel):
    """Pre-trained data2vec_audio -> per-frame class logits -> pooled clip logits (B, classes)."""

    def __init__(self, cfg: AudioClassificationConfig, encoder: Data2VecAudioModel):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.final_dropout = nn.Dropout(cfg.final_dropout)
        width = encoder.cfg.embed_dim if isinstance(encoder, Data2VecMultiModel) else encoder.cfg.encoder_embed_dim
        self.proj = nn.Linear(width, cfg.num_classes)
        # start at the prior of a clip holding one class in C (p = 1/C), not at p = 0.5: with
        # many classes and few positives, the first updates would otherwise push every logit
        # down through the encoder and flatten its features before any class is learned
        nn.init.constant_(self.proj.bias, -math.log(max(cfg.num_classes - 1, 1)))
        self.num_updates = 0

    @classmethod
    def build_model(cls, cfg: AudioClassificationConfig, task=None):
        """Builds the encoder from ``model_path``'s config with the fine-tuning values and, unless
        ``no_pretrained_weights``, loads its student; the teacher and regression head are dropped."""
        state = pretrained_for_finetuning(cfg, tuple(ENCODERS), task)
        if cfg.pretrained_args._name == "data2vec_multi":
            return cls(cfg, cls.multi_encoder(cfg, state))
        with open_dict(cfg):
            for key in FINETUNING_FIELDS:
                cfg.pretrained_args[key] = cfg[key]
            cfg.pretrained_args.encoder_layerdrop = cfg.layerdrop
            cfg.pretrained_args.require_same_masks = False  # clips of a batch differ in length
        encoder = ENCODERS[cfg.pretrained_args._name](cfg.pretrained_args)
        if state is not None and not cfg.no_pretrained_weights:
            encoder.load_state_dict(state["model"], strict=True)
            logger.info(f"loaded the pre-trained student of {cfg.model_path}")
        encoder.remove_pretraining_modules()
        return cls(cfg, encoder)

    @staticmethod
    def multi_encoder(cfg: AudioClassificationConfig, state) -> Data2VecMultiModel:
        """A data2vec 2.0 (data2vec_multi) speech encoder with the fine-tuning values."""
        args = cfg.pretrained_args
        with open_dict(args):
            audio = args.modalities.audio
            audio.mask_prob, audio.mask_length = cfg.mask_prob, cfg.mask_length
            audio.mask_channel_prob, audio.mask_channel_length = cfg.mask_channel_prob, cfg.mask_channel_length
            audio.local_grad_mult = cfg.feature_grad_mult
            audio.prenet_layerdrop, audio.prenet_dropout = cfg.layerdrop, cfg.dropout
            args.encoder_dropout, args.post_mlp_drop = cfg.dropout, cfg.dropout
            args.activation_dropout, args.attention_dropout = cfg.activation_dropout, cfg.attention_dropout
            args.layerdrop = cfg.layerdrop
        encoder = Data2VecMultiModel.build_model(args)
        encoder.remove_pretraining_modules(modality="AUDIO")
        if state is not None and not cfg.no_pretrained_weights:
            encoder.load_state_dict({k: v for k, v in state["model"].items() if k != EMA_KEY}, strict=True)
            logger.info(f"loaded the pre-trained student of {cfg.model_path}")
        return encoder

    def set_num_updates(self, num_updates: int) -> None:
        super().set_num_updates(num_updates)
        self.num_updates = num_updates

    def forward(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                target: Optional[torch.Tensor] = None, sample_ids=None, **unused) -> Dict[str, torch.Tensor]:
        """Waveforms (B, S) -> {"logits": (B, classes), "target": the (mixed) targets (B, classes)}."""
        cfg = self.cfg
        if self.training and cfg.source_mixup >= 0:
            generator = seeded_generator(cfg.seed, self.num_updates, "mixup")
            if target is None:
                target = source.new_zeros(source.size(0), cfg.num_classes)
            source, mixed_target, _, _ = mix_sources(source, target, cfg.source_mixup, generator)
            if cfg.label_mixup:
                target = mixed_target
        mask = cfg.apply_mask and self.training
        if isinstance(self.encoder, Data2VecMultiModel):
            features = self.encoder.extract_features(source, mode="AUDIO", padding_mask=padding_mask, mask=mask)
        else:
            features = self.encoder.extract_features(source, padding_mask, mask=mask, sample_ids=sample_ids)
        frames = self.proj(self.final_dropout(features["x"]))  # (B, T, classes)
        return {"logits": pool_frames(frames, features["padding_mask"], cfg.prediction_mode), "target": target}
