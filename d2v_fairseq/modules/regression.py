"""The data2vec regression loss (Baevski et al., 2022, eq. 2)."""

import math
from typing import Optional

import torch
import torch.nn.functional as F


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


def feature_std(y: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the per-channel standard deviation of ``y`` (N, C): the
    ``target_var`` / ``pred_var`` statistic that reveals a collapsed representation."""
    y = y.float().reshape(-1, y.size(-1))
    if y.size(0) < 2:
        return y.new_zeros(())
    return torch.sqrt(y.var(dim=0) + 1e-6).mean()
