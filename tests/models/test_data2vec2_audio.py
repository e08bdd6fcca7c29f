import pytest
import torch
from fairseq.dataclass.configs import FairseqConfig
from fairseq.models import MODEL_DATACLASS_REGISTRY, MODEL_REGISTRY
from omegaconf import OmegaConf

from d2v_fairseq.models.data2vec2_audio import Data2Vec2AudioConfig, Data2Vec2AudioModel
from d2v_fairseq.modules.regression import regression_loss
from d2v_fairseq.modules.targets import build_targets

from ..helpers.tiny import TINY_AUDIO

CLONES = 3


def tiny_v2(**overrides):
    root = OmegaConf.structured(FairseqConfig)
    fields = dict(TINY_AUDIO, mask_prob=0.5, mask_length=5, clone_batch=CLONES, decoder_dim=16, decoder_groups=4,
                  conv_pos_groups=4, decoder_input_dropout=0.0)
    root.model = OmegaConf.merge(OmegaConf.structured(Data2Vec2AudioConfig), fields, overrides)
    torch.manual_seed(0)
    model = Data2Vec2AudioModel(root.model)
    model.set_num_updates(0)
    return model


@pytest.fixture
def source():
    return torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))


def test_registry_and_release_defaults():
    assert MODEL_REGISTRY["data2vec2_audio"] is Data2Vec2AudioModel
    assert MODEL_DATACLASS_REGISTRY["data2vec2_audio"] is Data2Vec2AudioConfig
    cfg = Data2Vec2AudioConfig()
    assert (cfg.clone_batch, cfg.mask_prob, cfg.mask_length, cfg.average_top_k_layers) == (8, 0.5, 5, 8)
    assert (cfg.ema_decay, cfg.ema_end_decay, cfg.ema_anneal_end_step) == (0.999, 0.99999, 75000)
    assert (cfg.decoder_dim, cfg.decoder_layers, cfg.decoder_kernel, cfg.decoder_groups) == (384, 4, 7, 16)
    assert cfg.use_alibi and cfg.learned_alibi_scale and cfg.instance_norm_target_layer and cfg.loss_scale is None
    assert cfg.loss_beta == 0 and not cfg.ema_layers_only


def test_every_copy_masks_int_p_t_frames_and_copies_differ(source):
    model = tiny_v2()
    out = model(source, sample_ids=[4, 9])
    masks = out["mask_indices"]
    frames = model.output_lengths(torch.tensor([4000]))[0].item()
    assert masks.shape == (2 * CLONES, frames)
    assert set(masks.sum(-1).tolist()) == {int(0.5 * frames)}
    for sample in range(2):
        copies = masks[sample * CLONES:(sample + 1) * CLONES]
        assert not torch.equal(copies[0], copies[1]) and not torch.equal(copies[1], copies[2])


def test_student_blocks_see_only_kept_frames_and_the_decoder_restores_full_length(source):
    model = tiny_v2()
    seen = {}
    model.encoder.layers[0].fc1.register_forward_pre_hook(lambda m, args: seen.update(block=args[0].shape))
    model.decoder.register_forward_hook(lambda m, args, out: seen.update(decoder=out.shape))
    out = model(source, sample_ids=[0, 1])
    frames = out["mask_indices"].size(1)
    kept = frames - int(0.5 * frames)
    kept += kept % model.encoder.required_seq_len_multiple  # fairseq pads time to a multiple
    assert seen["block"] == (kept, 2 * CLONES, 32)  # (T, B, C) inside the blocks
    assert seen["decoder"] == (2 * CLONES, frames, 32)


def test_teacher_runs_once_per_original_sample_and_targets_are_v1s(source):
    model = tiny_v2()
    calls = []
    encode_teacher = model.encode_teacher
    model.encode_teacher = lambda features, padding, blocks: calls.append(features.shape) or encode_teacher(
        features, padding, blocks)
    out = model(source, sample_ids=[0, 1])
    assert len(calls) == 1 and calls[0][0] == 2  # two samples, not 2 x clone_batch
    with torch.no_grad():
        features, _ = model.embed(source, None)
        layers = encode_teacher(features, None, model.teacher.model)
        targets = build_targets(layers, 2, "instance")  # v1's target builder, by hand
    expected = targets.repeat_interleave(CLONES, 0)[out["mask_indices"]]
    assert torch.allclose(out["target"], expected, atol=1e-5)


def test_loss_covers_masked_frames_only(source):
    model = tiny_v2()
    captured = {}

    def keep_output(module, args, output):
        output.retain_grad()
        captured["pred"] = output

    model.decoder.register_forward_hook(keep_output)
    out = model(source, sample_ids=[0, 1])
    masks = out["mask_indices"]
    assert out["sample_size"] == int(masks.sum()) == out["pred"].size(0)
    loss = out["losses"]["regression"]
    assert torch.allclose(loss, regression_loss(captured["pred"][masks], out["target"], 0.0).sum())
    loss.backward()
    grad = captured["pred"].grad.abs().sum(-1)  # (B * R, T)
    assert (grad[~masks] == 0).all() and (grad[masks] > 0).all()


def test_every_student_parameter_learns_and_the_teacher_holds_pos_conv_and_alibi(source):
    model = tiny_v2()
    out = model(source, sample_ids=[0, 1])
    out["losses"]["regression"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert missing == []
    assert not hasattr(model, "mask_emb")  # masked frames are zeroed, not embedded
    teacher = model.teacher.state_dict()
    assert any(k.startswith("pos_conv.") for k in teacher) and "alibi.scale" in teacher
    assert not any(k.startswith("feature_extractor") for k in teacher)  # the conv front end is shared
    assert all(not p.requires_grad for p in model.teacher.model.parameters())


def test_masked_frames_are_zeroed_before_the_positional_conv(source):
    model = tiny_v2(mask_prob=0.5)
    seen = {}
    model.encoder.pos_conv.register_forward_pre_hook(lambda m, args: seen.update(x=args[0].clone()))
    out = model(source, sample_ids=[0, 1])
    x = seen["x"].transpose(1, 2)  # (B * R, T, C)
    masks = out["mask_indices"]
    assert (x[masks] == 0).all() and (x[~masks].abs().sum(-1) > 0).all()


def test_checkpoint_restores_the_teacher_and_fine_tuning_runs_the_full_sequence(source):
    model = tiny_v2()
    model(source, sample_ids=[0, 1])
    with torch.no_grad():
        model.encoder.pos_conv[0][0].weight.add_(1.0)
    model.set_num_updates(1)
    state = model.state_dict()
    other = tiny_v2()
    other.load_state_dict(state)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(other.teacher.state_dict()[k], v), k
    other.remove_pretraining_modules()
    assert other.decoder is None and "_ema" not in other.state_dict()
    other.eval()
    res = other.extract_features(source, None)
    assert res["x"].shape == (2, out_frames(other), 32)


def out_frames(model):
    return int(model.output_lengths(torch.tensor([4000]))[0])


def test_padded_pretraining_batches_are_refused_with_the_fix():
    model = tiny_v2()
    padding = torch.zeros(2, 4000, dtype=torch.bool)
    padding[1, 3000:] = True
    with pytest.raises(ValueError, match="enable_padding=false"):
        model(torch.randn(2, 4000), padding)
