"""The ViT blocks: the runner equals a plain reference computation, the bias layout is BEiT's."""

import math

import pytest
import torch
import torch.nn.functional as F

from d2v_fairseq.modules.vit import DropPath, PatchEmbed, VisionTransformer, relative_position_index


def reference_block(block, x, bias):
    """One block written out: pre-LN, softmax(QK^T / sqrt(d) + bias) V, layer scale, MLP."""
    B, N, D = x.shape
    H = block.attn.num_heads
    h = F.layer_norm(x, (D,), block.norm1.weight, block.norm1.bias, 1e-6)
    w = block.attn.qkv.weight
    q = h @ w[:D].T + block.attn.q_bias
    k = h @ w[D:2 * D].T
    v = h @ w[2 * D:].T + block.attn.v_bias
    split = lambda t: t.view(B, N, H, D // H).transpose(1, 2)  # noqa: E731
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(D // H) + bias
    attn = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(B, N, D)
    x = x + block.gamma_1 * block.attn.proj(attn)
    h = F.layer_norm(x, (D,), block.norm2.weight, block.norm2.bias, 1e-6)
    fc1, fc2 = block.mlp[0], block.mlp[2]
    return x + block.gamma_2 * fc2(F.gelu(fc1(h)))


def test_block_runner_equals_a_reference_computation():
    torch.manual_seed(0)
    vit = VisionTransformer((3, 4), dim=16, depth=3, num_heads=4, mlp_ratio=2.0, layer_scale=0.5, drop_path=0.3).eval()
    with torch.no_grad():
        vit.rel_pos_bias.relative_position_bias_table.normal_()
    x = torch.randn(2, 13, 16)
    out, blocks = vit(x, capture="block")
    expected = x
    bias = vit.rel_pos_bias()
    for i, block in enumerate(vit.blocks):
        expected = reference_block(block, expected, bias)
        torch.testing.assert_close(blocks[i], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_relative_position_index_matches_transformers_layout():
    hf = pytest.importorskip("transformers.models.data2vec.modeling_data2vec_vision")
    for grid in ((14, 14), (3, 5)):
        expected = hf.Data2VecVisionRelativePositionBias.generate_relative_position_index(grid)
        assert torch.equal(relative_position_index(grid), expected)


def test_bias_of_two_patch_pairs_with_the_same_offset_is_shared():
    index = relative_position_index((4, 4))
    # patches are numbered row-major from 1 (0 is CLS): (0,0)->(1,1) and (2,2)->(3,3)
    assert index[1, 1 + 5] == index[1 + 10, 1 + 15]
    assert index[1, 2] != index[2, 1]
    assert len({int(index[0, 3]), int(index[3, 0]), int(index[0, 0])}) == 3


def test_drop_path_acts_only_in_training():
    drop = DropPath(0.5)
    x = torch.ones(1000, 2, 3)
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    y = drop(x)
    dropped = (y == 0).all(-1).all(-1)
    assert 300 < int(dropped.sum()) < 700  # whole samples dropped, about half
    assert torch.allclose(y[~dropped], torch.full_like(y[~dropped], 2.0))  # the rest rescaled by 1/keep


def test_image_size_must_be_a_multiple_of_the_patch_size():
    with pytest.raises(ValueError, match="image_size=30 is not a multiple of patch_size=4"):
        PatchEmbed(30, 4, 3, 8)
    with pytest.raises(ValueError, match="built for image_size=32"):
        PatchEmbed(32, 4, 3, 8)(torch.zeros(1, 3, 28, 28))
