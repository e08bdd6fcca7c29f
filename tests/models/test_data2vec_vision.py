"""data2vec_vision: targets, loss, EMA, drop path and the teacher's view, on a tiny ViT."""

import math

import pytest
import torch
import torch.nn.functional as F

from d2v_fairseq.models.data2vec_vision import (
    Data2VecImageClassificationModel,
    Data2VecVisionConfig,
    Data2VecVisionModel,
    ImageClassificationConfig,
)


def tiny_vision_cfg(**overrides):
    fields = dict(image_size=32, patch_size=4, embed_dim=32, depth=4, num_heads=4, mlp_ratio=2.0,
                  num_mask_patches=0, average_top_k_layers=3, drop_path=0.0, layer_scale_init_value=0.1, seed=1)
    fields.update(overrides)
    return Data2VecVisionConfig(**fields)


def tiny_vision_model(**overrides):
    torch.manual_seed(0)
    model = Data2VecVisionModel(tiny_vision_cfg(**overrides))
    model.train()
    model.set_num_updates(1)
    return model


def test_defaults_are_the_release_base_values():
    cfg = Data2VecVisionConfig(seed=1)
    assert (cfg.image_size, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads) == (224, 16, 768, 12, 12)
    assert (cfg.average_top_k_layers, cfg.loss_beta, cfg.num_mask_patches, cfg.drop_path) == (6, 2.0, 120, 0.25)
    assert cfg.ema_decay == cfg.ema_end_decay == 0.9998 and cfg.target_feature == "block"


def test_targets_equal_a_hand_computation():
    model = tiny_vision_model()
    images = torch.randn(2, 3, 32, 32)
    out = model(images, sample_ids=torch.tensor([3, 4]))
    mask = out["mask_indices"]
    assert mask.shape == (2, 65) and not mask[:, 0].any()  # the CLS token is never a target
    # by hand: teacher blocks on the unmasked tokens, top 3 residual outputs, LN each, mean, LN
    teacher = model.teacher.model
    x = torch.cat([model.cls_emb.expand(2, -1, -1), model.patch_embed.proj(images).flatten(2).transpose(1, 2)], 1)
    outputs = []
    with torch.no_grad():
        for block in teacher.blocks:
            x, _ = block(x, teacher.rel_pos_bias())
            outputs.append(x)
    layers = [F.layer_norm(y, (32,)) for y in outputs[-3:]]
    expected = F.layer_norm(sum(layers) / 3, (32,))[mask]
    torch.testing.assert_close(out["target"], expected, atol=1e-5, rtol=1e-5)


def test_loss_is_smooth_l1_with_beta_2_by_hand():
    model = tiny_vision_model()
    out = model(torch.randn(2, 3, 32, 32))
    d = (out["pred"] - out["target"]).abs()
    by_hand = torch.where(d < 2.0, 0.5 * d ** 2 / 2.0, d - 1.0).sum() / math.sqrt(32)
    torch.testing.assert_close(out["losses"]["regression"], by_hand)
    assert out["sample_size"] == int(out["mask_indices"].sum())
    assert out["pred"].shape == out["target"].shape == (out["sample_size"], 32)


def test_tau_stays_at_0_9998():
    model = Data2VecVisionModel(tiny_vision_cfg(ema_decay=0.9998, ema_end_decay=0.9998))
    model.train()
    for updates in (0, 1, 1000, 10**6):
        model.set_num_updates(updates)
        assert model.ema_decay() == 0.9998
        assert model.teacher.decay == 0.9998 or updates == 0


def test_drop_path_only_in_the_student_and_no_gradient_to_the_teacher():
    model = tiny_vision_model(drop_path=0.5)
    assert max(b.drop_path.prob for b in model.encoder.blocks) == 0.5
    images = torch.randn(4, 3, 32, 32)
    ids = torch.arange(4)
    a, b = model(images, sample_ids=ids), model(images, sample_ids=ids)
    assert torch.equal(a["target"], b["target"])  # the teacher: eval mode, no drop path
    assert not torch.allclose(a["pred"], b["pred"])  # the student drops paths at random
    assert all(not m.training for m in model.teacher.model.modules())
    a["losses"]["regression"].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.model.parameters())
    assert model.encoder.blocks[-1].attn.qkv.weight.grad is not None


def test_teacher_sees_the_students_augmented_view_unmasked(monkeypatch):
    model = tiny_vision_model()
    seen = {}
    original = model.encode_teacher

    def spy(features, padding_mask, blocks):
        seen["features"] = features.clone()
        return original(features, padding_mask, blocks)

    monkeypatch.setattr(model, "encode_teacher", spy)
    images = torch.randn(2, 3, 32, 32)
    model(images)
    expected, _ = model.embed(images)  # the very image the student got, before masking
    torch.testing.assert_close(seen["features"], expected.detach())


def test_checkpoint_keeps_student_and_teacher():
    model = tiny_vision_model()
    model(torch.randn(2, 3, 32, 32))["losses"]["regression"].backward()
    model.set_num_updates(2)
    state = model.state_dict()
    assert "_ema" in state and "blocks.0.attn.qkv.weight" in state["_ema"]  # keys relative to the encoder
    assert "patch_embed.proj.weight" not in state["_ema"]  # the patch embedding is shared
    again = Data2VecVisionModel(tiny_vision_cfg())
    again.load_state_dict(state)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(again.teacher.state_dict()[key], value)


def test_layer_wise_lr_decay_scales(tmp_path):
    pre = tiny_vision_model()
    path = tmp_path / "pre.pt"
    from omegaconf import OmegaConf

    model_cfg = OmegaConf.to_container(OmegaConf.structured(pre.cfg), enum_to_str=True)
    torch.save({"cfg": {"model": dict(model_cfg, _name="data2vec_vision")},
                "model": pre.state_dict(), "optimizer_history": [{"criterion_name": "x", "optimizer_name": "x", "lr_scheduler_state": {"best": None}, "num_updates": 0}],
                "extra_state": {}, "args": None}, path)
    cfg = ImageClassificationConfig(model_path=str(path), num_classes=10, layer_decay=0.5, drop_path=0.1, seed=1)
    model = Data2VecImageClassificationModel.build_model(OmegaConf.structured(cfg))
    scales = model.set_layer_decay(0.5)
    L = 4
    assert scales["encoder.patch_embed.proj.weight"] == 0.5 ** (L + 1)
    assert scales["encoder.cls_emb"] == 0.5 ** (L + 1)
    for i in range(L):
        assert scales[f"encoder.encoder.blocks.{i}.mlp.0.weight"] == 0.5 ** (L - i)
    assert scales["head.weight"] == scales["fc_norm.bias"] == 1.0
    assert model.head.weight.optim_overrides == {"optimizer": {"lr_scale": 1.0}}
    # the pre-trained student was loaded, the teacher and regression head dropped
    assert torch.equal(model.encoder.encoder.blocks[0].attn.qkv.weight, pre.encoder.blocks[0].attn.qkv.weight)
    assert model.encoder.teacher is None and model.encoder.final_proj is None
    assert model.encoder.encoder.blocks[-1].drop_path.prob == pytest.approx(0.1)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_grid_attention_mask_limits_patches_to_their_neighbourhood():
    import torch

    from d2v_fairseq.modules.vit import grid_attention_mask

    mask = grid_attention_mask((4, 4), 1, torch.device("cpu"))  # (17, 17): CLS + 16 patches
    assert mask.shape == (17, 17)
    allowed = mask == 0
    # patch (1, 1) = index 1 + 5 sees (0..2, 0..2): 9 patches, not CLS, not (3, 3)
    assert allowed[6, 1:].sum() == 9 and not allowed[6, 0] and not allowed[6, 1 + 15]
    assert allowed[0, 0] and allowed[0].sum() == 1  # CLS sees only itself
    assert grid_attention_mask((4, 4), 0, torch.device("cpu")) is None
    half = grid_attention_mask((4, 4), 0.5, torch.device("cpu"))  # half of the side: +-2 patches
    assert (half[1, 1:] == 0).sum() == 9  # corner (0, 0) sees rows and columns 0..2


def test_teacher_window_changes_the_vision_targets():
    import torch

    model_full = tiny_vision_model().eval()
    model_windowed = tiny_vision_model(teacher_attention_window=1).eval()  # same seed: same weights
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features, _ = model_full.embed(images)
        full = model_full.encode_teacher(features, None, model_full.encoder)
        windowed = model_windowed.encode_teacher(features, None, model_windowed.encoder)
        # the first patch's windowed target does not depend on a far patch: perturb the last one
        far = features.clone()
        far[:, -1] += 3.0
        windowed_far = model_windowed.encode_teacher(far, None, model_windowed.encoder)
    assert len(full) == len(windowed) == 4
    assert not torch.allclose(full[-1], windowed[-1])
    assert torch.allclose(windowed[-1][:, 1], windowed_far[-1][:, 1], atol=1e-6)  # 4 blocks x 1 patch < 7


@pytest.mark.parametrize("top_k", [0, 5])
def test_a_top_k_outside_the_depth_is_a_config_error_naming_the_key(top_k):
    from d2v_fairseq.modules.errors import ModelConfigError

    model = tiny_vision_model(average_top_k_layers=top_k)  # builds (fine-tuning keeps any K)
    with pytest.raises(ModelConfigError, match=rf"model.average_top_k_layers: {top_k} is outside 1..4: .*model.depth=4"):
        model(torch.randn(2, 3, 32, 32), sample_ids=torch.tensor([3, 4]))  # pre-training makes targets
