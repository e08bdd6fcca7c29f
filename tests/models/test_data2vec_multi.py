"""data2vec_multi (data2vec 2.0) against fairseq's own reference model, per modality: the same
parameter names both ways, the same features, teacher and pre-training loss; and the training
behaviour the package promises (gradients, EMA, seeded masks, clear errors)."""

import pytest
import torch

from d2v_fairseq.models.data2vec_multi import Data2VecMultiModel
from d2v_fairseq.models.multi_config import Data2VecMultiConfig
from d2v_fairseq.modules.conv_frontend import parse_conv_spec
from d2v_fairseq.modules.multi_layers import sincos_positions_2d

from ..helpers import reference_v2 as ref

MODALITIES = ("AUDIO", "IMAGE", "TEXT")


def build_ours(modality, **overrides):
    root = ref.tiny_root(Data2VecMultiConfig, modality, **overrides)
    task = ref.TextTask(ref.tiny_dictionary()) if modality == "TEXT" else None
    torch.manual_seed(0)
    return Data2VecMultiModel.build_model(root.model, task)


def valid(x, padding):
    return x if padding is None else x[~padding]


@pytest.mark.parametrize("modality", MODALITIES)
def test_reference_weights_load_strictly_and_give_its_features(modality):
    theirs = ref.train_reference(ref.build_reference(modality)[0], modality)
    ours = build_ours(modality)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    source, padding = ref.tiny_inputs(modality)
    with torch.no_grad():
        a = theirs.extract_features(source, padding_mask=padding)
        b = ours.extract_features(source, padding_mask=padding)
    assert a["x"].shape == b["x"].shape
    pad = a["padding_mask"]
    assert (valid(a["x"], pad) - valid(b["x"], pad)).abs().max() < 1e-4
    for la, lb in zip(a["layer_results"], b["layer_results"], strict=False):
        assert (valid(la, pad) - valid(lb, pad)).abs().max() < 1e-4
    # the teacher: same keys, same tensors
    saved, mine = theirs.state_dict()["_ema"], ours.state_dict()["_ema"]
    assert sorted(saved) == sorted(mine)
    assert all(torch.equal(saved[k].float(), mine[k]) for k in saved)


@pytest.mark.parametrize("modality", MODALITIES)
def test_our_weights_load_strictly_into_the_reference(modality):
    ours = build_ours(modality)
    source, padding = ref.tiny_inputs(modality)
    out = ours(source, padding_mask=padding if modality != "AUDIO" else None, id=torch.arange(2))
    sum(v.sum() for v in out["losses"].values()).backward()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    ours.set_num_updates(1)
    theirs, _ = ref.build_reference(modality, seed=5)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        a = theirs.extract_features(source, padding_mask=padding)
        b = ours.extract_features(source, padding_mask=padding)
    assert (valid(a["x"], a["padding_mask"]) - valid(b["x"], a["padding_mask"])).abs().max() < 1e-4
    for key, value in ours.state_dict()["_ema"].items():
        assert torch.equal(theirs.ema.fp32_params[key], value), key


@pytest.mark.parametrize("modality", MODALITIES)
def test_pretraining_loss_equals_the_reference_on_the_same_masks(modality):
    theirs = ref.train_reference(ref.build_reference(modality)[0], modality)
    ours = build_ours(modality)
    ours.load_state_dict(theirs.state_dict())
    for model in (theirs, ours):  # no random draws: noise at masked steps and decoder dropout off
        for encoder in model.modality_encoders.values():
            encoder.modality_cfg.mask_noise_std = 0.0
            encoder.modality_cfg.decoder.input_dropout = 0.0
        model.eval()
    source, _ = ref.tiny_inputs(modality)
    if modality == "AUDIO":
        source = source[:, :3000]  # unpadded: the student's copies keep equal lengths
    steps = ours.extract_features(source)["x"].size(1)
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(4, steps, dtype=torch.bool)  # 2 samples x clone_batch 2
    for row in range(4):
        mask[row, torch.randperm(steps, generator=g)[: steps // 2]] = True
    with torch.no_grad():
        a = theirs(source, precomputed_mask=mask.float() if modality == "TEXT" else mask.to(torch.uint8))
        b = ours(source, precomputed_mask=mask)
    assert sorted(a["losses"]) == sorted(b["losses"])
    for key in a["losses"]:
        assert torch.allclose(a["losses"][key].sum(), b["losses"][key].sum(), rtol=1e-4), key
    assert int(a["sample_size"]) == int(b["sample_size"]) == int(mask.sum())


@pytest.mark.parametrize("modality", MODALITIES)
def test_training_step_trains_the_student_and_the_ema_moves_the_teacher(modality):
    model = build_ours(modality)
    model.train()
    source, padding = ref.tiny_inputs(modality)
    out = model(source, padding_mask=None if modality == "AUDIO" else padding, id=torch.tensor([7, 8]))
    loss = sum(v.sum() for v in out["losses"].values())
    assert torch.isfinite(loss)
    loss.backward()
    frozen = {"modality_encoders.IMAGE.fixed_positional_encoder.positions"}
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in frozen and p.grad is None]
    assert not missing
    assert all(not p.requires_grad for p in model.teacher.model.parameters())
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    model.set_num_updates(1)
    after = model.teacher.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and abs(model.teacher.decay - model.ema_decay(1)) < 1e-12


def test_masks_repeat_for_one_seed_update_and_ids_and_differ_across_copies():
    model = build_ours("AUDIO")
    encoder = model.modality_encoders["AUDIO"]
    from d2v_fairseq.models.multi_encoders import MaskSeeds

    seeds = MaskSeeds(1, 5, torch.tensor([3, 4]))
    a = encoder.compute_mask(4, 50, None, seeds, 2, "cpu").mask
    b = encoder.compute_mask(4, 50, None, seeds, 2, "cpu").mask
    c = encoder.compute_mask(4, 50, None, MaskSeeds(1, 6, torch.tensor([3, 4])), 2, "cpu").mask
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # the two copies of sample 3
    assert len(set(a.sum(1).tolist())) == 1  # the same count in every row


def test_a_resumed_model_takes_the_ema_step_the_saved_one_had_not_taken_yet():
    """fairseq takes update n's EMA step at the start of update n + 1 and saves in between: the
    saved teacher lacks the last update's student, which the resumed run must absorb once."""
    straight = build_ours("TEXT")
    straight.train()

    def update(model, n):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * n)

    for n in (1, 2, 3):
        update(straight, n)
        if n == 3:
            state = straight.state_dict()  # the checkpoint of update 3
        straight.set_num_updates(n)  # (the start of update n + 1)
    resumed = build_ours("TEXT")
    resumed.train()
    resumed.set_num_updates(3)  # the trainer, before loading the checkpoint
    resumed.load_state_dict(state)
    resumed.set_num_updates(3)  # the start of update 4
    resumed.set_num_updates(3)  # a repeated call takes no second step
    for key, value in straight.teacher.state_dict().items():
        assert torch.equal(resumed.teacher.state_dict()[key], value), key


def test_unsupported_and_bad_settings_fail_with_the_config_key():
    with pytest.raises(ValueError, match="shared_decoder"):
        build_ours("AUDIO", shared_decoder={"decoder_dim": 8})
    with pytest.raises(ValueError, match="loss_scale"):
        build_ours("AUDIO", loss_scale=0.0)
    with pytest.raises(ValueError, match="learned_alibi"):
        build_ours("AUDIO", modalities={"audio": {"learned_alibi": True}})
    with pytest.raises(ValueError, match="feature_encoder_spec"):
        build_ours("AUDIO", modalities={"audio": {"feature_encoder_spec": "[(512, 10, 5)] + __import__('os')"}})
    with pytest.raises(ValueError, match="TEXT modality needs the task's dictionary"):
        Data2VecMultiModel.build_model(ref.tiny_root(Data2VecMultiConfig, "TEXT").model, None)


def test_conv_spec_is_read_without_eval():
    assert parse_conv_spec("[(512, 10, 5)] + [(512, 3, 2)] * 2", "key") == [(512, 10, 5), (512, 3, 2), (512, 3, 2)]


def test_sincos_positions_equal_mae_s():
    import sys

    ref.reference()  # imports the reference's mae.py too
    mae = sys.modules["examples.data2vec.models.mae"]
    expected = torch.from_numpy(mae.get_2d_sincos_pos_embed(64, 4, cls_token=False)).float()
    assert torch.allclose(sincos_positions_2d(64, 4), expected, atol=1e-6)


def test_a_collapsed_run_stops_after_5000_updates_naming_the_limit():
    model = build_ours("IMAGE", min_target_var=10.0)  # no target std reaches 10
    model.train()
    source, _ = ref.tiny_inputs("IMAGE")
    model(source)  # early updates: no check
    model.num_updates = 5001
    with pytest.raises(RuntimeError, match="target_var=.* fell below model.min_target_var=10.0 at update 5001"):
        model(source)


@pytest.mark.parametrize("modality", MODALITIES)
def test_a_top_k_outside_the_depth_is_a_config_error_naming_the_key(modality):
    from d2v_fairseq.modules.errors import ModelConfigError

    depth = ref.tiny_root(Data2VecMultiConfig, modality).model.depth
    model = build_ours(modality, average_top_k_layers=depth + 1)  # builds: a fine-tuned model may keep any K
    source, _ = ref.tiny_inputs(modality)
    with pytest.raises(ModelConfigError, match=rf"model.average_top_k_layers: {depth + 1} is outside 1..{depth}"):
        model(source)  # pre-training needs the top K blocks
