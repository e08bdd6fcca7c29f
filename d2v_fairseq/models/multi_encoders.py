"""The thin modality encoders of ``data2vec_multi``: each turns its raw input into a sequence
(B, T, C) for the shared blocks, masks it for the student, and holds its decoder.

An encoder has the reference's parts (and parameter names): ``local_encoder`` (speech: the conv
front end; images: the patch embedding; text: token and learned positions with their
LayerNorm), ``project_features``, ``fixed_positional_encoder`` (images: MAE's sin-cos grid),
``relative_positional_encoder`` (speech: the positional convs), ``context_encoder`` (the
modality's own blocks), ``extra_tokens`` (images: CLS), ``alibi_scale`` and ``decoder``.

Masking (``Masking``): span masks for speech (fairseq's ``compute_mask_indices``), inverse
block masks for images (fairseq's ``compute_block_mask_2d``), random tokens for text; every mask
drawn from (seed, update, sample id, copy) alone, so runs repeat and resume exactly.
"""

import copy
import math
from typing import Dict, NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F
from fairseq.data.data_utils import (
    compute_block_mask_1d,
    compute_block_mask_2d,
    compute_mask_indices,
)
from fairseq.models.wav2vec import ConvFeatureExtractionModel
from fairseq.modules import (
    FairseqDropout,
    GradMultiply,
    LayerNorm,
    PositionalEmbedding,
    TransposeLast,
)
from torch import nn

from ..modules.alibi import alibi_bias
from ..modules.conv_frontend import parse_conv_spec
from ..modules.errors import ModelConfigError
from ..modules.masking import channel_mask
from ..modules.multi_layers import (
    BlockEncoder,
    ConvDecoder,
    conv_stage,
    keep_bias,
    keep_rows,
    sincos_positions_2d,
)
from ..modules.seeding import row_ids, seeded_int, seeded_rng
from ..modules.vit import PatchEmbed
from .multi_config import (
    D2vAudioConfig,
    D2vImageConfig,
    D2vModalityConfig,
    D2vTextConfig,
    Modality,
)


class MaskInfo(NamedTuple):
    """A student's mask: ``mask`` (B, T) bool, True at the steps the loss is taken at, and ``keep``
    (B, T) bool, the steps the student sees, the same count in every row (``~mask`` for the
    masks drawn here)."""

    mask: torch.Tensor
    keep: torch.Tensor

    @classmethod
    def of(cls, mask: torch.Tensor) -> "MaskInfo":
        """From masks (B, T) whose rows may mask different counts (a task's precomputed masks):
        every row keeps as many steps as the first row keeps, as the reference reads them, the
        surplus visible steps of a row hidden, the shortfall made up from its first masked steps."""
        mask = mask.bool()
        keep = ~mask
        count = int(keep[0].sum())
        if bool((keep.sum(1) != count).any()):
            # rank the visible steps first, each group in position order, and keep the first `count`
            T = mask.size(1)
            rank = mask.long() * T + torch.arange(T, device=mask.device)
            order = rank.argsort(dim=1)[:, :count]
            keep = torch.zeros_like(mask).scatter_(1, order, True)
        return cls(mask, keep)


class MaskSeeds(NamedTuple):
    """What a batch's masks are drawn from: the run's seed, the update and the sample ids (B,)."""

    seed: int
    update: int
    ids: torch.Tensor


class FixedPositionalEncoder(nn.Module):
    """Fixed positions (1, T, C), saved with the model (``positions``) but never trained."""

    def __init__(self, positions: torch.Tensor):
        super().__init__()
        self.positions = nn.Parameter(positions, requires_grad=False)

    def forward(self, x: torch.Tensor, padding_mask=None) -> torch.Tensor:
        return self.positions


UNSUPPORTED = {
    "learned_alibi": "learned ALiBi biases",
    "keep_masked_pct": "keeping a share of the masked steps",
    "remove_masks": "remove_masks",
    "transformer_decoder": "Transformer decoders",
}


class ModalityEncoder(nn.Module):
    """A modality's input stages; subclasses build the parts (see the module docstring)."""

    modality: Modality

    def __init__(self, cfg: D2vModalityConfig, embed_dim: int, make_block, make_norm, layer_norm_first: bool):
        super().__init__()
        for key, what in UNSUPPORTED.items():
            if getattr(cfg, key, False):
                raise ModelConfigError(f"model config: modalities.{self.modality.name.lower()}.{key}: {what} is not "
                                 "supported by this package's data2vec_multi")
        self.modality_cfg = cfg
        self.embed_dim = embed_dim
        self.local_grad_mult = cfg.local_grad_mult
        rates = np.linspace(cfg.start_drop_path_rate, cfg.end_drop_path_rate, cfg.prenet_depth)
        with_norm = not layer_norm_first and (cfg.prenet_depth > 0 or self.modality != Modality.TEXT)
        self.context_encoder = BlockEncoder(
            nn.ModuleList(make_block(rates[i]) for i in range(cfg.prenet_depth)),
            make_norm(embed_dim) if with_norm else None, layer_norm_first, cfg.prenet_layerdrop,
            cfg.prenet_dropout if (cfg.prenet_depth > 0 or self.modality != Modality.TEXT) else 0.0)
        self.extra_tokens = None
        if cfg.num_extra_tokens > 0:
            self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, embed_dim))
            if not cfg.init_extra_token_zero:
                nn.init.normal_(self.extra_tokens)
            elif cfg.num_extra_tokens > 1:
                nn.init.normal_(self.extra_tokens[:, 1:])
        self.alibi_scale = None
        if cfg.use_alibi_encoder:
            shape = (cfg.prenet_depth + cfg.model_depth if cfg.learned_alibi_scale_per_layer else 1, 1,
                     cfg.num_alibi_heads if cfg.learned_alibi_scale_per_head else 1, 1, 1)
            self.alibi_scale = nn.Parameter(torch.full(shape, float(cfg.alibi_scale)),
                                            requires_grad=cfg.learned_alibi_scale)
        self.local_encoder: Optional[nn.Module] = None
        self.project_features: Optional[nn.Module] = nn.Identity()
        self.fixed_positional_encoder: Optional[nn.Module] = None
        self.relative_positional_encoder: Optional[nn.Module] = None
        self.decoder: Optional[ConvDecoder] = None

    # --- parts ---------------------------------------------------------------------------
    def make_decoder(self, grid=None) -> Optional[ConvDecoder]:
        d = self.modality_cfg.decoder
        if d is None:
            return None
        if d.add_positions_masked or d.add_positions_all:
            if self.modality != Modality.IMAGE or not self.modality_cfg.fixed_positions:
                raise ModelConfigError(f"model config: modalities.{self.modality.name.lower()}.decoder.add_positions_*: "
                                 "needs the fixed positions of images")
        return ConvDecoder(self.embed_dim, d.decoder_dim, d.decoder_layers, d.decoder_kernel, d.decoder_groups,
                           d.decoder_residual, d.projection_layers, d.projection_ratio, grid)

    def reset_parameters(self) -> None:
        """Re-initializes what the model-wide BERT init should not set (subclasses)."""

    def remove_pretraining_modules(self, keep_decoder: bool = False) -> None:
        if not keep_decoder:
            self.decoder = None

    def convert_padding_mask(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """Padding of the input -> padding (B, T) of the sequence ``x`` (B, T, C)."""
        return padding_mask

    def alibi(self, batch: int, length: int, device) -> torch.Tensor:
        """The unscaled ALiBi bias (B, H, T, T) for this modality."""
        return alibi_bias(batch, length, self.modality_cfg.num_alibi_heads, device=device)

    # --- stages --------------------------------------------------------------------------
    def local_features(self, source: torch.Tensor) -> torch.Tensor:
        """Raw input -> the sequence (B, T, C) before positions and masking."""
        if self.local_grad_mult == 0:
            with torch.no_grad():
                x = self.local_encoder(source)
        elif self.local_grad_mult != 1.0:
            x = GradMultiply.apply(self.local_encoder(source), self.local_grad_mult)
        else:
            x = self.local_encoder(source)
        return self.project_features(x)

    def forward(self, source, padding_mask, mask: bool, remove_masked: bool, clone_batch: int = 1,
                mask_seeds: Optional[MaskSeeds] = None, precomputed_mask=None) -> Dict:
        return self.contextualized_features(self.local_features(source), padding_mask, mask, remove_masked,
                                            clone_batch, mask_seeds, precomputed_mask)

    def contextualized_features(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor], mask: bool,
                                remove_masked: bool, clone_batch: int = 1, mask_seeds: Optional[MaskSeeds] = None,
                                precomputed_mask: Optional[torch.Tensor] = None) -> Dict:
        """Local features ``x`` (B, T, C) -> the input of the shared blocks: positions added, (with
        ``mask``) ``clone_batch`` masked copies of each sample, their kept steps only (with
        ``remove_masked``), extra tokens in front, the modality's own blocks run. Returns
        {"x" (B', T', C), "local_features" (B, T, C), "padding_mask" (B', T') or None,
        "alibi_bias" (B', H, T', T') or None, "alibi_scale" (per remaining block) or None,
        "encoder_mask": MaskInfo or None}."""
        if padding_mask is not None:
            padding_mask = self.convert_padding_mask(x, padding_mask)
        local_features = x
        B, T, _ = x.shape
        if self.fixed_positional_encoder is not None:
            x = x + self.fixed_positional_encoder(x, padding_mask)
        mask_info = None
        if mask:
            if clone_batch > 1:
                x = x.repeat_interleave(clone_batch, 0)  # copies of a sample adjacent: row i * clone + c
                if padding_mask is not None:
                    padding_mask = padding_mask.repeat_interleave(clone_batch, 0)
            if precomputed_mask is not None:
                mask_info = MaskInfo.of(precomputed_mask.to(x.device))
            else:
                mask_info = self.compute_mask(x.size(0), T, padding_mask, mask_seeds, clone_batch, x.device)
            kept_values = x
            if mask_info is not None and (self.relative_positional_encoder is not None or not remove_masked):
                x = self.apply_mask(x, mask_info, mask_seeds, clone_batch)
        removed = mask and remove_masked and mask_info is not None
        if self.relative_positional_encoder is not None:
            positions = self.relative_positional_encoder(x)  # over the whole (zero-masked) sequence
            x = (kept_values if removed else x) + positions
        if removed:
            x = keep_rows(x, mask_info.keep)  # (B', K, C): kept steps, in order
            if padding_mask is not None and padding_mask.any():
                padding_mask = keep_rows(padding_mask, mask_info.keep)
                padding_mask = padding_mask if padding_mask.any() else None
            else:
                padding_mask = None
        bias, scale = None, self.alibi_scale
        if self.modality_cfg.use_alibi_encoder:
            # one (1, H, T, T) bias, scaled once and viewed per row (copies and clones alike), so
            # that only the kept rows' biases are ever materialized
            bias = self.alibi(1, T, x.device)
            if scale is not None:
                scale = scale.clamp_min(0)
                if scale.size(0) == 1:  # one scale for all blocks: fold it in now
                    bias = bias * scale.squeeze(0).type_as(bias)
                    scale = None
            bias = bias.expand(x.size(0), -1, -1, -1)
            if removed:
                bias = keep_bias(bias, mask_info.keep)
        if self.extra_tokens is not None:
            n = self.extra_tokens.size(1)
            x = torch.cat([self.extra_tokens.expand(x.size(0), -1, -1), x], dim=1)
            if padding_mask is not None:
                padding_mask = F.pad(padding_mask, (n, 0))
            if bias is not None:
                bias = F.pad(bias, (n, 0, n, 0))
        prenet = self.modality_cfg.prenet_depth
        x = self.context_encoder(x, padding_mask, bias, scale[:prenet] if scale is not None else None)
        return {"x": x, "local_features": local_features, "padding_mask": padding_mask, "alibi_bias": bias,
                "alibi_scale": scale[prenet:] if scale is not None else None, "encoder_mask": mask_info}

    def apply_mask(self, x: torch.Tensor, mask_info: MaskInfo, seeds: Optional[MaskSeeds], clone_batch: int):
        """The masked steps of ``x`` (B, T, C) zeroed (``encoder_zero_mask``) or replaced by
        N(0, mask_noise_std); with ``mask_channel_prob``, spans of channels zeroed in every step
        (fine-tuning's channel masking, as wav2vec_ctc sets it)."""
        cfg = self.modality_cfg
        masked = mask_info.mask.unsqueeze(-1)
        if cfg.encoder_zero_mask:
            x = x.masked_fill(masked, 0.0)
        else:
            x = torch.where(masked, torch.randn_like(x) * cfg.mask_noise_std, x)
        if cfg.mask_channel_prob > 0:
            seed, update, ids = self.row_keys(x.size(0), seeds, clone_batch)
            channels = channel_mask(x.size(0), x.size(-1), cfg.mask_channel_prob, cfg.mask_channel_length,
                                    seed=seed, num_updates=update, sample_ids=ids.tolist(), device=x.device)
            x = x.masked_fill(channels.unsqueeze(1), 0.0)  # (B, 1, C): the same channels in every step
        return x

    def compute_mask(self, rows: int, length: int, padding_mask, seeds: Optional[MaskSeeds], clone_batch: int,
                     device) -> Optional[MaskInfo]:
        """Masks (rows, length) for the (cloned) batch: spans of ``mask_length`` (speech), a random
        subset of steps (``mask_length`` 1: text), drawn from the seeds; None when mask_prob is 0."""
        cfg = self.modality_cfg
        seed, update, ids = self.row_keys(rows, seeds, clone_batch)
        mask_prob = cfg.mask_prob
        if cfg.mask_prob_min is not None and 0 <= cfg.mask_prob_min < mask_prob:
            mask_prob = float(seeded_rng(seed, update, "mask_prob", *ids.tolist()).uniform(cfg.mask_prob_min, mask_prob))
        if mask_prob <= 0:
            return None
        if cfg.mask_length == 1:
            gen = torch.Generator().manual_seed(seeded_int(seed, update, "random_mask", *ids.tolist()))
            order = torch.rand(rows, length, generator=gen).argsort(dim=1)
            masked = torch.ones(rows, length, dtype=torch.bool)
            masked.scatter_(1, order[:, : int(length * (1 - mask_prob))], False)  # the first steps of the order stay
            return MaskInfo.of(masked.to(device))
        prob = 1 - mask_prob if cfg.inverse_mask else mask_prob
        mask = compute_mask_indices((rows, length), padding_mask, prob, cfg.mask_length, min_masks=1,
                                    require_same_masks=True, mask_dropout=cfg.mask_dropout, add_masks=cfg.add_masks,
                                    seed=seed, epoch=update, indices=ids)
        mask = torch.from_numpy(mask)
        if cfg.inverse_mask:
            mask = ~mask
        return MaskInfo.of(mask.to(device))

    def seeded_block_mask(self, draw, rows: int, length: int, seeds, clone_batch: int, device) -> MaskInfo:
        """fairseq's block masks (``compute_block_mask_1d`` / ``_2d``: ``draw``), which use torch's
        global generator, drawn under one seeded from (seed, update, every row's key)."""
        cfg = self.modality_cfg
        seed, update, ids = self.row_keys(rows, seeds, clone_batch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeded_int(seed, update, draw.__name__, *ids.tolist()))
            mask = draw((rows, length), cfg.mask_prob, cfg.mask_length, cfg.mask_prob_adjust, cfg.inverse_mask,
                        require_same_masks=True, mask_dropout=cfg.mask_dropout)
        return MaskInfo.of(mask.to(device))

    @staticmethod
    def row_keys(rows: int, seeds: Optional[MaskSeeds], clone_batch: int):
        """(seed, update, a distinct key (rows,) per row: sample id * clone_batch + copy). Without
        seeds (features, unit tests), the row index stands in for the id."""
        if seeds is None:
            return 0, 0, row_ids(rows)
        return int(seeds.seed), int(seeds.update), row_ids(len(seeds.ids), seeds.ids, clone_batch)

    def decoder_input(self, x: torch.Tensor, mask_info: Optional[MaskInfo]) -> torch.Tensor:
        """The student's output ``x`` (B', K + extra, C) -> the decoder's input (B', T, C): the kept
        steps in place, N(0, mask_noise_std) at the masked ones (MAE's mask tokens, but noise)."""
        cfg = self.modality_cfg
        x = F.dropout(x, cfg.decoder.input_dropout, training=self.training)
        x = x[:, cfg.num_extra_tokens:]
        if mask_info is None:
            full = x
        else:
            mask, keep = mask_info.mask, mask_info.keep
            full = x.new_empty(*mask.shape, x.size(-1)).normal_(0, cfg.mask_noise_std)
            full[keep] = x.reshape(-1, x.size(-1))  # row-major: each row's kept steps, in order
            if cfg.decoder.add_positions_masked:
                full = full + self.fixed_positional_encoder(full, None) * mask.unsqueeze(-1)
        if cfg.decoder.add_positions_all:
            full = full + self.fixed_positional_encoder(full, None)
        return full


class AudioEncoder(ModalityEncoder):
    """Speech: wav2vec 2.0's conv front end (waveform (B, S) -> (B, T, 512) at 50 Hz), LayerNorm +
    Linear to the model width, ``conv_pos_depth`` grouped positional convs, 1-D ALiBi."""

    modality = Modality.AUDIO

    def __init__(self, cfg: D2vAudioConfig, embed_dim: int, make_block, make_norm, layer_norm_first: bool):
        super().__init__(cfg, embed_dim, make_block, make_norm, layer_norm_first)
        self.feature_enc_layers = parse_conv_spec(cfg.feature_encoder_spec, "model.modalities.audio.feature_encoder_spec")
        width = self.feature_enc_layers[-1][0]
        self.local_encoder = ConvFeatureExtractionModel(self.feature_enc_layers, dropout=0.0, mode=cfg.extractor_mode,
                                                        conv_bias=False)
        self.project_features = nn.Sequential(TransposeLast(), nn.LayerNorm(width), nn.Linear(width, embed_dim))
        k = max(3, cfg.conv_pos_width // cfg.conv_pos_depth)
        positions = nn.Sequential(
            TransposeLast(),
            *[conv_stage(nn.Conv1d(embed_dim, embed_dim, k, padding=k // 2, groups=cfg.conv_pos_groups),
                         k, embed_dim, 1) for _ in range(cfg.conv_pos_depth)],
            TransposeLast())
        self.relative_positional_encoder = (nn.Sequential(LayerNorm(embed_dim), positions) if cfg.conv_pos_pre_ln
                                            else positions)
        self.decoder = self.make_decoder()

    def compute_mask(self, rows, length, padding_mask, seeds, clone_batch, device):
        """Span masks as the released recipe draws them (its dataset's ``compute_block_mask_1d``:
        ``mask_prob`` + ``mask_prob_adjust`` of the frames in spans of ``mask_length``, the same
        count per row), seeded by (seed, update, every row's key); padded batches take fairseq's
        padding-aware ``compute_mask_indices`` instead."""
        cfg = self.modality_cfg
        if padding_mask is not None and padding_mask.any() or cfg.mask_length <= 1 or cfg.mask_prob_min is not None:
            return super().compute_mask(rows, length, padding_mask, seeds, clone_batch, device)
        return self.seeded_block_mask(compute_block_mask_1d, rows, length, seeds, clone_batch, device)

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        """Frames (B,) the front end makes of ``samples`` (B,) samples."""
        for _, kernel, stride in self.feature_enc_layers:
            samples = torch.div(samples - kernel, stride, rounding_mode="floor") + 1
        return samples

    def convert_padding_mask(self, x, padding_mask):
        lengths = self.frames((~padding_mask.bool()).long().sum(-1))
        return torch.arange(x.size(1), device=x.device)[None, :] >= lengths[:, None]

    def reset_parameters(self):
        self.project_features[2].reset_parameters()
        if self.decoder is not None:
            self.decoder.reset_parameters()


class ImageEncoder(ModalityEncoder):
    """Images: a patch embedding (B, 3, S, S) -> (B, (S/P)^2, C), MAE's fixed sin-cos positions, a
    CLS token (``num_extra_tokens``), inverse block masks, a 2-D conv decoder over the grid."""

    modality = Modality.IMAGE

    def __init__(self, cfg: D2vImageConfig, embed_dim: int, make_block, make_norm, layer_norm_first: bool):
        if cfg.enc_dec_transformer:
            cfg_key = "model.modalities.image.enc_dec_transformer"
            raise ValueError(f"{cfg_key}: Transformer decoders are not supported by this package's data2vec_multi")
        super().__init__(cfg, embed_dim, make_block, make_norm, layer_norm_first)
        patches = PatchEmbed(cfg.input_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        w = patches.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.size(0), -1))
        self.local_encoder = (patches if cfg.embed_dim == embed_dim
                              else nn.Sequential(patches, nn.Linear(cfg.embed_dim, embed_dim)))
        self.side = cfg.input_size // cfg.patch_size
        positions = sincos_positions_2d(embed_dim, self.side).unsqueeze(0)
        self.fixed_positional_encoder = FixedPositionalEncoder(positions) if cfg.fixed_positions else None
        self.decoder = self.make_decoder(grid=(self.side, self.side))

    def alibi(self, batch, length, device):
        cfg = self.modality_cfg
        return alibi_bias(batch, length, cfg.num_alibi_heads, cfg.alibi_dims, cfg.alibi_distance, device=device)

    def compute_mask(self, rows, length, padding_mask, seeds, clone_batch, device):
        """Block masks on the patch grid (``mask_length`` > 1; with ``inverse_mask`` the blocks
        are what the student sees), from fairseq's ``compute_block_mask_2d`` under a generator
        seeded by (seed, update, every row's key)."""
        cfg = self.modality_cfg
        if cfg.mask_length <= 1:
            return super().compute_mask(rows, length, padding_mask, seeds, clone_batch, device)
        return self.seeded_block_mask(compute_block_mask_2d, rows, length, seeds, clone_batch, device)

    def reset_parameters(self):
        if self.decoder is not None:
            self.decoder.reset_parameters()

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, (S/P)^2, P * P * 3), patch by patch, row-major."""
        p = self.modality_cfg.patch_size
        B, C, H, W = images.shape
        x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
        return x.reshape(B, (H // p) * (W // p), p * p * C)


class TextLocalEncoder(nn.Module):
    """Tokens (B, T) -> token embedding (+ learned or sinusoidal positions) -> LayerNorm -> dropout."""

    def __init__(self, vocab_size: int, embed_dim: int, max_positions: int, pad: int, cfg: D2vTextConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, embed_dim, pad)
        self.embed_scale = 1.0 if cfg.no_scale_embedding else math.sqrt(embed_dim)
        self.embed_positions = (None if cfg.no_token_positional_embeddings
                                else PositionalEmbedding(max_positions, embed_dim, pad, learned=cfg.learned_pos))
        self.layernorm_embedding = LayerNorm(embed_dim) if cfg.layernorm_embedding else None
        self.dropout = FairseqDropout(cfg.dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed_scale * self.embed_tokens(tokens)
        if self.embed_positions is not None:
            x = x + self.embed_positions(tokens)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        return self.dropout(x)


class TextEncoder(ModalityEncoder):
    """Text: BPE tokens (B, T) with the task's dictionary, randomly masked tokens
    (``mask_length`` 1), a 1-D conv decoder."""

    modality = Modality.TEXT

    def __init__(self, cfg: D2vTextConfig, embed_dim: int, make_block, make_norm, layer_norm_first: bool,
                 dictionary=None):
        if dictionary is None:
            raise ValueError("data2vec_multi with the TEXT modality needs the task's dictionary (task masked_lm "
                             "with task.data holding dict.txt)")
        super().__init__(cfg, embed_dim, make_block, make_norm, layer_norm_first)
        self.pad_idx = dictionary.pad()
        self.local_encoder = TextLocalEncoder(len(dictionary), embed_dim, cfg.max_source_positions, self.pad_idx, cfg)
        self.decoder = self.make_decoder()


ENCODERS = {Modality.AUDIO: AudioEncoder, Modality.IMAGE: ImageEncoder, Modality.TEXT: TextEncoder}


def view_without(module: nn.Module, *names: str) -> nn.Module:
    """A second module object sharing ``module``'s parameters and submodules, minus ``names``
    (set to None): the part of a student its EMA teacher copies."""
    view = copy.copy(module)
    view._modules = dict(module._modules)
    view._parameters = dict(module._parameters)
    view._buffers = dict(module._buffers)
    for name in names:
        if name in view._modules:
            view._modules[name] = None
    return view
