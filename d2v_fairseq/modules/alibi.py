"""ALiBi attention biases (Press et al., 2022), symmetric for an encoder: bias[h, i, j] =
-distance(i, j) * slope_h, over a sequence (1-D) or a square grid of patches (2-D); data2vec 2.0
scales them per block and head (``multi_layers.scaled_bias``).
"""

import math
from typing import List

import torch

from .errors import ModelConfigError


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


def alibi_distances(length: int, dims: int = 1, distance: str = "manhattan") -> torch.Tensor:
    """Negative distances (T, T) between the steps of a sequence (``dims`` 1) or the patches of
    a square grid of ``length`` patches, row-major (``dims`` 2; manhattan or euclidean)."""
    if dims == 1:
        pos = torch.arange(length)
        return -(pos[None, :] - pos[:, None]).abs().float()
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"2-D ALiBi needs a square grid; {length} patches")
    rows, cols = torch.arange(length) // side, torch.arange(length) % side
    dr, dc = (rows[:, None] - rows[None, :]).abs().float(), (cols[:, None] - cols[None, :]).abs().float()
    if distance == "manhattan":
        return -(dr + dc)
    if distance == "euclidean":
        return -torch.sqrt(dr ** 2 + dc ** 2)
    raise ModelConfigError(f"model config: alibi_distance={distance!r}; choose manhattan or euclidean")


def alibi_bias(batch: int, length: int, heads: int, dims: int = 1, distance: str = "manhattan",
               device=None, dtype=torch.float32) -> torch.Tensor:
    """ALiBi's bias (B, H, T, T): each head's slope times the negative distance."""
    slopes = torch.tensor(alibi_slopes(heads))
    bias = slopes[:, None, None] * alibi_distances(length, dims, distance)[None]
    return bias.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1, -1)
