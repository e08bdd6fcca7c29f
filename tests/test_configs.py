"""Every example config opens with its command and names only keys its dataclasses declare."""

import glob
import os
import re

import pytest
from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
from fairseq.models import MODEL_DATACLASS_REGISTRY
from fairseq.tasks import TASK_DATACLASS_REGISTRY
from omegaconf import OmegaConf

from .conftest import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "examples", "*", "*", "*.yaml")))
REGISTRIES = {"model": MODEL_DATACLASS_REGISTRY, "task": TASK_DATACLASS_REGISTRY, "criterion": CRITERION_DATACLASS_REGISTRY}


def test_there_are_configs():
    names = {os.path.relpath(p, os.path.join(REPO, "examples")) for p in CONFIGS}
    assert {"audio/pretraining/base_librispeech.yaml", "audio/pretraining/large_librivox.yaml",
            "audio/pretraining/tiny_cpu.yaml", "audio/finetuning/base_10m.yaml", "audio/finetuning/base_960h.yaml",
            "audio/finetuning/tiny_cpu.yaml", "text/pretraining/base.yaml", "text/pretraining/large.yaml",
            "text/pretraining/tiny_cpu.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_config_declares_its_command_and_known_keys(path):
    text = open(path).read()
    modality = os.path.relpath(path, os.path.join(REPO, "examples")).split(os.sep)[0]
    assert text.startswith("#") and f"fairseq-hydra-train --config-dir examples/{modality}/" in text.split("\n\n")[0]
    assert "/home/" not in text and "${env:" not in text
    cfg = OmegaConf.load(path)
    for group, registry in REGISTRIES.items():
        section = OmegaConf.to_container(cfg[group])
        dataclass = registry[section.pop("_name")]
        OmegaConf.merge(OmegaConf.structured(dataclass), section)  # raises on an undeclared key


def test_base_librispeech_has_the_paper_values():
    cfg = OmegaConf.load(os.path.join(REPO, "examples", "audio", "pretraining", "base_librispeech.yaml"))
    m = cfg.model
    assert (m.encoder_layers, m.encoder_embed_dim, m.average_top_k_layers, m.loss_beta) == (12, 768, 8, 0)
    assert m.instance_norm_target_layer and (m.ema_decay, m.ema_end_decay, m.ema_anneal_end_step) == (0.999, 0.9999, 30000)
    assert (m.mask_prob, m.mask_length) == (0.65, 10)
    assert cfg.optimization.lr == [0.0005] and cfg.optimization.max_update == 400000
    assert list(cfg.lr_scheduler.phase_ratio) == [0.03, 0.9, 0.07]
    assert cfg.optimizer.weight_decay == 0.01 and cfg.optimizer.adam_eps == 1e-06
    assert cfg.dataset.max_tokens == 3800000 and cfg.distributed_training.distributed_world_size == 16
    assert cfg.common.fp16


def test_an_undeclared_key_is_caught():
    with pytest.raises(Exception, match="bogus_key"):
        OmegaConf.merge(OmegaConf.structured(MODEL_DATACLASS_REGISTRY["data2vec_audio"]), {"bogus_key": 1})


def test_text_base_has_the_paper_values():
    cfg = OmegaConf.load(os.path.join(REPO, "examples", "text", "pretraining", "base.yaml"))
    m, enc = cfg.model, cfg.model.transformer.encoder
    assert (enc.layers, enc.embed_dim, enc.attention_heads, enc.ffn_embed_dim) == (12, 768, 12, 3072)
    assert (m.average_top_k_layers, m.loss_beta, m.loss_scale, m.head_layers) == (10, 4, 1, 2)
    assert m.layer_norm_target_layer and (m.ema_decay, m.ema_end_decay, m.ema_anneal_end_step) == (0.999, 0.9999, 300000)
    assert (cfg.optimization.lr[0], cfg.lr_scheduler.warmup_updates, cfg.optimization.clip_norm) == (0.0002, 10000, 5)
    assert (cfg.task.mask_prob, cfg.task.leave_unmasked_prob, cfg.task.random_token_prob) == (0.15, 0.1, 0.1)


def test_v2_speech_configs_have_the_release_values():
    root = os.path.join(REPO, "examples", "audio", "pretraining")
    base = OmegaConf.load(os.path.join(root, "v2_base_librispeech.yaml"))
    m, audio = base.model, base.model.modalities.audio
    assert m._name == "data2vec_multi" and m.supported_modality == "AUDIO" and (m.depth, m.embed_dim) == (12, 768)
    assert (m.clone_batch, audio.mask_prob, audio.mask_prob_adjust, audio.mask_length, m.average_top_k_layers) == \
        (8, 0.5, 0.05, 5, 8)
    assert (m.ema_decay, m.ema_end_decay, m.ema_anneal_end_step, m.ema_encoder_only) == (0.999, 0.99999, 75000, False)
    d = audio.decoder
    assert (d.decoder_dim, d.decoder_layers, d.decoder_kernel, d.decoder_groups, d.input_dropout) == (384, 4, 7, 16, 0.1)
    assert audio.use_alibi_encoder and audio.learned_alibi_scale_per_head and m.layerdrop == 0.05
    assert base.optimization.lr == [0.00075] and base.optimization.max_update == 400000
    assert base.lr_scheduler._name == "cosine" and base.lr_scheduler.warmup_updates == 8000
    assert base.dataset.max_tokens == 1000000 and base.distributed_training.distributed_world_size == 8
    large = OmegaConf.load(os.path.join(root, "v2_large_librivox.yaml")).model
    la = large.modalities.audio
    assert (large.depth, la.prenet_depth, large.embed_dim, large.clone_batch, la.mask_prob) == (16, 8, 1024, 12, 0.55)
    assert (la.decoder.decoder_dim, large.average_top_k_layers, large.ema_end_decay) == (768, 16, 1.0)


@pytest.mark.parametrize("modality,name,released", [
    ("audio", "v2_base_librispeech", "base_audio_only_task"), ("audio", "v2_large_librivox", "large_audio_only_task"),
    ("vision", "v2_base_imagenet", "base_images_only_task"), ("vision", "v2_large_imagenet", "large_images_only_task"),
    ("vision", "v2_huge_imagenet", "huge_images_only_task"), ("text", "v2_base", "base_text_only_task"),
    ("text", "v2_large", "large_text_only_task"),
])
def test_v2_configs_hold_the_released_model_and_optimization(modality, name, released):
    """Every model value the released YAML sets is ours too (the feature spec compared as layers)."""
    from d2v_fairseq.modules.conv_frontend import parse_conv_spec

    ours = OmegaConf.to_container(OmegaConf.load(os.path.join(REPO, "examples", modality, "pretraining", f"{name}.yaml")))
    theirs = OmegaConf.to_container(OmegaConf.load(os.path.join(
        os.path.dirname(__import__("fairseq").__file__), "examples", "data2vec", "config", "v2", f"{released}.yaml")))

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    from d2v_fairseq.models.multi_config import Data2VecMultiConfig

    effective = OmegaConf.merge(OmegaConf.structured(Data2VecMultiConfig), {k: v for k, v in ours["model"].items()
                                                                            if k != "_name"})
    mine = dict(flat(OmegaConf.to_container(effective, enum_to_str=True)))
    for key, value in flat(theirs["model"]):
        if key.endswith("feature_encoder_spec"):
            assert parse_conv_spec(mine[key], key) == parse_conv_spec(value, key)
        elif key != "_name":
            assert mine.get(key) == value, key
    assert ours["optimization"]["max_update"] == theirs["optimization"]["max_update"]


def has_key(cfg, dotted: str) -> bool:
    node = OmegaConf.to_container(cfg)  # plain dicts: a "???" value is still a key there
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_overrides_the_comments_suggest_name_keys_the_config_has(path):
    # fairseq types the task/model/criterion/optimizer/lr_scheduler groups as plain dicts, so hydra
    # refuses `task.key=value` for a key the file lacks (it wants `+task.key=`): every override a
    # config's comments tell the user to type in those groups must name a key the file has
    comments = " ".join(line for line in open(path) if line.lstrip().startswith("#"))
    suggested = re.findall(r"(?<![+\w./$])((?:task|model|criterion|optimizer|lr_scheduler)(?:\.\w+)+)=", comments)
    cfg = OmegaConf.load(path)
    missing = [key for key in suggested if not has_key(cfg, key)]
    assert not missing, f"{path}: comments suggest overriding keys the file lacks: {missing}"
