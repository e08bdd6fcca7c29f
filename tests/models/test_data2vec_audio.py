import pytest
import torch
from fairseq.models import MODEL_DATACLASS_REGISTRY, MODEL_REGISTRY

from d2v_fairseq.criterions import Data2VecRegressionCriterion
from d2v_fairseq.models.data2vec_audio import Data2VecAudioConfig, Data2VecAudioModel
from d2v_fairseq.modules.conv_frontend import parse_conv_spec
from d2v_fairseq.modules.regression import regression_loss

from ..conftest import tiny_audio_cfg


def test_registry_names_resolve_to_this_package():
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    assert MODEL_REGISTRY["data2vec_audio"] is Data2VecAudioModel
    assert MODEL_DATACLASS_REGISTRY["data2vec_audio"] is Data2VecAudioConfig
    assert CRITERION_REGISTRY["data2vec_regression"] is Data2VecRegressionCriterion
    assert TASK_REGISTRY["d2v_audio_pretraining"].__module__.startswith("d2v_fairseq.")


def test_paper_defaults():
    cfg = Data2VecAudioConfig()
    assert (cfg.average_top_k_layers, cfg.loss_beta, cfg.loss_scale) == (8, 0.0, None)
    assert (cfg.ema_decay, cfg.ema_end_decay, cfg.ema_anneal_end_step) == (0.999, 0.9999, 30000)
    assert cfg.instance_norm_target_layer and (cfg.mask_prob, cfg.mask_length) == (0.65, 10)
    assert (cfg.encoder_layers, cfg.encoder_embed_dim) == (12, 768)
    assert parse_conv_spec(cfg.conv_feature_layers, "model.conv_feature_layers") == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


def test_forward_shapes_and_finite_loss(tiny_model, waveforms):
    source, padding = waveforms
    tiny_model.set_num_updates(0)
    out = tiny_model(source, padding)
    n = int(out["mask_indices"].sum())
    assert out["pred"].shape == (n, 32) == out["target"].shape
    assert out["mask_indices"].shape[0] == 2
    assert torch.isfinite(regression_loss(out["pred"], out["target"], 0.0)).all()
    assert out["ema_decay"] == pytest.approx(0.999)
    # padded frames of the short utterance are never masked
    frames = tiny_model.output_lengths(torch.tensor([3000]))[0]
    assert not out["mask_indices"][1, frames:].any()


def test_every_student_parameter_gets_a_gradient_and_the_teacher_none(tiny_model, waveforms):
    source, padding = waveforms
    tiny_model.set_num_updates(0)
    out = tiny_model(source, padding)
    regression_loss(out["pred"], out["target"], 0.0).sum().backward()
    missing = [n for n, p in tiny_model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert missing == []
    teacher_params = list(tiny_model.teacher.model.parameters())
    assert teacher_params and all(p.grad is None and not p.requires_grad for p in teacher_params)
    # the teacher is not a sub-module: not in the optimizer's parameters, not cast by .half()
    assert all(not n.startswith("teacher") for n, _ in tiny_model.named_parameters())


def test_teacher_follows_the_tau_schedule_once_per_update(tiny_model, waveforms):
    tiny_model.set_num_updates(0)
    t0 = tiny_model.teacher.model["layers"][0].fc1.weight.clone()
    with torch.no_grad():
        tiny_model.encoder.layers[0].fc1.weight.add_(1.0)
    student = tiny_model.encoder.layers[0].fc1.weight.clone()
    tiny_model.set_num_updates(50)
    tau = 0.999 + (0.9999 - 0.999) * 50 / 100
    assert torch.allclose(tiny_model.teacher.model["layers"][0].fc1.weight, tau * t0 + (1 - tau) * student, atol=1e-6)
    after = tiny_model.teacher.model["layers"][0].fc1.weight.clone()
    tiny_model.set_num_updates(50)  # same update again (update_freq > 1): no second step
    assert torch.equal(tiny_model.teacher.model["layers"][0].fc1.weight, after)


def _targets(cfg_overrides, waveforms, teacher_noise=True):
    torch.manual_seed(0)
    model = Data2VecAudioModel(tiny_audio_cfg(**cfg_overrides)).eval()
    model.set_num_updates(0)
    source, padding = waveforms
    with torch.no_grad():
        features, frame_padding = model.embed(source, padding)
        return model.make_targets(features, frame_padding)


@pytest.mark.parametrize(
    "knob",
    [
        {"average_top_k_layers": 1},
        {"average_top_k_layers": 3},
        {"target_feature": "attn"},
        {"target_feature": "block"},
        {"teacher_attention_window": 2},
        {"instance_norm_target_layer": False, "layer_norm_target_layer": True},
        {"instance_norm_targets": True},
    ],
)
def test_ablation_knobs_change_the_targets(knob, waveforms):
    base = _targets({}, waveforms)
    changed = _targets(knob, waveforms)
    assert base.shape == changed.shape
    assert not torch.allclose(base, changed, atol=1e-4)


def test_conflicting_target_norms_are_a_config_error():
    with pytest.raises(ValueError, match="at most one of"):
        Data2VecAudioModel(tiny_audio_cfg(layer_norm_target_layer=True))


def test_state_dict_carries_the_teacher_and_restores_it(tiny_model, waveforms):
    tiny_model.set_num_updates(0)
    with torch.no_grad():
        tiny_model.encoder.layers[1].fc2.weight.mul_(2.0)
    tiny_model.set_num_updates(1)
    state = tiny_model.state_dict()
    assert "_ema" in state and "layers.1.fc2.weight" in state["_ema"]
    assert not any(k.startswith("pos_conv") for k in state["_ema"])  # shared, not EMA'd
    torch.manual_seed(5)
    other = Data2VecAudioModel(tiny_audio_cfg())
    other.set_num_updates(2)  # as fairseq's trainer does on resume: the saved count, before the weights load
    other.load_state_dict(state)
    for k, v in tiny_model.teacher.state_dict().items():
        assert torch.equal(other.teacher.state_dict()[k], v), k
    assert other.teacher_updates == 1  # saved after update 2's optimizer step: it holds update 1's student


def test_features_only_and_remove_pretraining_modules(tiny_model, waveforms):
    source, padding = waveforms
    tiny_model.remove_pretraining_modules()
    tiny_model.eval()
    res = tiny_model.extract_features(source, padding)
    assert res["x"].shape[0] == 2 and res["x"].shape[-1] == 32
    assert res["padding_mask"].shape == res["x"].shape[:2]
    assert "_ema" not in tiny_model.state_dict()


def test_remove_pretraining_modules_can_keep_the_first_blocks(tiny_model):
    tiny_model.remove_pretraining_modules(last_layer=1)
    assert len(tiny_model.encoder.layers) == 2 and tiny_model.final_proj is None


def test_modalities_change_shared_defaults_without_redeclaring_their_help():
    from dataclasses import fields

    from d2v_fairseq.models import (
        Data2Vec2AudioConfig,
        Data2VecAudioConfig,
        Data2VecTextConfig,
        Data2VecVisionConfig,
    )
    from d2v_fairseq.models.config import Data2VecSharedConfig

    shared = {f.name: f for f in fields(Data2VecSharedConfig)}
    for config in (Data2VecAudioConfig, Data2Vec2AudioConfig, Data2VecTextConfig, Data2VecVisionConfig):
        for f in fields(config):
            if f.name in shared:
                assert f.metadata.get("help") == shared[f.name].metadata.get("help"), (config.__name__, f.name)
    # and the modalities' own values are in force
    assert Data2VecTextConfig().average_top_k_layers == 10 and Data2VecVisionConfig().average_top_k_layers == 6
    assert Data2VecAudioConfig().instance_norm_target_layer and Data2Vec2AudioConfig().ema_end_decay == 0.99999


@pytest.mark.parametrize("invariant", [True, False])
def test_features_do_not_depend_on_the_batch_unless_asked_for_the_reference(invariant, waveforms):
    torch.manual_seed(0)
    model = Data2VecAudioModel(tiny_audio_cfg(batch_invariant_inference=invariant)).eval()
    source, padding = waveforms  # the second utterance: 3000 of 4000 samples
    with torch.no_grad():
        batched, frame_padding = model.hidden_states(source, padding)
        alone, _ = model.hidden_states(source[1:, :3000])
    n = alone[0].size(1)
    assert not frame_padding[1, :n].any() and frame_padding[1, n:].all()
    worst = max((b[1, :n] - a[0]).abs().max().item() for b, a in zip(batched, alone, strict=False))
    if invariant:
        assert worst < 1e-4
    else:  # the reference: padding leaks through the 3-layer positional conv into the last frames
        assert worst > 1e-3


def test_a_saved_teacher_tensor_the_student_shares_is_a_warning_when_it_differs(tiny_model, caplog):
    import logging


    tiny_model.train()
    tiny_model.set_num_updates(1)
    state = tiny_model.state_dict()
    if "_ema" not in state:
        pytest.skip("the tiny model has no teacher before its first update")
    # the positional conv: the student's, shared with the teacher; a saved teacher may hold a copy
    student = {k: v for k, v in state.items() if k.startswith("encoder.pos_conv")}
    assert student, "the positional encoder is shared with the student"
    scope = {k.split(".", 1)[1]: v.clone() for k, v in student.items()}  # keyed as the teacher's part
    shared = sorted(scope)
    state["_ema"] = {**state["_ema"], **scope}
    with caplog.at_level(logging.INFO, logger="d2v_fairseq.models.base"):
        tiny_model.load_state_dict(state)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # equal: INFO only
    state["_ema"][shared[0]] = scope[shared[0]] + 0.5
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="d2v_fairseq.models.base"):
        tiny_model.load_state_dict(state)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"largest difference 0.5 in {shared[0]}" in warnings[0]
