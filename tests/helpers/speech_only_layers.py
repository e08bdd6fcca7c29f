"""The building blocks only the speech-only ``data2vec2_audio`` model used (it lives on as a
test helper, :mod:`.data2vec2_audio_model`): a learned-scale ALiBi module, its 1-D conv decoder
and its exact-count span masks."""

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from d2v_fairseq.modules.alibi import alibi_slopes
from d2v_fairseq.modules.seeding import seeded_rng


class AlibiBias(nn.Module):
    """Builds the additive attention bias for frames at given positions.

    ``scale`` (H,) starts at ``scale_init`` and is learned when ``learned``; it is clamped at 0
    so a head can switch its distance penalty off but never reward distance."""

    def __init__(self, heads: int, scale_init: float = 1.0, learned: bool = True):
        super().__init__()
        self.heads = heads
        self.register_buffer("slopes", torch.tensor(alibi_slopes(heads)), persistent=False)
        self.scale = nn.Parameter(torch.full((heads,), float(scale_init)), requires_grad=learned)

    def forward(self, positions: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``positions`` (B, T) frame indices in the original sequence, ``padding_mask`` (B, T)
        -> bias (B * H, T, T) for torch's multi-head attention (-inf at padded keys)."""
        B, T = positions.shape
        distance = (positions[:, None, :] - positions[:, :, None]).abs().float()  # (B, T, T)
        per_head = (self.slopes * self.scale.clamp_min(0)).view(1, -1, 1, 1)
        bias = -distance[:, None] * per_head  # (B, H, T, T)
        if padding_mask is not None:
            bias = bias.masked_fill(padding_mask[:, None, None, :], float("-inf"))
        return bias.reshape(B * self.heads, T, T)


class ConvDecoder1d(nn.Module):
    """``layers`` x (Conv1d(kernel, groups) -> LayerNorm without affine -> GELU), a residual
    around every layer after the first (the first changes the width), then a Linear back to
    the model width. ``(B, T, embed_dim) -> (B, T, embed_dim)``; the time length is kept."""

    def __init__(self, embed_dim: int, dim: int = 384, layers: int = 4, kernel: int = 7, groups: int = 16):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"decoder_kernel={kernel}: must be odd so that every frame keeps its place")
        for name, width in (("model width", embed_dim), ("decoder_dim", dim)):
            if width % groups:
                raise ValueError(f"decoder_groups={groups} does not divide the {name} {width}")
        self.convs = nn.ModuleList(
            nn.Conv1d(embed_dim if i == 0 else dim, dim, kernel, padding=kernel // 2, groups=groups)
            for i in range(layers)
        )
        self.proj = nn.Linear(dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)."""
        x = x.transpose(1, 2)  # (B, C, T) for the convolutions
        for i, conv in enumerate(self.convs):
            y = conv(x)
            y = F.layer_norm(y.transpose(1, 2), y.shape[1:2]).transpose(1, 2)  # over channels
            y = F.gelu(y)
            x = y if i == 0 else x + y
        return self.proj(x.transpose(1, 2))


def exact_span_mask(
    rows: int,
    length: int,
    mask_prob: float,
    span: int,
    *,
    seed: int,
    num_updates: int,
    sample_ids: Optional[Sequence[int]] = None,
    copies: int = 1,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """data2vec 2.0's speech masks: (rows * copies, length) bool, row ``i * copies + c`` the mask
    of copy ``c`` of sample ``i``, with exactly ``int(mask_prob * length)`` masked frames in every row.

    Spans of ``span`` frames around centres taken in a random order are added until the count
    is reached; the last span is trimmed at random to hit it exactly. Each row is drawn from
    (seed, update, sample id, copy) alone, so runs repeat and resume exactly.
    """
    target = int(mask_prob * length)
    if not 0 <= target <= length:
        raise ValueError(f"mask_prob={mask_prob} must be in [0, 1]")
    ids = range(rows) if sample_ids is None else [int(i) for i in sample_ids]
    if len(ids) != rows:
        raise ValueError(f"{len(ids)} sample ids for {rows} rows")
    half = span // 2
    masks = np.zeros((rows * copies, length), dtype=bool)
    for row, (sample_id, copy) in enumerate((i, c) for i in ids for c in range(copies)):
        rng = seeded_rng(seed, num_updates, sample_id, copy, 2)
        rank = rng.permutation(length)  # rank[c]: when the span centred on frame c is added
        # frame f is first covered by the earliest span whose centre lies within +-half of f
        padded = np.concatenate([np.full(half, length), rank, np.full(span - 1 - half, length)])
        first_cover = np.lib.stride_tricks.sliding_window_view(padded, span).min(axis=1)
        # the `target` earliest-covered frames; ties (frames of one span) broken at random
        order = np.lexsort((rng.random(length), first_cover))
        masks[row, order[:target]] = True
    return torch.from_numpy(masks).to(device)
