import pytest
import torch
from fairseq.models.wav2vec.wav2vec2 import ConvFeatureExtractionModel

from d2v_fairseq.modules.conv_frontend import conv_features, layer_norm_blocks


@pytest.mark.parametrize("conv_bias", [False, True])
def test_same_features_and_gradients_as_fairseq(conv_bias):
    torch.manual_seed(0)
    layers = [(16, 10, 5), (16, 3, 2), (16, 2, 2)]
    model = ConvFeatureExtractionModel(layers, dropout=0.0, mode="layer_norm", conv_bias=conv_bias)
    source = torch.randn(3, 2000)
    expected = model(source).transpose(1, 2)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    expected_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = conv_features(model, source)
    out.backward(grad)
    assert out.shape == expected.shape == (3, 99, 16)
    assert torch.allclose(out, expected, atol=1e-5)
    for p, g in zip(model.parameters(), expected_grads, strict=False):
        assert torch.allclose(p.grad, g, atol=1e-4, rtol=1e-4)


def test_group_norm_mode_falls_back_to_the_module():
    torch.manual_seed(0)
    model = ConvFeatureExtractionModel([(8, 10, 5), (8, 3, 2)], dropout=0.0, mode="default")
    assert layer_norm_blocks(model) is None
    source = torch.randn(2, 1000)
    assert torch.equal(conv_features(model, source), model(source).transpose(1, 2))
