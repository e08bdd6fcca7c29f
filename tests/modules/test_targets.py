import pytest
import torch

from d2v_fairseq.modules.targets import build_targets, normalize


def _layers():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(2, 5, 4, generator=g) * (i + 1) + i for i in range(4)]


def test_targets_equal_hand_computation_with_instance_norm():
    layers = _layers()
    target = build_targets(layers, top_k=2, layer_norm="instance")
    expected = torch.zeros(2, 5, 4)
    for y in layers[-2:]:
        mean = y.mean(dim=1, keepdim=True)  # over time, per sample and channel
        var = y.var(dim=1, unbiased=False, keepdim=True)
        expected += (y - mean) / torch.sqrt(var + 1e-5)
    expected /= 2
    assert torch.allclose(target, expected, atol=1e-5)


def test_targets_equal_hand_computation_with_layer_norm_and_final_norm():
    layers = _layers()
    target = build_targets(layers, top_k=3, layer_norm="layer", final_norm="layer")
    avg = sum((y - y.mean(-1, keepdim=True)) / torch.sqrt(y.var(-1, unbiased=False, keepdim=True) + 1e-5)
              for y in layers[-3:]) / 3
    expected = (avg - avg.mean(-1, keepdim=True)) / torch.sqrt(avg.var(-1, unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(target, expected, atol=1e-5)


def test_no_norm_is_the_plain_average_of_top_k():
    layers = _layers()
    assert torch.allclose(build_targets(layers, 1, "none"), layers[-1])
    assert torch.allclose(build_targets(layers, 4, "none"), sum(layers) / 4)


@pytest.mark.parametrize("how", ["batch", "group"])
def test_batch_and_group_norm_statistics(how):
    y = normalize(_layers()[3], how)
    dims = (0, 1) if how == "batch" else (1, 2)
    assert torch.allclose(y.mean(dim=dims), torch.zeros(1), atol=1e-5)
    assert torch.allclose(y.var(dim=dims, unbiased=False), torch.ones(1), atol=1e-3)


def test_bad_k_and_norm_names_raise():
    with pytest.raises(ValueError, match="average_top_k_layers: 5 is outside 1..4"):
        build_targets(_layers(), 5, "none")
    with pytest.raises(ValueError, match="unknown target normalization"):
        build_targets(_layers(), 1, "weird")
