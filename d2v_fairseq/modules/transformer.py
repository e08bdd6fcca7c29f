"""Running a stack of fairseq Transformer blocks (wav2vec 2.0's ``TransformerSentenceEncoderLayer``
for speech, ``TransformerEncoderLayerBase`` for text) with what data2vec needs on top:

* the output of every block at a chosen point (the paper's ablation, sec. 5.3 / table 4):
  ``ffn`` the feed-forward output before the last residual connection (the default),
  ``ffn-residual`` the feed-forward output after its residual, before the block's last
  LayerNorm (in a pre-LN block, where no LayerNorm follows, this is the block's output),
  ``attn`` the self-attention output before its residual, ``block`` the block's output;
* an optional local self-attention window of +-N steps, or of a fraction of the sequence
  (the contextualization ablation);
* layerdrop drawn from torch's RNG, which fairseq reseeds every update, so runs repeat.

Neither layer's ``forward`` exposes the feed-forward output before its residual (nor, for
wav2vec's post-LN branch, takes an attention mask), so the block is run here from its
sub-modules; ``tests/modules/test_transformer.py`` checks it equals fairseq's forward for both.
"""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelConfigError

TARGET_FEATURES = ("ffn", "ffn-residual", "attn", "block")


def window_steps(window: float, length: int) -> int:
    """A teacher attention window in steps: ``window`` >= 1 is a number of steps, 0 < ``window``
    < 1 a fraction of ``length`` (at least one step); 0 means the whole input (returns 0)."""
    if window < 0:
        raise ModelConfigError(f"model config: teacher_attention_window={window} must be >= 0")
    if window >= 1:
        return int(window)
    return max(1, round(window * length)) if window > 0 else 0


def local_attention_mask(length: int, window: float, device: torch.device) -> Optional[torch.Tensor]:
    """Additive mask (T, T): 0 where |i - j| <= the window (``window_steps``), -inf elsewhere;
    None for window 0 (the whole input)."""
    window = window_steps(window, length)
    if window <= 0:
        return None
    pos = torch.arange(length, device=device)
    far = (pos[None, :] - pos[:, None]).abs() > window
    return torch.zeros(length, length, device=device).masked_fill(far, float("-inf"))


def _block_parts(layer: nn.Module):
    """(pre-LN?, dropout after attention, dropout inside the FFN, dropout after the FFN) of a
    wav2vec ``TransformerSentenceEncoderLayer`` or a ``TransformerEncoderLayerBase``."""
    if hasattr(layer, "layer_norm_first"):  # wav2vec 2.0
        return layer.layer_norm_first, layer.dropout1, layer.dropout2, layer.dropout3
    return layer.normalize_before, layer.dropout_module, layer.activation_dropout_module, layer.dropout_module


def run_block(
    layer: nn.Module,
    x: torch.Tensor,
    padding_mask: Optional[torch.Tensor],
    attn_mask: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """One Transformer block on ``x`` (T, B, C).

    Returns the block output (T, B, C) and {"attn", "ffn", "ffn-residual", "block"} each (T, B, C).
    """
    pre_ln, drop_attn, drop_inner, drop_ffn = _block_parts(layer)
    residual = x
    if pre_ln:
        x = layer.self_attn_layer_norm(x)
    attn, _ = layer.self_attn(
        query=x, key=x, value=x, key_padding_mask=padding_mask, attn_mask=attn_mask, need_weights=False
    )
    x = residual + drop_attn(attn)
    if not pre_ln:
        x = layer.self_attn_layer_norm(x)
    residual = x
    if pre_ln:
        x = layer.final_layer_norm(x)
    ffn = layer.fc2(drop_inner(layer.activation_fn(layer.fc1(x))))
    x = residual + drop_ffn(ffn)
    ffn_residual = x
    if not pre_ln:
        x = layer.final_layer_norm(x)
    return x, {"attn": attn, "ffn": ffn, "ffn-residual": ffn_residual, "block": x}


def run_time_major_layers(
    layers: nn.ModuleList,
    x: torch.Tensor,
    padding_mask: Optional[torch.Tensor],
    *,
    capture: Optional[str] = None,
    attention_window: float = 0,
    layerdrop: float = 0.0,
    attn_bias: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The block stack on ``x`` (T, B, C). With ``capture`` set, also returns that feature of
    every block that ran (each (T, B, C)); layerdrop applies only in training (the teacher
    passes none: it must see every layer). ``attn_bias`` (B * heads, T, T) is added to every
    block's attention logits (ALiBi); it must already hold -inf at padded keys."""
    attn_mask = local_attention_mask(x.size(0), attention_window, x.device)
    if attn_bias is not None:
        # one float mask for torch's attention: padding is in the bias, so no key_padding_mask
        attn_mask = attn_bias if attn_mask is None else attn_bias + attn_mask
        padding_mask = None
    if attn_mask is not None:
        # beside a boolean key_padding_mask, the window as a boolean mask too (True: not attended;
        # torch deprecates mixing the two types), else additive in the input's dtype
        attn_mask = attn_mask.to(x.dtype) if padding_mask is None else torch.isinf(attn_mask)
    captured: List[torch.Tensor] = []
    for layer in layers:
        if layers.training and layerdrop > 0 and torch.rand(()) < layerdrop:
            continue
        x, feats = run_block(layer, x, padding_mask, attn_mask)
        if capture is not None:
            captured.append(feats[capture])
    return x, captured


def zero_padding(x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``x`` (B, T, C) with padded steps set to 0 (out of place)."""
    if padding_mask is None:
        return x
    return x.masked_fill(padding_mask.unsqueeze(-1), 0.0)


def pad_time(x: torch.Tensor, padding_mask: Optional[torch.Tensor], multiple: int):
    """Pads ``x`` (B, T, C) on the time axis to a multiple of ``multiple`` (what fairseq's
    encoder does for fused kernels); returns (x, padding_mask, pad_length)."""
    pad = (-x.size(1)) % multiple if multiple > 1 else 0
    if pad == 0:
        return x, padding_mask, 0
    x = F.pad(x, (0, 0, 0, pad))
    if padding_mask is None:
        padding_mask = x.new_zeros(x.shape[:2], dtype=torch.bool)
        padding_mask[:, -pad:] = True
    else:
        padding_mask = F.pad(padding_mask, (0, pad), value=True)
    return x, padding_mask, pad
