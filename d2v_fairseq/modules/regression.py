"""The data2vec regression loss (Baevski et al., 2022, eq. 2)."""

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .errors import ModelConfigError


def regression_loss(
    pred: torch.Tensor, target: torch.Tensor, beta: float, scale: Optional[float] = None
) -> torch.Tensor:
    """Per-step loss between ``pred`` and ``target`` (both (N, C)), summed over C.

    Smooth L1 with ``beta`` (beta = 0 gives the squared error), times ``scale``, or
    1/sqrt(C) when ``scale`` is None. Returns (N,) fp32.
    """
    pred, target = pred.float(), target.float()
    if beta == 0:
        loss = F.mse_loss(pred, target, reduction="none")
    else:
        loss = F.smooth_l1_loss(pred, target, reduction="none", beta=beta)
    if scale is None:
        scale = 1.0 / math.sqrt(pred.size(-1))
    return loss.sum(dim=-1) * scale


class RepresentationCollapse(RuntimeError):
    """The targets or predictions stopped varying: student and teacher collapsed to a constant
    representation and further training is wasted."""


def check_collapse(num_updates: int, target_var: float, pred_var: float, min_target_var: float,
                   min_pred_var: float, after_updates: int, config: str) -> None:
    """The collapse guard of every model family: from update ``after_updates`` on, raises
    RepresentationCollapse when ``target_var`` or ``pred_var`` (see :func:`feature_std`) is below
    its floor. ``config``: where the floors are set (``criterion`` or ``model``), for the message."""
    if num_updates < after_updates:
        return
    for name, value, floor in (("target_var", target_var, min_target_var), ("pred_var", pred_var, min_pred_var)):
        if value < floor:
            raise RepresentationCollapse(
                f"{name}={value:.4g} fell below {config}.min_{name}={floor} at update {num_updates}: the "
                f"representation has collapsed. Lower the learning rate, raise ema_decay or check the data; the "
                f"floors are {config}.min_target_var and {config}.min_pred_var, checked from update "
                f"{config}.var_check_after_updates={after_updates} on.")


def checked_loss_scale(scale: Optional[float], nonpositive_is_default: bool = False) -> Optional[float]:
    """The loss scale :func:`regression_loss` gets (None: 1/sqrt(dim)). A scale <= 0 would train
    nothing (the loss is 0 or negative): read as the default where a reference does so
    (``nonpositive_is_default``: v1 text), refused otherwise."""
    if scale is None or scale > 0:
        return scale
    if nonpositive_is_default:
        return None
    raise ModelConfigError(f"model config: loss_scale={scale} makes the loss 0 or negative (nothing trains); leave it "
                     "unset (null: 1/sqrt(embedding dim)) or give a positive scale")


def feature_std(y: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the per-channel standard deviation of ``y`` (N, C): the
    ``target_var`` / ``pred_var`` statistic that reveals a collapsed representation."""
    y = y.float().reshape(-1, y.size(-1))
    if y.size(0) < 2:
        return y.new_zeros(())
    return torch.sqrt(y.var(dim=0) + 1e-6).mean()
