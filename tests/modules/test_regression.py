import math

import torch
import torch.nn.functional as F

from d2v_fairseq.modules.regression import feature_std, regression_loss


def test_beta_zero_is_scaled_squared_error():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(7, 16, generator=g), torch.randn(7, 16, generator=g)
    loss = regression_loss(pred, target, beta=0.0)
    expected = ((pred - target) ** 2).sum(-1) / math.sqrt(16)
    assert torch.allclose(loss, expected, atol=1e-5)
    assert torch.allclose(loss.sum() / 7, F.mse_loss(pred, target) * 16 / 4, atol=1e-5)


def test_smooth_l1_and_explicit_scale():
    pred = torch.tensor([[0.0, 0.0]])
    target = torch.tensor([[1.0, 5.0]])
    # beta=2: |d|<2 -> 0.5 d^2 / 2 = 0.25; |d|>=2 -> |d| - 1 = 4
    assert torch.allclose(regression_loss(pred, target, beta=2.0, scale=1.0), torch.tensor([4.25]))
    assert torch.allclose(regression_loss(pred, target, beta=2.0, scale=0.5), torch.tensor([2.125]))


def test_feature_std_detects_collapse():
    assert feature_std(torch.ones(10, 4)) < 1e-2
    assert feature_std(torch.randn(1000, 4)) > 0.9
