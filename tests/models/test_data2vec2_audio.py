"""``data2vec2_audio`` (speech-only 2.0 layout) checkpoints load as the data2vec_multi speech model: config and
weights (teacher included) convert, the features equal the speech-only model's."""

import pytest
import torch
from fairseq.dataclass.configs import FairseqConfig
from fairseq.models import MODEL_DATACLASS_REGISTRY, MODEL_REGISTRY
from omegaconf import OmegaConf

from d2v_fairseq.models.data2vec2_audio import Data2Vec2AudioConfig, Data2Vec2AudioModel, multi_state
from d2v_fairseq.models.data2vec_multi import Data2VecMultiModel

from ..helpers.data2vec2_audio_model import trained_data2vec2_audio
from ..helpers.tiny import TINY_AUDIO


def data2vec2_audio_config(**overrides):
    root = OmegaConf.structured(FairseqConfig)
    fields = dict(TINY_AUDIO, mask_prob=0.5, mask_length=5, clone_batch=2, decoder_dim=16, decoder_groups=4,
                  conv_pos_groups=4, decoder_input_dropout=0.0)
    root.model = OmegaConf.merge(OmegaConf.structured(Data2Vec2AudioConfig), fields, overrides)
    return root.model


def test_the_name_resolves_to_the_converting_data2vec_multi_model():
    assert MODEL_REGISTRY["data2vec2_audio"] is Data2Vec2AudioModel
    assert issubclass(Data2Vec2AudioModel, Data2VecMultiModel)
    assert MODEL_DATACLASS_REGISTRY["data2vec2_audio"] is Data2Vec2AudioConfig


@pytest.mark.parametrize("ema_layers_only", [False, True])
def test_data2vec2_audio_weights_convert_and_give_the_same_features(ema_layers_only):
    cfg = data2vec2_audio_config(ema_layers_only=ema_layers_only)
    old = trained_data2vec2_audio(cfg)
    state = old.state_dict()
    new = Data2Vec2AudioModel.build_model(cfg)
    new.load_state_dict(state, strict=True)
    new.eval()
    source = torch.randn(3, 5000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before, _ = old.hidden_states(source)
        after, _ = new.hidden_states(source)
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=False):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-4
    # the teacher: every converted tensor is the new teacher's, q/k/v fused into qkv
    converted = multi_state(state, ema_layers_only)["_ema"]
    teacher = new.teacher.state_dict()
    assert sorted(converted) == sorted(teacher)
    assert all(torch.equal(converted[k], teacher[k]) for k in teacher)
    assert ("modality_encoders.AUDIO.relative_positional_encoder.1.0.weight" in teacher) == (not ema_layers_only)
    assert ("0.attn.qkv.weight" in teacher) == ema_layers_only


def test_a_converted_model_pretrains_on():
    old = trained_data2vec2_audio(data2vec2_audio_config())
    new = Data2Vec2AudioModel.build_model(data2vec2_audio_config())
    new.load_state_dict(old.state_dict())
    new.train()
    out = new(torch.randn(2, 4000), id=torch.tensor([0, 1]))
    loss = sum(v.sum() for v in out["losses"].values())
    assert torch.isfinite(loss)
    loss.backward()


def test_data2vec2_audio_weights_inside_a_ctc_model_convert_when_fairseq_upgrades_them():
    old = trained_data2vec2_audio(data2vec2_audio_config())
    prefix = "w2v_encoder.w2v_model."
    outer = {prefix + k: v for k, v in old.state_dict().items() if k != "_ema"}
    outer["w2v_encoder.proj.weight"] = torch.zeros(3, 32)
    new = Data2Vec2AudioModel.build_model(data2vec2_audio_config())
    new.remove_pretraining_modules()
    new.upgrade_state_dict_named(outer, "w2v_encoder.w2v_model")
    assert outer["w2v_encoder.proj.weight"].shape == (3, 32)
    inner = {k[len(prefix):]: v for k, v in outer.items() if k.startswith(prefix)}
    assert "blocks.0.attn.qkv.weight" in inner and not any(k.startswith("encoder.") for k in inner)
    new.load_state_dict(inner, strict=True)
