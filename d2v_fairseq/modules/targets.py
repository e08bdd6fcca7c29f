"""Target building: average of the teacher's top-K block outputs, each normalized without parameters.

data2vec (Baevski et al., 2022, sec. 3.3): instance norm per layer for speech, layer norm for
text and vision; the average may be normalized again.
"""

from typing import List, Sequence

import torch
import torch.nn.functional as F

LAYER_NORMS = ("none", "instance", "layer", "batch", "group")
FINAL_NORMS = ("none", "instance", "layer")


def normalize(y: torch.Tensor, how: str) -> torch.Tensor:
    """Parameter-free normalization of ``y`` (B, T, C), computed in fp32.

    instance: per sample and channel over time; layer: per step over channels;
    batch: per channel over batch and time; group: per sample over time and channels.
    """
    y = y.float()
    if how == "none":
        return y
    if how == "instance":
        return F.instance_norm(y.transpose(1, 2)).transpose(1, 2)  # (B, C, T) statistics over T
    if how == "layer":
        return F.layer_norm(y, y.shape[-1:])
    if how == "batch":
        return F.batch_norm(y.transpose(1, 2), None, None, training=True).transpose(1, 2)
    if how == "group":
        return F.layer_norm(y, y.shape[-2:])
    raise ValueError(f"unknown target normalization {how!r}; choose one of {LAYER_NORMS}")


def build_targets(
    layer_outputs: Sequence[torch.Tensor], top_k: int, layer_norm: str, final_norm: str = "none"
) -> torch.Tensor:
    """Average of the last ``top_k`` entries of ``layer_outputs`` (each (B, T, C)), each
    normalized by ``layer_norm``; the average is then normalized by ``final_norm``.

    Returns (B, T, C) fp32.
    """
    if not 1 <= top_k <= len(layer_outputs):
        raise ValueError(f"average_top_k_layers={top_k} must be in [1, {len(layer_outputs)}]")
    if final_norm not in FINAL_NORMS:
        raise ValueError(f"unknown final target normalization {final_norm!r}; choose one of {FINAL_NORMS}")
    chosen: List[torch.Tensor] = [normalize(y, layer_norm) for y in layer_outputs[-top_k:]]
    target = sum(chosen) / len(chosen)
    return normalize(target, final_norm)
