import pytest
import torch
from fairseq.models.wav2vec.wav2vec2 import TransformerSentenceEncoderLayer

from d2v_fairseq.modules.transformer import local_attention_mask, run_block, run_time_major_layers


@pytest.mark.parametrize("layer_norm_first", [False, True])
def test_run_block_equals_fairseq_forward(layer_norm_first):
    torch.manual_seed(0)
    layer = TransformerSentenceEncoderLayer(16, 32, 4, dropout=0.0, attention_dropout=0.0,
                                            activation_dropout=0.0, activation_fn="gelu",
                                            layer_norm_first=layer_norm_first).eval()
    x = torch.randn(7, 2, 16)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    expected, (_, ffn) = layer(x, self_attn_padding_mask=padding)
    out, feats = run_block(layer, x, padding)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(feats["ffn"], ffn, atol=1e-6)
    assert torch.equal(feats["block"], out)


def test_local_window_limits_what_each_step_sees():
    torch.manual_seed(0)
    layers = torch.nn.ModuleList([TransformerSentenceEncoderLayer(16, 32, 4, 0.0, 0.0, 0.0, "gelu")]).eval()
    x = torch.randn(12, 1, 16)
    changed = x.clone()
    changed[11] += 5.0  # perturb the last step only
    base, _ = run_time_major_layers(layers, x, None, attention_window=2)
    pert, _ = run_time_major_layers(layers, changed, None, attention_window=2)
    assert torch.allclose(base[:9], pert[:9], atol=1e-6)  # steps 0..8 cannot see step 11
    assert not torch.allclose(base[9:], pert[9:])
    full, _ = run_time_major_layers(layers, changed, None)
    assert not torch.allclose(full[:9], base[:9])  # without a window, everything sees it
    mask = local_attention_mask(5, 1, torch.device("cpu"))
    assert mask[0, 1] == 0 and mask[0, 2] == float("-inf")


@pytest.mark.parametrize("normalize_before", [False, True])
def test_run_block_equals_fairseq_forward_for_text_layers(normalize_before):
    """The text model's blocks (fairseq's TransformerEncoderLayerBase, RoBERTa layout): the
    same output, and ``ffn`` is fairseq's own fc2 result (before dropout, residual and LN)."""
    from fairseq.models.transformer import TransformerConfig
    from fairseq.modules.transformer_layer import TransformerEncoderLayerBase

    cfg = TransformerConfig()
    cfg.encoder.embed_dim, cfg.encoder.ffn_embed_dim, cfg.encoder.attention_heads = 16, 32, 4
    cfg.encoder.normalize_before, cfg.activation_fn = normalize_before, "gelu"
    torch.manual_seed(0)
    layer = TransformerEncoderLayerBase(cfg, return_fc=True).eval()
    x = torch.randn(7, 2, 16)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    expected, fc_result = layer(x, padding)
    out, feats = run_block(layer, x, padding)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(feats["ffn"], fc_result, atol=1e-6)


@pytest.mark.parametrize("layer_norm_first", [False, True])
def test_ffn_residual_target_is_the_stream_before_the_last_layer_norm(layer_norm_first):
    """ffn-residual by hand: the input after the attention sub-block, plus fc2(gelu(fc1(.)));
    post-LN: before the final LayerNorm (so the block output is its LayerNorm); pre-LN: the
    block's output itself."""
    torch.manual_seed(0)
    layer = TransformerSentenceEncoderLayer(16, 32, 4, dropout=0.0, attention_dropout=0.0,
                                            activation_dropout=0.0, activation_fn="gelu",
                                            layer_norm_first=layer_norm_first).eval()
    x = torch.randn(5, 2, 16)
    out, feats = run_block(layer, x, None)
    a = x if not layer_norm_first else layer.self_attn_layer_norm(x)
    attn, _ = layer.self_attn(query=a, key=a, value=a, need_weights=False)
    h = x + attn
    if not layer_norm_first:
        h = layer.self_attn_layer_norm(h)
    f_in = layer.final_layer_norm(h) if layer_norm_first else h
    expected = h + layer.fc2(torch.nn.functional.gelu(layer.fc1(f_in)))
    assert torch.allclose(feats["ffn-residual"], expected, atol=1e-5)
    if layer_norm_first:
        assert torch.equal(feats["ffn-residual"], out)
    else:
        assert torch.allclose(layer.final_layer_norm(feats["ffn-residual"]), out, atol=1e-6)
        assert not torch.allclose(feats["ffn-residual"], out)


def test_window_steps_reads_steps_and_fractions():
    from d2v_fairseq.modules.transformer import window_steps

    assert window_steps(0, 100) == 0
    assert window_steps(8, 100) == 8
    assert window_steps(0.25, 100) == 25
    assert window_steps(0.001, 100) == 1  # at least one step
    with pytest.raises(ValueError, match="teacher_attention_window"):
        window_steps(-1, 10)
    frac = local_attention_mask(20, 0.1, torch.device("cpu"))  # +-2 steps
    assert frac[10, 12] == 0 and frac[10, 13] == float("-inf")
