"""The vision Transformer of data2vec's image model: BEiT-style ViT blocks.

Pre-LN blocks with layer scale, a relative position bias shared by all blocks (no absolute
position embedding), query and value biases without a key bias, LayerNorm eps 1e-6 and
stochastic depth (drop path). Attention runs through torch's ``scaled_dot_product_attention``.

Every block returns its output and the features data2vec may regress (see ``TARGET_FEATURES``
in ``transformer.py``): ``attn`` and ``ffn`` are the layer-scaled branch outputs before their
residual, ``block`` the residual stream after the block (the vision release's targets); in
these pre-LN blocks ``ffn-residual`` is that same residual stream.
The parameter layout (``qkv`` + ``q_bias``/``v_bias``, ``gamma_1``/``gamma_2``,
``relative_position_bias_table``) is BEiT's, which ``export.py`` maps to transformers.
"""

import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelConfigError

LAYER_NORM_EPS = 1e-6


class PatchEmbed(nn.Module):
    """Images (B, C, H, W) -> patch embeddings (B, H/P * W/P, D) by a P x P stride-P conv."""

    def __init__(self, image_size: int, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        if image_size % patch_size != 0:
            raise ModelConfigError(
                f"model config: image_size={image_size} is not a multiple of patch_size={patch_size}"
            )
        self.image_size = image_size
        self.grid = (image_size // patch_size, image_size // patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    @property
    def num_patches(self) -> int:
        """Patches per image."""
        return self.grid[0] * self.grid[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"images of {tuple(images.shape[-2:])} pixels given to a model built for "
                f"image_size={self.image_size} (the relative position bias is tied to the grid)"
            )
        return self.proj(images).flatten(2).transpose(1, 2)


def relative_position_index(grid: Tuple[int, int]) -> torch.Tensor:
    """(N+1, N+1) indices into the bias table for a grid of N = gh * gw patches plus a CLS token.

    Patch pairs index their 2-d offset; the last three rows of the table hold CLS->patch,
    patch->CLS and CLS->CLS (BEiT's layout)."""
    gh, gw = grid
    coords = torch.stack(torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")).flatten(1)  # (2, N)
    offset = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (N, N, 2)
    flat = (offset[..., 0] + gh - 1) * (2 * gw - 1) + (offset[..., 1] + gw - 1)
    size = (2 * gh - 1) * (2 * gw - 1) + 3
    index = torch.zeros(gh * gw + 1, gh * gw + 1, dtype=torch.long)
    index[1:, 1:] = flat
    index[0, :] = size - 3
    index[:, 0] = size - 2
    index[0, 0] = size - 1
    return index


class RelativePositionBias(nn.Module):
    """A learned bias per head and relative offset, shared by all blocks: () -> (1, H, N+1, N+1)."""

    def __init__(self, grid: Tuple[int, int], num_heads: int):
        super().__init__()
        self.grid = grid
        size = (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(size, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(grid), persistent=False)

    def forward(self) -> torch.Tensor:
        n = self.relative_position_index.size(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)


class DropPath(nn.Module):
    """Stochastic depth: in training, zeroes a residual branch for a random subset of samples
    (rescaling the others); the identity in eval mode, so the EMA teacher never drops."""

    def __init__(self, prob: float):
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        shape = (x.size(0),) + (1,) * (x.dim() - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"prob={self.prob}"


class Attention(nn.Module):
    """Multi-head self-attention with query and value biases (no key bias) and an additive bias."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ModelConfigError(f"model config: embed_dim={dim} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        """``x`` (B, N, D), ``bias`` (1, H, N, N) or None -> (B, N, D)."""
        B, N, D = x.shape
        qkv_bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, qkv_bias).view(B, N, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D/H)
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attention_dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-LN ViT block with layer scale and drop path."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, layer_scale: float, drop_path: float,
                 attention_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads, attention_dropout)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))
        self.gamma_1 = nn.Parameter(layer_scale * torch.ones(dim)) if layer_scale > 0 else None
        self.gamma_2 = nn.Parameter(layer_scale * torch.ones(dim)) if layer_scale > 0 else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """``x`` (B, N, D) -> output (B, N, D), {"attn", "ffn", "block"} each (B, N, D)."""
        attn = self.attn(self.norm1(x), bias)
        if self.gamma_1 is not None:
            attn = self.gamma_1 * attn
        x = x + self.drop_path(attn)
        ffn = self.mlp(self.norm2(x))
        if self.gamma_2 is not None:
            ffn = self.gamma_2 * ffn
        x = x + self.drop_path(ffn)
        return x, {"attn": attn, "ffn": ffn, "ffn-residual": x, "block": x}


class VisionTransformer(nn.Module):
    """The block stack, its shared relative position bias and the final LayerNorm: the part
    the EMA teacher copies (patch embedding, CLS and mask tokens stay with the student)."""

    def __init__(self, grid: Tuple[int, int], dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 layer_scale: float, drop_path: float, attention_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.rel_pos_bias = RelativePositionBias(grid, num_heads)
        rates = torch.linspace(0, drop_path, depth).tolist()  # stochastic depth rises with depth
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, layer_scale, rate, attention_dropout, dropout) for rate in rates
        )
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.apply(init_weights)
        for depth_index, block in enumerate(self.blocks, start=1):
            # BEiT: scale each residual branch's output projection by 1/sqrt(2 * depth)
            block.attn.proj.weight.data.div_(math.sqrt(2.0 * depth_index))
            block.mlp[2].weight.data.div_(math.sqrt(2.0 * depth_index))

    def set_drop_path(self, drop_path: float) -> None:
        """Resets the stochastic-depth rates (linear from 0 to ``drop_path``), e.g. for fine-tuning."""
        for block, rate in zip(self.blocks, torch.linspace(0, drop_path, len(self.blocks)).tolist(), strict=True):
            block.drop_path.prob = rate

    def forward(self, x: torch.Tensor, capture: Optional[str] = None, layers: Optional[int] = None,
                attention_window: float = 0):
        """``x`` (B, N+1, D), CLS first -> the last block's output (B, N+1, D) and, with ``capture``,
        that feature of every block (each (B, N+1, D)); ``layers`` stops after that many blocks;
        ``attention_window`` (see ``grid_attention_mask``) restricts every block's attention."""
        bias = self.rel_pos_bias()
        window = grid_attention_mask(self.rel_pos_bias.grid, attention_window, x.device)
        if window is not None:
            bias = bias + window
        return run_vit_blocks(self.blocks[:layers] if layers else self.blocks, x, bias, capture)


def grid_attention_mask(grid: Tuple[int, int], window: float, device: torch.device) -> Optional[torch.Tensor]:
    """Additive mask (N+1, N+1) for CLS + N = gh * gw patches: a patch attends to the patches
    within ``window`` rows and columns of it (Chebyshev distance; 0 < ``window`` < 1: that
    fraction of the grid's side, at least 1), the CLS token only to itself, and no patch to the
    CLS token, which would otherwise carry the whole image in one step. None for window 0."""
    from .transformer import window_steps

    steps = window_steps(window, max(grid))
    if steps <= 0:
        return None
    gh, gw = grid
    rows, cols = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()  # (N,)
    far = torch.maximum((rows[:, None] - rows[None, :]).abs(), (cols[:, None] - cols[None, :]).abs()) > steps
    blocked = torch.ones(gh * gw + 1, gh * gw + 1, dtype=torch.bool, device=device)
    blocked[1:, 1:] = far
    blocked[0, 0] = False
    return torch.zeros(blocked.shape, device=device).masked_fill(blocked, float("-inf"))


def run_vit_blocks(blocks, x: torch.Tensor, bias: Optional[torch.Tensor], capture: Optional[str] = None):
    """The blocks on ``x`` (B, N, D) -> (output (B, N, D), the ``capture`` feature of each block)."""
    captured: List[torch.Tensor] = []
    for block in blocks:
        x, feats = block(x, bias)
        if capture is not None:
            captured.append(feats[capture])
    return x, captured


def init_weights(module: nn.Module) -> None:
    """BEiT's initialization: truncated normal (std 0.02) weights, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
