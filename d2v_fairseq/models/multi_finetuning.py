"""Fine-tuning data2vec 2.0 (``data2vec_multi``) checkpoints, under the names and layouts of
fairseq's reference models, so that released fine-tuned checkpoints load here and ours load there:

* ``mae_image_classification``: the pre-trained model (``model.*``), mean of the patch tokens,
  LayerNorm (``fc_norm``), a linear ``head``; images (B, 3, S, S) -> logits (B, classes), read by
  this package's ``d2v_image_classification`` task and criterion (mixup, cutmix, label
  smoothing happen in the task's batches);
* ``data2vec_text_classification``: the pre-trained model (``model.*``) and RoBERTa's
  classification heads (``classification_heads.NAME.*``), for fairseq's ``sentence_prediction``
  task with ``d2v2_multi: true`` (GLUE).

Speech fine-tunes through fairseq's own ``wav2vec_ctc`` (``w2v_path``), which knows
``data2vec_multi``; AudioSet tagging through ``data2vec_audio_classification``.

The pre-trained model is rebuilt from the config saved with the fine-tuned model
(``pretrained_model_args``), so a fine-tuned checkpoint loads without its pre-trained one; a
text model takes its dictionary from the fine-tuning task, not from the pre-training data folder
the released files name (fairseq issue #5037).
"""

import logging
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

import torch
from fairseq import checkpoint_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model
from fairseq.models.roberta.model import RobertaClassificationHead
from omegaconf import II, MISSING, OmegaConf, open_dict
from torch import nn

from ..modules.ema import EMA_KEY
from .data2vec_multi import Data2VecMultiModel
from .multi_config import Modality

logger = logging.getLogger(__name__)


def pretrained_multi(cfg, modality: Modality, task=None, overrides: Optional[dict] = None):
    """(data2vec_multi model of ``modality`` for fine-tuning, the pre-trained checkpoint's state or
    None). Reads ``cfg.model_path`` on a first build (storing its config in
    ``cfg.pretrained_model_args``); a rebuild from a fine-tuned checkpoint uses that config."""
    state = None
    if cfg.pretrained_model_args is None:
        if not os.path.isfile(cfg.model_path):
            raise FileNotFoundError(f"model.model_path={cfg.model_path}: no such file (a fine-tuned checkpoint "
                                    "without its pre-trained config reads it from there)")
        state = checkpoint_utils.load_checkpoint_to_cpu(cfg.model_path, {})
        saved = state["cfg"]
        name = saved.model.get("_name")
        if name != "data2vec_multi":
            raise ValueError(f"model.model_path={cfg.model_path}: a {name} checkpoint, not data2vec_multi")
        with open_dict(saved):
            saved.criterion = None
            saved.lr_scheduler = None
            saved.optimizer = None
        with open_dict(cfg):
            cfg.pretrained_model_args = saved
    args = cfg.pretrained_model_args
    with open_dict(args):
        for key, value in (overrides or {}).items():
            OmegaConf.update(args.model, key, value, force_add=True)
        if args.model.get("supported_modality") is None:
            args.model.supported_modality = modality.name
    model = Data2VecMultiModel.build_model(args.model, task)
    model.remove_pretraining_modules(modality=modality.name)  # before loading: decoder keys are then ignored
    if state is not None and not cfg.no_pretrained_weights:
        model.load_state_dict({k: v for k, v in state["model"].items() if k != EMA_KEY}, strict=True)
        logger.info(f"loaded the pre-trained student of {cfg.model_path}")
    return model


def keep_in_trainer_config(task, pretrained_model_args) -> None:
    """Writes the pre-trained config into the trainer's own model config, which checkpoints save,
    so that a fine-tuned checkpoint loads without its pre-trained one. fairseq builds a model
    from a merged copy of its config, and fairseq's ``sentence_prediction`` task (unlike this
    package's image task, ``keep_resolved_config``) does not write it back: the trainer's model
    config is reached as the sibling of the task's config in the one config both belong to."""
    root = task.cfg._get_parent() if hasattr(task, "cfg") and hasattr(task.cfg, "_get_parent") else None
    model_cfg = root.get("model") if root is not None and hasattr(root, "get") else None
    if model_cfg is not None and model_cfg.get("pretrained_model_args", "absent") is None:
        with open_dict(model_cfg):
            model_cfg.pretrained_model_args = pretrained_model_args


def no_weight_decay_for_vectors(module: nn.Module) -> None:
    """Biases and norms: weight decay 0 (fairseq's composite optimizer reads ``optim_overrides``)."""
    for name, p in module.named_parameters():
        if p.dim() == 1 or name.endswith(".bias"):
            p.optim_overrides = {"optimizer": {"weight_decay_scale": 0}}


class PredictionMode(Enum):
    MEAN_POOLING = 1
    CLS_TOKEN = 2
    LIN_SOFTMAX = 3


@dataclass
class MaeImageClassificationConfig(FairseqDataclass):
    """The reference's fields (names, defaults); mixup and smoothing belong to the task here."""

    model_path: str = field(default=MISSING, metadata={"help": "the pre-trained data2vec_multi checkpoint"})
    no_pretrained_weights: bool = field(default=False, metadata={"help": "random init (the baseline)"})
    linear_classifier: bool = field(default=False, metadata={"help": "train the head only (linear probe)"})
    num_classes: int = field(default=1000, metadata={"help": "classes; <= 0: the task's"})
    mixup: float = 0.8
    cutmix: float = 1.0
    label_smoothing: float = 0.1
    drop_path_rate: float = field(default=0.1, metadata={"help": "stochastic depth of the last block"})
    layer_decay: float = field(default=0.65, metadata={"help": "layer-wise lr decay"})
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    pretrained_model_args: Any = None
    data: str = II("task.data")
    norm_eps: Optional[float] = None
    remove_alibi: bool = False
    encoder_dropout: float = 0
    post_mlp_drop: float = 0
    attention_dropout: float = 0
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    layerdrop: float = 0.0
    prenet_layerdrop: float = 0
    prenet_dropout: float = 0
    use_fc_norm: bool = True
    prediction_mode: PredictionMode = PredictionMode.MEAN_POOLING
    no_decay_blocks: bool = True


@register_model("mae_image_classification", dataclass=MaeImageClassificationConfig)
class MaeImageClassificationModel(BaseFairseqModel):
    """A data2vec 2.0 image model + pooling + LayerNorm + linear head: (B, 3, S, S) -> (B, classes)."""

    def __init__(self, cfg: MaeImageClassificationConfig, model: Data2VecMultiModel):
        super().__init__()
        self.cfg = cfg
        self.model = model
        dim = model.cfg.embed_dim
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6) if cfg.use_fc_norm else None
        self.head = nn.Linear(dim, cfg.num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        if cfg.linear_classifier:
            model.requires_grad_(False)
        no_weight_decay_for_vectors(self)
        self.set_layer_decay(cfg.layer_decay)

    @classmethod
    def build_model(cls, cfg: MaeImageClassificationConfig, task=None):
        if cfg.num_classes <= 0 and task is not None and hasattr(task, "num_classes"):
            with open_dict(cfg):
                cfg.num_classes = task.num_classes()
        if cfg.remove_alibi:
            raise ValueError("model.remove_alibi: not supported (the released image models use no ALiBi)")
        overrides = {k: getattr(cfg, k) for k in ("encoder_dropout", "post_mlp_drop", "attention_dropout",
                                                   "activation_dropout", "dropout_input", "layerdrop")}
        overrides.update({"end_drop_path_rate": cfg.drop_path_rate,
                          "modalities.image.prenet_layerdrop": cfg.prenet_layerdrop,
                          "modalities.image.prenet_dropout": cfg.prenet_dropout})
        if cfg.norm_eps is not None:
            overrides["norm_eps"] = cfg.norm_eps
        model = pretrained_multi(cfg, Modality.IMAGE, None, overrides)
        return cls(cfg, model)

    def blocks(self):
        encoder = self.model.modality_encoders["IMAGE"]
        return list(encoder.context_encoder.blocks) + list(self.model.blocks)

    def set_layer_decay(self, decay: float) -> None:
        """Block i (pre-net first) learns at decay^(L + 1 - (i + 1)) of the lr, the embeddings at
        decay^(L + 1), the norms and head at the full lr (BEiT's layer-wise decay)."""
        if decay >= 1 or decay <= 0:
            return
        blocks = self.blocks()
        top = len(blocks) + 1
        in_block = {id(p): i + 1 for i, b in enumerate(blocks) for p in b.parameters()}
        for name, p in self.model.named_parameters():
            layer = in_block.get(id(p), 0 if name.startswith("modality_encoders.") else top)
            overrides = getattr(p, "optim_overrides", {"optimizer": {}})
            overrides["optimizer"]["lr_scale"] = decay ** (top - layer)
            p.optim_overrides = overrides

    def features(self, source: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, C) of images (B, 3, S, S)."""
        mode = self.cfg.prediction_mode
        mode = PredictionMode[mode] if isinstance(mode, str) else mode
        x = self.model.extract_features(source, mode="IMAGE", remove_extra_tokens=mode != PredictionMode.CLS_TOKEN)["x"]
        if mode == PredictionMode.CLS_TOKEN:
            x = x[:, 0]
        elif mode == PredictionMode.MEAN_POOLING:
            x = x.mean(dim=1)
        else:
            raise ValueError(f"model.prediction_mode={mode.name}: MEAN_POOLING or CLS_TOKEN")
        return self.fc_norm(x) if self.fc_norm is not None else x

    def forward(self, source: Optional[torch.Tensor] = None, imgs: Optional[torch.Tensor] = None, **unused):
        """Images (B, 3, S, S) (``source``, or the reference's ``imgs``) -> logits (B, classes)."""
        return self.head(self.features(source if source is not None else imgs))


@dataclass
class Data2VecTextClassificationConfig(FairseqDataclass):
    """The reference's fields and defaults."""

    pooler_dropout: float = 0.0
    pooler_activation_fn: str = "tanh"
    quant_noise_pq: int = 0
    quant_noise_pq_block_size: int = 8
    spectral_norm_classification_head: bool = False
    model_path: str = field(default=MISSING, metadata={"help": "the pre-trained data2vec_multi checkpoint"})
    no_pretrained_weights: bool = field(default=False, metadata={"help": "random init (the baseline)"})
    pretrained_model_args: Any = None
    # this package's own (the reference reads the first token): what the head reads
    classifier_pooling: str = field(default="cls", metadata={"help": "cls: the <s> token's features; mean: the "
                                                                      "mean over the sentence's tokens"})


@register_model("data2vec_text_classification", dataclass=Data2VecTextClassificationConfig)
class Data2VecTextClassificationModel(BaseFairseqModel):
    """A data2vec 2.0 text model + RoBERTa classification heads for ``sentence_prediction``."""

    def __init__(self, cfg: Data2VecTextClassificationConfig, model: Data2VecMultiModel):
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.classification_heads = nn.ModuleDict()

    @classmethod
    def build_model(cls, cfg: Data2VecTextClassificationConfig, task=None):
        if task is None or getattr(task, "source_dictionary", None) is None:
            raise ValueError("data2vec_text_classification needs a task with the pre-training dictionary "
                             "(sentence_prediction with d2v2_multi: true)")
        model = pretrained_multi(cfg, Modality.TEXT, task)
        keep_in_trainer_config(task, cfg.pretrained_model_args)
        return cls(cfg, model)

    def register_classification_head(self, name: str, num_classes: int = None, inner_dim: int = None, **kwargs):
        dim = self.model.cfg.embed_dim
        self.classification_heads[name] = RobertaClassificationHead(
            input_dim=dim, inner_dim=inner_dim or dim, num_classes=num_classes,
            activation_fn=self.cfg.pooler_activation_fn, pooler_dropout=self.cfg.pooler_dropout,
            q_noise=self.cfg.quant_noise_pq, qn_block_size=self.cfg.quant_noise_pq_block_size,
            do_spectral_norm=self.cfg.spectral_norm_classification_head)

    def forward(self, source, id=None, padding_mask=None, features_only: bool = True,
                remove_extra_tokens: bool = True, classification_head_name: Optional[str] = None):
        """Tokens (B, T) -> (logits (B, classes) from the first token's features, encoder output)."""
        out = self.model.extract_features(source, mode="TEXT", padding_mask=padding_mask,
                                          remove_extra_tokens=remove_extra_tokens)
        x = out["x"]
        if self.cfg.classifier_pooling == "mean":
            keep = torch.ones(x.shape[:2], device=x.device) if padding_mask is None else (~padding_mask).float()
            x = ((x * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp_min(1)).unsqueeze(1)  # (B, 1, C)
        elif self.cfg.classifier_pooling != "cls":
            raise ValueError(f"model.classifier_pooling={self.cfg.classifier_pooling}: cls or mean")
        return self.classification_heads[classification_head_name](x), out
