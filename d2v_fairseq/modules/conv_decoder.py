"""data2vec 2.0's light decoder for speech (Baevski et al., 2022b, sec. 2): a stack of grouped
1-D convolutions that turns the student's outputs, with noise at the masked frames, back into
predictions for every frame."""

import torch
import torch.nn.functional as F
from torch import nn


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
