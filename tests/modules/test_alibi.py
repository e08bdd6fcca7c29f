import math

import pytest
import torch

from d2v_fairseq.modules.alibi import alibi_slopes

from ..helpers.speech_only_layers import AlibiBias


def test_slopes_are_alibis_geometric_sequence():
    assert alibi_slopes(8) == pytest.approx([2.0 ** -(i + 1) for i in range(8)])
    # 12 heads: the 8-head slopes, then every other slope of 16 heads (2^-0.5, 2^-1.5, ...)
    assert alibi_slopes(12) == pytest.approx([2.0 ** -(i + 1) for i in range(8)] + [2.0 ** -(0.5 + i) for i in range(4)])


def test_bias_by_hand_uses_the_original_positions_and_masks_padding():
    alibi = AlibiBias(heads=2, scale_init=1.0)
    with torch.no_grad():
        alibi.scale.copy_(torch.tensor([2.0, -1.0]))  # a negative scale is clamped to 0
    positions = torch.tensor([[0, 2, 5]])  # frames 1, 3 and 4 left out
    padding = torch.tensor([[False, False, True]])
    bias = alibi(positions, padding).view(1, 2, 3, 3)
    slope0 = alibi_slopes(2)[0]
    expected = -torch.tensor([[0.0, 2, 5], [2, 0, 3], [5, 3, 0]]) * slope0 * 2.0
    assert torch.allclose(bias[0, 0, :, :2], expected[:, :2])
    assert torch.isinf(bias[0, :, :, 2]).all() and (bias[0, :, :, 2] < 0).all()
    assert torch.equal(bias[0, 1, :, :2], torch.zeros(3, 2))


def test_learned_scale_gets_a_gradient_through_attention():
    alibi = AlibiBias(heads=4)
    attn = torch.nn.MultiheadAttention(16, 4)
    x = torch.randn(6, 2, 16)
    bias = alibi(torch.arange(6).expand(2, 6))
    out, _ = attn(x, x, x, attn_mask=bias, need_weights=False)
    out.sum().backward()
    assert alibi.scale.grad is not None and alibi.scale.grad.abs().sum() > 0
    assert not math.isnan(float(alibi.scale.grad.sum()))
