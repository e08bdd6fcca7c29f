"""Target building: average of the teacher's top-K block outputs, each normalized without parameters.

data2vec (Baevski et al., 2022, sec. 3.3): instance norm per layer for speech, layer norm for
text and vision; the average may be normalized again.
"""

from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .errors import ModelConfigError

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


# the config flags (v1 and 2.0 name them alike; a flag a config lacks is off) -> normalization
LAYER_NORM_FLAGS = (("instance", "instance_norm_target_layer"), ("layer", "layer_norm_target_layer"),
                    ("batch", "batch_norm_target_layer"), ("group", "group_norm_target_layer"))
FINAL_NORM_FLAGS = (("layer", "layer_norm_targets"), ("instance", "instance_norm_targets"))


def target_norms(cfg) -> Tuple[str, Tuple[str, ...]]:
    """(per-block normalization, normalizations of the average in the order applied) named by a
    model config's boolean flags: at most one per-block flag; ``layer_norm_targets`` then
    ``instance_norm_targets`` on the average, as both references apply them."""
    chosen = [name for name, flag in LAYER_NORM_FLAGS if getattr(cfg, flag, False)]
    if len(chosen) > 1:
        raise ModelConfigError(f"model config: at most one of instance/layer/batch/group_norm_target_layer may be "
                         f"true, got {chosen}")
    final = tuple(name for name, flag in FINAL_NORM_FLAGS if getattr(cfg, flag, False))
    return (chosen[0] if chosen else "none"), final


def build_targets(
    layer_outputs: Sequence[torch.Tensor], top_k: int, layer_norm: str,
    final_norm: Union[str, Sequence[str]] = (),
) -> torch.Tensor:
    """Average of the last ``top_k`` entries of ``layer_outputs`` (each (B, T, C)), each
    normalized by ``layer_norm``; the average is then normalized by ``final_norm`` (one name or
    several, applied in order).

    Returns (B, T, C) fp32.
    """
    check_top_k(top_k, len(layer_outputs))
    finals = (final_norm,) if isinstance(final_norm, str) else tuple(final_norm)
    for name in finals:
        if name not in FINAL_NORMS:
            raise ValueError(f"unknown final target normalization {name!r}; choose one of {FINAL_NORMS}")
    chosen: List[torch.Tensor] = [normalize(y, layer_norm) for y in layer_outputs[-top_k:]]
    target = sum(chosen) / len(chosen)
    for name in finals:
        target = normalize(target, name)
    return target if finals else target.float()


def check_top_k(top_k: int, depth: int, depth_key: str = "the model's depth") -> None:
    """Raises ModelConfigError unless 1 <= ``top_k`` <= ``depth`` (the number of blocks, whose
    config key ``depth_key`` names): the targets average the top K blocks' outputs."""
    if not 1 <= top_k <= depth:
        raise ModelConfigError(f"{top_k} is outside 1..{depth}: the targets average the top K of the model's "
                               f"{depth} blocks ({depth_key}={depth})", path="model.average_top_k_layers")
