"""ALiBi attention biases (Press et al., 2022), symmetric for an encoder, with a learned
per-head scale as data2vec 2.0's speech release uses: bias[h, i, j] = -|p_i - p_j| * slope_h * scale_h.
"""

import math
from typing import List, Optional

import torch
from torch import nn


def alibi_slopes(heads: int) -> List[float]:
    """ALiBi's head slopes: a geometric sequence from 2^(-8/n); for a head count that is not a
    power of two, those of the closest lower power, then every other slope of the next one."""
    def power_of_two(n: int) -> List[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_two(heads)
    lower = 2 ** math.floor(math.log2(heads))
    return power_of_two(lower) + power_of_two(2 * lower)[0::2][: heads - lower]


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
