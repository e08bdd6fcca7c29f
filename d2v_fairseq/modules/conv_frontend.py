"""A faster forward for fairseq's wav2vec 2.0 conv feature encoder in ``layer_norm`` mode.

fairseq's ``ConvFeatureExtractionModel`` keeps activations as (B, C, T) and transposes them
around every layer norm, so each layer pays for strided copies and a GELU over a
non-contiguous tensor, forward and backward. Here the same parameters are applied in
(B, T, C) layout: each convolution is a matrix product over unfolded frames, then the layer
norm and GELU run on contiguous memory. Same results to float tolerance (tested), about
1.7x (512 channels) to 2.5x (64 channels) faster on CPU for forward + backward.
"""

import ast
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def layer_norm_blocks(extractor: nn.Module) -> Optional[list]:
    """[(conv, layer_norm)] if ``extractor`` is a layer_norm-mode conv stack without dropout,
    else None (then use its own forward)."""
    blocks = []
    for block in extractor.conv_layers:
        if len(block) != 4 or not isinstance(block[0], nn.Conv1d) or not isinstance(block[2], nn.Sequential):
            return None
        if block[1].p > 0 or not isinstance(block[3], nn.GELU) or len(block[2]) != 3:
            return None
        blocks.append((block[0], block[2][1]))
    return blocks


def conv_features(extractor: nn.Module, source: torch.Tensor) -> torch.Tensor:
    """Waveform ``source`` (B, S) -> features (B, T, C), as ``extractor(source).transpose(1, 2)``."""
    blocks = layer_norm_blocks(extractor)
    if blocks is None:
        return extractor(source).transpose(1, 2)
    x = source.unsqueeze(-1)  # (B, S, 1)
    for conv, norm in blocks:
        kernel, stride = conv.kernel_size[0], conv.stride[0]
        frames = x.unfold(1, kernel, stride)  # (B, T, C_in, kernel), a strided view
        B, T = frames.shape[:2]
        # conv weight (C_out, C_in, kernel) flattened in the same (channel, tap) order as frames
        y = frames.reshape(B, T, -1) @ conv.weight.reshape(conv.out_channels, -1).t()
        if conv.bias is not None:
            y = y + conv.bias
        # fairseq's Fp32LayerNorm: statistics in fp32, result in the input's dtype
        y = F.layer_norm(
            y.float(), norm.normalized_shape,
            norm.weight.float() if norm.weight is not None else None,
            norm.bias.float() if norm.bias is not None else None, norm.eps,
        ).type_as(y)
        x = F.gelu(y)
    return x


def parse_conv_spec(spec: str, key: str) -> List[Tuple[int, int, int]]:
    """The conv front end's [(dim, kernel, stride), ...] from the string form both references use
    (``'[(512, 10, 5)] + [(512, 3, 2)] * 4'``), read without ``eval``: list and tuple literals of
    integers joined by ``+`` and ``* n``. ``key`` names the config key in errors."""

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(n) for n in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"{key}: {spec!r} is not a list of (dim, kernel, stride) tuples "
                         f"(only list/tuple literals, + and * are read)")

    try:
        layers = value(ast.parse(spec, mode="eval").body)
    except SyntaxError:
        layers = None
    if not isinstance(layers, list) or not layers or not all(
            isinstance(t, tuple) and len(t) == 3 and all(isinstance(v, int) and v > 0 for v in t) for t in layers):
        raise ValueError(f"{key}: {spec!r} is not a list of (dim, kernel, stride) tuples of positive integers")
    return layers
