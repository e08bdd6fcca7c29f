"""``data2vec_audio``: data2vec for speech (Baevski et al., 2022, sec. 4.2).

Front end: fairseq's wav2vec 2.0 conv feature encoder over the (normalized) 16 kHz waveform,
a layer norm and a projection to the Transformer width. Masking: span masks replaced by a
learned embedding. Student: fairseq's wav2vec 2.0 ``TransformerEncoder``. The parameter names
are those of fairseq's released data2vec speech checkpoints.
"""

import logging
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from fairseq.models import register_model
from fairseq.models.wav2vec.wav2vec2 import (
    ConvFeatureExtractionModel,
    TransformerEncoder,
    Wav2Vec2Config,
)
from fairseq.modules import GradMultiply, LayerNorm
from torch import nn

from ..modules.conv_frontend import conv_features, parse_conv_spec
from ..modules.masking import channel_mask, span_mask
from ..modules.transformer import pad_time, run_time_major_layers, zero_padding
from .base import Data2VecModel
from .config import Data2VecSharedConfig, shared_default

logger = logging.getLogger(__name__)


@dataclass
class Data2VecAudioConfig(Wav2Vec2Config, Data2VecSharedConfig):
    """wav2vec 2.0's encoder fields plus the shared data2vec fields; the defaults are the
    paper's speech Base values (fairseq's ``base_librispeech`` recipe)."""

    extractor_mode: str = field(
        default="layer_norm", metadata={"help": "conv front end normalization: layer_norm or default"}
    )
    encoder_layerdrop: float = field(default=0.05, metadata={"help": "probability of dropping a block"})
    conv_pos: int = field(default=95, metadata={"help": "kernel size of the positional conv"})
    pos_conv_depth: int = field(default=5, metadata={"help": "number of positional conv layers"})
    instance_norm_target_layer: bool = shared_default("instance_norm_target_layer", True)
    batch_invariant_inference: bool = field(
        default=True,
        metadata={"help": "at inference, zero padded frames between the positional conv layers so that an "
                  "utterance's features do not depend on its batch; false: the reference's batched numbers "
                  "(padding leaks into the last valid frames through a multi-layer positional conv)"},
    )


@register_model("data2vec_audio", dataclass=Data2VecAudioConfig)
class Data2VecAudioModel(Data2VecModel):
    """data2vec speech model; see the module docstring."""

    # the teacher may keep its own positional conv (ema_layers_only=false)
    teacher_can_copy_positions = True

    def __init__(self, cfg: Data2VecAudioConfig):
        super().__init__(cfg, cfg.encoder_embed_dim, cfg.encoder_layers, "model.encoder_layers")
        self.conv_layers = parse_conv_spec(cfg.conv_feature_layers, "model.conv_feature_layers")
        conv_dim = self.conv_layers[-1][0]
        self.feature_extractor = ConvFeatureExtractionModel(
            conv_layers=self.conv_layers, dropout=0.0, mode=cfg.extractor_mode, conv_bias=cfg.conv_bias
        )
        self.layer_norm = LayerNorm(conv_dim)
        self.post_extract_proj = nn.Linear(conv_dim, cfg.encoder_embed_dim)
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.mask_emb = nn.Parameter(torch.FloatTensor(cfg.encoder_embed_dim).uniform_())
        self.encoder = TransformerEncoder(cfg)

    @classmethod
    def build_model(cls, cfg: Data2VecAudioConfig, task=None):
        """fairseq's constructor hook."""
        return cls(cfg)

    def teacher_scope(self) -> nn.Module:
        """The EMA copy's scope: blocks and the encoder's layer norm; the positional conv too
        with ``ema_layers_only=false``, else it is shared."""
        scope = {"layers": self.encoder.layers, "layer_norm": self.encoder.layer_norm}
        if not self.cfg.ema_layers_only:
            scope["pos_conv"] = self.encoder.pos_conv
        return nn.ModuleDict(scope)

    def truncate_blocks(self, keep: int) -> None:
        """Keeps the first ``keep`` Transformer blocks."""
        self.encoder.layers = nn.ModuleList(list(self.encoder.layers)[:keep])

    # --- front end ------------------------------------------------------------------------
    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """Number of frames the conv stack gives for ``input_lengths`` samples (B,)."""
        lengths = input_lengths.float()
        for _, kernel, stride in self.conv_layers:
            lengths = torch.floor((lengths - kernel) / stride + 1)
        return lengths.long()

    def embed(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        """``source`` (B, S) waveform -> features (B, T, C), frame padding (B, T) or None."""
        if self.cfg.feature_grad_mult > 0:
            features = conv_features(self.feature_extractor, source)  # (B, T, C)
            if self.cfg.feature_grad_mult != 1.0:
                features = GradMultiply.apply(features, self.cfg.feature_grad_mult)
        else:
            with torch.no_grad():
                features = conv_features(self.feature_extractor, source)
        features = self.layer_norm(features)
        frame_padding = None
        if padding_mask is not None and padding_mask.any():
            lengths = self.output_lengths((~padding_mask).long().sum(-1))
            frame_padding = torch.arange(features.size(1), device=features.device)[None, :] >= lengths[:, None]
        return self.post_extract_proj(features), frame_padding

    # --- masking --------------------------------------------------------------------------
    def mask(self, features, padding_mask, sample_ids=None, **unused):
        """Span masks (mask_prob, mask_length) replaced by ``mask_emb``; channel masks
        (mask_channel_prob, used in fine-tuning) zeroed. Returns x (B, T, C), mask (B, T) or None."""
        cfg = self.cfg
        B, T, C = features.shape
        x = self.dropout_input(features)
        seed_args = dict(seed=cfg.seed, num_updates=self.num_updates, sample_ids=sample_ids, device=x.device)
        channels = None
        if cfg.mask_channel_prob > 0:
            channels = channel_mask(B, C, cfg.mask_channel_prob, cfg.mask_channel_length, **seed_args)
            if cfg.mask_channel_before:
                x = x.masked_fill(channels[:, None, :], 0.0)
        mask_indices = None
        if cfg.mask_prob > 0:
            mask_indices = span_mask(
                (B, T),
                padding_mask,
                cfg.mask_prob,
                cfg.mask_length,
                min_masks=1,
                require_same_masks=cfg.require_same_masks,
                mask_dropout=cfg.mask_dropout,
                mask_selection=cfg.mask_selection,
                mask_other=cfg.mask_other,
                no_overlap=cfg.no_mask_overlap,
                min_space=cfg.mask_min_space,
                **seed_args,
            )
            x = torch.where(mask_indices.unsqueeze(-1), self.mask_emb.to(x.dtype), x)
        if channels is not None and not cfg.mask_channel_before:
            x = x.masked_fill(channels[:, None, :], 0.0)
        return x, mask_indices

    # --- Transformer ----------------------------------------------------------------------
    def _encoder_input(self, x, padding_mask, blocks: nn.Module):
        """Positional conv over the whole sequence + pre-block layer norm + padding to the
        required multiple; ``blocks`` is ``teacher_scope()``'s layout (the student's own modules
        or the teacher's copy).

        ``x`` (B, T, C) -> (T', B, C), padding (B, T') or None."""
        enc = self.encoder
        pos_conv = blocks["pos_conv"] if "pos_conv" in blocks else enc.pos_conv
        x = zero_padding(x, padding_mask)
        x = x + self.positions(pos_conv, x, padding_mask)
        if not enc.layer_norm_first:
            x = blocks["layer_norm"](x)
        x, padding_mask, _ = pad_time(x, padding_mask, enc.required_seq_len_multiple)
        return x.transpose(0, 1), padding_mask

    def positions(self, pos_conv: nn.Module, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """The positional conv's output (B, T, C) for ``x`` (B, T, C) with padded frames zeroed.

        A multi-layer positional conv (``pos_conv_depth`` > 1) gives padded frames non-zero values
        after its first layer, which the next layers mix into the last valid frames: a frame's
        features then depend on how much padding its batch has. At inference (with
        ``batch_invariant_inference``) padded frames are zeroed after every layer, as the zero
        padding of an utterance alone would be; training keeps the reference's computation."""
        dtype = next(pos_conv.parameters()).dtype
        h = x.transpose(1, 2).to(dtype)  # (B, C, T)
        layered = isinstance(pos_conv, nn.Sequential) and all(isinstance(m, nn.Sequential) for m in pos_conv)
        if padding_mask is None or self.training or not self.cfg.batch_invariant_inference or not layered:
            return pos_conv(h).transpose(1, 2).to(x.dtype)
        keep = (~padding_mask).unsqueeze(1).to(dtype)  # (B, 1, T)
        for layer in pos_conv:
            h = layer(h) * keep
        return h.transpose(1, 2).to(x.dtype)

    def hidden_states(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        """Every layer's representation of waveforms (B, S), transformers' numbering: index 0 the
        input of the first block (after the positional conv and, post-LN, the layer norm), index i
        the output of block i. Returns (list of (B, T, C), frame padding (B, T) or None)."""
        features, frame_padding = self.embed(source, padding_mask)
        T = features.size(1)
        x, padded = self._encoder_input(features, frame_padding, self.teacher_scope())
        _, blocks = run_time_major_layers(self.encoder.layers, x, padded, capture="block")
        return [y.transpose(0, 1)[:, :T] for y in [x, *blocks]], frame_padding

    def encode_student(self, x, padding_mask, layer: Optional[int] = None):
        """Student Transformer on ``x`` (B, T, C) -> (B, T, C); ``layer`` stops after that block."""
        enc = self.encoder
        T = x.size(1)
        x, padding_mask = self._encoder_input(x, padding_mask, self.teacher_scope())
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        layers = enc.layers if layer is None else enc.layers[: layer + 1]
        x, _ = run_time_major_layers(layers, x, padding_mask, layerdrop=enc.layerdrop if self.training else 0.0)
        if enc.layer_norm_first and layer is None:
            x = enc.layer_norm(x)
        return x.transpose(0, 1)[:, :T]  # (T', B, C) -> (B, T, C), undo the time padding

    def encode_teacher(self, features, padding_mask, blocks: nn.Module) -> List[torch.Tensor]:
        """The teacher's chosen feature of every block, each (B, T, C), from unmasked features."""
        T = features.size(1)
        x, padding_mask = self._encoder_input(features, padding_mask, blocks)
        _, captured = run_time_major_layers(
            blocks["layers"],
            x,
            padding_mask,
            capture=self.cfg.target_feature,
            attention_window=self.cfg.teacher_attention_window,
        )
        return [y.transpose(0, 1)[:, :T] for y in captured]
