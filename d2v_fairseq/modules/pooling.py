"""Clip-level predictions from frame-level logits (audio tagging, AudioSet-style)."""

from typing import Optional

import torch

from .errors import ModelConfigError

POOLING = ("lin_softmax", "mean", "max")


def pool_frames(logits: torch.Tensor, padding_mask: Optional[torch.Tensor], how: str) -> torch.Tensor:
    """Frame logits (B, T, C) -> clip logits (B, C), padded frames (B, T) left out.

    lin_softmax: linear-softmax pooling of the frame probabilities p_t = sigmoid(logit_t):
    P = sum_t p_t^2 / sum_t p_t (loud frames weigh more), returned as the logit of P;
    mean / max: the mean / max of the frame logits."""
    logits = logits.float()
    keep = None if padding_mask is None else ~padding_mask.unsqueeze(-1)  # (B, T, 1)
    if how == "lin_softmax":
        p = torch.sigmoid(logits)
        if keep is not None:
            p = p * keep
        clip = (p * p).sum(1) / p.sum(1).clamp(min=1e-8)
        clip = clip.clamp(1e-7, 1 - 1e-7)
        return torch.log(clip) - torch.log1p(-clip)
    if how == "mean":
        if keep is None:
            return logits.mean(1)
        return (logits * keep).sum(1) / keep.sum(1).clamp(min=1)
    if how == "max":
        if keep is not None:
            logits = logits.masked_fill(~keep, float("-inf"))
        return logits.max(1).values
    raise ModelConfigError(f"model config: prediction_mode={how!r}; choose one of {POOLING}")
