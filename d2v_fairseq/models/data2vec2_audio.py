"""``data2vec2_audio``: data2vec 2.0 for speech (Baevski et al., 2022b, "Efficient
Self-supervised Learning with Contextualized Target Representations for Vision, Speech and Language").

The speech model of v1 (same conv front end, blocks, parameter names and fine-tuning path),
trained the 2.0 way:

* the conv front end runs once per sample, then the batch is repeated ``clone_batch`` times,
  each copy with its own mask of exactly ``int(mask_prob * T)`` frames (spans of ``mask_length``);
* the student zeroes the masked frames, runs the positional conv over the whole sequence and
  encodes only the kept frames (ALiBi biases keep their original distances);
* a light conv decoder restores the full length from the kept outputs plus N(0, mask_noise_std)
  at the masked frames; the loss is taken at masked frames only;
* the teacher encodes each original sample once; its targets (v1's target builder: top-K
  feed-forward outputs, instance-normalized, averaged) are repeated for every copy.

In fine-tuning (``features_only``) the whole sequence goes through the blocks, as in v1,
with masked frames zeroed rather than replaced by an embedding.
"""

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from fairseq.models import register_model
from torch import nn

from ..modules.alibi import AlibiBias
from ..modules.conv_decoder import ConvDecoder1d
from ..modules.masking import exact_span_mask
from .config import shared_default
from .data2vec_audio import Data2VecAudioConfig, Data2VecAudioModel


@dataclass
class Data2Vec2AudioConfig(Data2VecAudioConfig):
    """v1's speech fields plus 2.0's; the defaults are the released speech Base recipe."""

    clone_batch: int = field(default=8, metadata={"help": "masked copies of each sample per teacher pass"})
    mask_prob: float = field(default=0.5, metadata={"help": "fraction of frames masked in every copy (exactly)"})
    mask_length: int = field(default=5, metadata={"help": "frames per mask span"})
    mask_noise_std: float = field(
        default=0.01, metadata={"help": "std of the noise the decoder sees at masked frames"}
    )
    decoder_dim: int = field(default=384, metadata={"help": "channels of the conv decoder"})
    decoder_layers: int = field(default=4, metadata={"help": "conv layers of the decoder"})
    decoder_kernel: int = field(default=7, metadata={"help": "kernel size of the decoder convs (odd)"})
    decoder_groups: int = field(default=16, metadata={"help": "groups of the decoder convs"})
    decoder_input_dropout: float = field(
        default=0.1, metadata={"help": "dropout on the student's outputs before the decoder"}
    )
    use_alibi: bool = field(
        default=True, metadata={"help": "add ALiBi attention biases (the release's speech models do)"}
    )
    alibi_scale_init: float = field(default=1.0, metadata={"help": "initial per-head ALiBi scale"})
    learned_alibi_scale: bool = field(default=True, metadata={"help": "learn the per-head ALiBi scale"})
    # 2.0 release values that differ from v1's
    ema_end_decay: float = shared_default("ema_end_decay", 0.99999)
    ema_anneal_end_step: int = shared_default("ema_anneal_end_step", 75000)
    # false: the teacher keeps its own EMA positional conv (the 2.0 release)
    ema_layers_only: bool = shared_default("ema_layers_only", False)
    conv_pos_groups: int = field(default=16, metadata={"help": "groups of the positional conv"})


@register_model("data2vec2_audio", dataclass=Data2Vec2AudioConfig)
class Data2Vec2AudioModel(Data2VecAudioModel):
    """data2vec 2.0 speech model; see the module docstring."""

    uses_mask_embedding = False
    uses_linear_head = False

    def __init__(self, cfg: Data2Vec2AudioConfig):
        super().__init__(cfg)
        if cfg.clone_batch < 1:
            raise ValueError(f"model config: clone_batch={cfg.clone_batch} must be >= 1")
        if cfg.use_alibi:
            self.alibi = AlibiBias(cfg.encoder_attention_heads, cfg.alibi_scale_init, cfg.learned_alibi_scale)
        self.decoder: Optional[ConvDecoder1d] = ConvDecoder1d(
            cfg.encoder_embed_dim, cfg.decoder_dim, cfg.decoder_layers, cfg.decoder_kernel, cfg.decoder_groups
        )

    def regression_head(self) -> Optional[nn.Module]:
        """The conv decoder, (B, T, C) -> (B, T, C); None once removed for fine-tuning."""
        return self.decoder

    def drop_regression_head(self) -> None:
        """Removes the decoder (fine-tuning needs none)."""
        self.decoder = None

    def masked_value(self, x: torch.Tensor) -> torch.Tensor:
        """Masked frames are zeroed (2.0 has no mask embedding)."""
        return x.new_zeros(())

    # --- the 2.0 training forward ---------------------------------------------------------
    def clone_masks(self, batch: int, frames: int, sample_ids: Optional[Sequence[int]], device) -> torch.Tensor:
        """Masks (B * clone_batch, T) for the repeated batch, copy ``c`` of sample ``i`` at row
        ``i * clone_batch + c``; exactly int(mask_prob * T) frames masked in every row."""
        cfg = self.cfg
        return exact_span_mask(
            batch, frames, cfg.mask_prob, cfg.mask_length, seed=cfg.seed, num_updates=self.num_updates,
            sample_ids=sample_ids, copies=cfg.clone_batch, device=device,
        )

    def decode(self, kept: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Student outputs of the kept frames ``kept`` (R, K, C) and the masks (R, T) ->
        predictions (R, T, C) for every frame."""
        R, T = mask.shape
        kept = nn.functional.dropout(kept, p=self.cfg.decoder_input_dropout, training=self.training)
        full = kept.new_empty(R, T, kept.size(-1)).normal_(0.0, self.cfg.mask_noise_std)
        full[~mask] = kept.reshape(-1, kept.size(-1))  # row-major: each row's kept frames, in order
        return self.decoder(full)

    def predict_masked(self, features, padding_mask, targets, sample_ids=None, **unused):
        """2.0's student stage: ``clone_batch`` masked copies of ``features`` (B, T, C), only their
        kept frames encoded, the decoder predicting every frame. Returns (predictions (N, C) at
        the masked frames of every copy, their targets (N, C) from ``targets`` (B, T, C), the masks
        (B * clone_batch, T)). ``features_only`` (fine-tuning, features) runs v1's full-sequence path."""
        if padding_mask is not None:
            raise ValueError(
                "data2vec2_audio pre-training needs unpadded batches (each copy keeps the same number of "
                "frames): leave task.enable_padding=false so that fairseq crops a batch to its shortest clip"
            )
        B, T, _ = features.shape
        masks = self.clone_masks(B, T, sample_ids, features.device)  # (B * R, T)
        x = self.dropout_input(features).repeat_interleave(self.cfg.clone_batch, 0)  # (B * R, T, C), copies adjacent
        x = x.masked_fill(masks.unsqueeze(-1), 0.0)
        kept = self.encode_student(x, None, keep=~masks)  # (B * R, T - masked, C)
        pred = self.decode(kept, masks)[masks]  # (N, C): masked frames only
        target = targets.repeat_interleave(self.cfg.clone_batch, 0)[masks]
        return pred, target, masks
