"""The layers of data2vec 2.0's one model for all modalities (Baevski et al., 2022b), with the
parameter names fairseq's ``data2vec_multi`` checkpoints use, so that its state dicts load
strictly: Transformer blocks (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``), the block stack a modality runs before the shared blocks (``context_encoder``),
the light conv decoders (``blocks.N.0``, ``proj``), ALiBi biases in one or two dimensions and
MAE's fixed 2-D sin-cos positions.

Plain PyTorch (and fairseq's small layers); no registries.
"""

from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fairseq.modules import LayerNorm, SamePad, SamePad2d, TransposeLast
from torch import nn

from .errors import ModelConfigError
from .vit import DropPath


def padding_bias(padding_mask: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """A key padding mask (B, T) as an additive attention bias (B, 1, 1, T): -inf at padding;
    None when nothing is padded."""
    if padding_mask is None or not padding_mask.any():
        return None
    blocked = torch.zeros(padding_mask.shape, dtype=dtype, device=padding_mask.device)
    return blocked.masked_fill(padding_mask.bool(), float("-inf"))[:, None, None, :]


def joined_bias(bias: Optional[torch.Tensor], blocked: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The sum of two additive attention biases, either of which may be None."""
    if bias is None or blocked is None:
        return blocked if bias is None else bias
    return bias + blocked


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection: ``x`` (B, T, C), an additive
    bias (B, H, T, T) or None and a key padding mask (B, T) or None -> (B, T, C)."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ModelConfigError(f"model config: embed_dim={dim} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)  # (B, H, T, C/H)
        mask = joined_bias(bias.to(q.dtype) if bias is not None else None, padding_bias(padding_mask, q.dtype))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attention_dropout if self.training else 0.0)
        return self.dropout(self.proj(out.transpose(1, 2).reshape(B, T, C)))


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout: (..., C) -> (..., C)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """One Transformer block returning (output, its regression target), each (B, T, C).

    Post-LN (the released models): x <- norm1(x + attn(x)); the target is the feed-forward
    output before its residual (or, with ``ffn_targets`` off, the block's output);
    x <- norm2(x + ffn(x)). The pre-LN branch is computed as fairseq's data2vec_multi computes
    it, residual stream included, so that checkpoints trained either way read the same here."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0, post_mlp_dropout: float = 0.0,
                 drop_path: float = 0.0, norm_eps: float = 1e-6, norm_affine: bool = True,
                 layer_norm_first: bool = False, ffn_targets: bool = True):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        self.ffn_targets = ffn_targets
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_affine)
        self.attn = Attention(dim, num_heads, attention_dropout, dropout)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_affine)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), activation_dropout)
        self.post_mlp_dropout = nn.Dropout(post_mlp_dropout)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.layer_norm_first:
            x = x + self.drop_path(self.attn(self.norm1(x), padding_mask, bias))
            # as the reference computes it: the feed-forward output is its own residual
            ffn = self.mlp(self.norm2(x))
            x = ffn + self.drop_path(self.post_mlp_dropout(ffn))
        else:
            x = self.norm1(x + self.drop_path(self.attn(x, padding_mask, bias)))
            ffn = self.mlp(x)
            x = self.norm2(x + self.drop_path(self.post_mlp_dropout(ffn)))
        return x, (ffn if self.ffn_targets else x)


def scaled_bias(bias: Optional[torch.Tensor], scale: Optional[torch.Tensor], layer: int) -> Optional[torch.Tensor]:
    """``bias`` (B, H, T, T) times the ALiBi scale of block ``layer`` (``scale`` (L, 1, H|1, 1, 1),
    one row per block, or (1, ...) for all), or ``bias`` itself without a scale."""
    if bias is None or scale is None:
        return bias
    return bias * (scale[layer] if scale.size(0) > 1 else scale.squeeze(0)).type_as(bias)


def run_alibi_blocks(blocks, x: torch.Tensor, padding_mask: Optional[torch.Tensor], bias: Optional[torch.Tensor],
               scale: Optional[torch.Tensor], layerdrop: float = 0.0, keep_targets: bool = False
               ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """``blocks`` on ``x`` (B, T, C), each with its scaled ALiBi bias; in training a block is
    skipped with probability ``layerdrop`` (torch's RNG, which fairseq reseeds every update).
    Returns the output (B, T, C) and, with ``keep_targets``, each block's target (B, T, C).

    The padding joins the bias once for all blocks (once per block with per-block scales),
    where each block would otherwise test the mask and build the sum again."""
    targets: List[torch.Tensor] = []
    blocked = padding_bias(padding_mask, x.dtype if bias is None else bias.dtype)
    per_block = bias is not None and scale is not None  # else every block gets the same bias
    shared = None if per_block else joined_bias(bias, blocked)
    for i, block in enumerate(blocks):
        if block.training and layerdrop > 0 and torch.rand(()) < layerdrop:
            continue
        block_bias = joined_bias(scaled_bias(bias, scale, i), blocked) if per_block else shared
        x, target = block(x, None, block_bias)
        if keep_targets:
            targets.append(target)
    return x, targets


class BlockEncoder(nn.Module):
    """A modality's own blocks before the shared ones (the speech ``prenet``): LayerNorm (post-LN
    models) and dropout on the input, then ``blocks``. (B, T, C) -> (B, T, C)."""

    def __init__(self, blocks: nn.ModuleList, norm: Optional[nn.Module], layer_norm_first: bool,
                 layerdrop: float, dropout: float):
        super().__init__()
        self.blocks = blocks
        self.norm = norm
        self.layer_norm_first = layer_norm_first
        self.layerdrop = layerdrop
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, padding_mask, bias, scale):
        if self.norm is not None and not self.layer_norm_first:
            x = self.norm(x)
        x, _ = run_alibi_blocks(self.blocks, self.dropout(x), padding_mask, bias, scale, self.layerdrop)
        if self.norm is not None and self.layer_norm_first:
            x = self.norm(x)
        return x


def conv_stage(conv: nn.Module, kernel: int, channels: int, dims: int) -> nn.Sequential:
    """conv -> trim to the input length -> LayerNorm over channels (no affine) -> GELU, as one
    ``nn.Sequential`` (index 0 is the conv, which is where checkpoints keep its weights)."""
    if dims == 1:
        trim: nn.Module = SamePad(kernel)
        to_last, back = TransposeLast(), TransposeLast()
    else:
        trim = SamePad2d(kernel)
        to_last, back = TransposeLast(tranpose_dim=-3), TransposeLast(tranpose_dim=-3)
    return nn.Sequential(conv, trim, to_last, LayerNorm(channels, elementwise_affine=False), back, nn.GELU())


class ConvDecoder(nn.Module):
    """data2vec 2.0's decoder: ``layers`` grouped conv stages (1-D over time, or 2-D over the
    patch grid ``grid``), each added to its input when the widths match (``residual``), then
    a projection back to the model width (``projection_layers`` Linear layers, GELU between).
    (B, T, C) -> (B, T, C)."""

    def __init__(self, input_dim: int, dim: int, layers: int, kernel: int, groups: int, residual: bool = True,
                 projection_layers: int = 1, projection_ratio: float = 2.0, grid: Optional[Tuple[int, int]] = None):
        super().__init__()
        for name, width in (("model width", input_dim), ("decoder_dim", dim)):
            if width % groups:
                raise ModelConfigError(f"model config: decoder_groups={groups} does not divide the {name} {width}")
        self.grid = grid
        self.residual = residual
        conv = nn.Conv1d if grid is None else nn.Conv2d
        self.blocks = nn.Sequential(*[
            conv_stage(conv(input_dim if i == 0 else dim, dim, kernel, padding=kernel // 2, groups=groups),
                       kernel, dim, 1 if grid is None else 2)
            for i in range(layers)
        ])
        if projection_layers <= 1:
            self.proj: nn.Module = nn.Linear(dim, input_dim)
        else:
            widths = [dim, int(dim * projection_ratio)] + [int(dim * projection_ratio)] * (projection_layers - 2)
            layers_: List[nn.Module] = []
            for a, b in zip(widths[:-1], widths[1:], strict=True):
                layers_ += [nn.Linear(a, b), nn.GELU()]
            self.proj = nn.Sequential(*layers_, nn.Linear(widths[-1], input_dim))

    def reset_parameters(self) -> None:
        for module in self.proj.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        x = x.transpose(1, 2)  # (B, C, T) for the convolutions
        if self.grid is not None:
            x = x.reshape(B, C, *self.grid)
        for stage in self.blocks:
            y = stage(x)
            x = x + y if self.residual and y.shape == x.shape else y
        return self.proj(x.reshape(B, x.size(1), T).transpose(1, 2))


def keep_rows(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The kept steps of ``x`` (B, T, ...) in order; ``keep`` (B, T) bool with the same count
    in every row -> (B, K, ...)."""
    B = x.size(0)
    return x[keep].view(B, -1, *x.shape[2:])


def keep_bias(bias: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The rows and columns of the kept steps of ``bias`` (B, H, T, T) -> (B, H, K, K)."""
    index = keep.nonzero()[:, 1].view(keep.size(0), -1)  # (B, K) kept positions
    H, K = bias.size(1), index.size(1)
    rows = torch.gather(bias, 2, index[:, None, :, None].expand(-1, H, -1, bias.size(-1)))
    return torch.gather(rows, 3, index[:, None, None, :].expand(-1, H, K, -1))


def sincos_positions_2d(dim: int, side: int) -> torch.Tensor:
    """MAE's fixed positions (side * side, dim) for a square grid, row-major: half the channels
    encode one grid axis, half the other, each as sines then cosines of geometric frequencies."""
    if dim % 4:
        raise ModelConfigError(f"model config: embed_dim={dim} must be a multiple of 4 for 2-D sin-cos positions")
    freqs = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))

    def encode(pos):
        angle = np.outer(pos.reshape(-1), freqs)
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)

    cols, rows = np.meshgrid(np.arange(side, dtype=np.float64), np.arange(side, dtype=np.float64))
    return torch.from_numpy(np.concatenate([encode(cols), encode(rows)], axis=1)).float()
