import pytest
import torch
import torch.nn.functional as F

from ..helpers.speech_only_layers import ConvDecoder1d


def test_decoder_keeps_the_length_and_equals_a_hand_computation():
    torch.manual_seed(0)
    decoder = ConvDecoder1d(embed_dim=16, dim=8, layers=3, kernel=7, groups=4)
    x = torch.randn(2, 30, 16)
    y = decoder(x)
    assert y.shape == (2, 30, 16)

    def layer(conv, h):  # conv -> layer norm over channels (no affine) -> GELU
        z = conv(h)
        return F.gelu(F.layer_norm(z.transpose(1, 2), (z.size(1),)).transpose(1, 2))

    h = x.transpose(1, 2)
    h = layer(decoder.convs[0], h)  # the first layer changes the width: no residual
    for conv in decoder.convs[1:]:
        h = h + layer(conv, h)
    assert torch.allclose(y, decoder.proj(h.transpose(1, 2)), atol=1e-6)


def test_decoder_frames_see_only_their_neighbourhood():
    torch.manual_seed(0)
    decoder = ConvDecoder1d(embed_dim=16, dim=16, layers=2, kernel=3, groups=4)
    x = torch.randn(1, 20, 16)
    y = decoder(x)
    x2 = x.clone()
    x2[0, 10] += 1.0
    changed = (decoder(x2) - y).abs().sum(-1)[0] > 1e-7
    # two layers of kernel 3: frame 10 reaches frames 8..12 only
    assert changed.nonzero().flatten().tolist() == [8, 9, 10, 11, 12]


def test_bad_decoder_shapes_are_config_errors():
    with pytest.raises(ValueError, match="decoder_kernel=6"):
        ConvDecoder1d(16, 16, kernel=6, groups=4)
    with pytest.raises(ValueError, match="decoder_groups=16 does not divide the model width 24"):
        ConvDecoder1d(24, 32, groups=16)
