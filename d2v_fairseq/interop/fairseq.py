"""Export to fairseq's own data2vec code (``d2v export --format fairseq CKPT OUT.pt``).

A pre-trained ``data2vec_audio`` checkpoint of this package, rewritten so that fairseq's
``examples/data2vec`` speech model (and the tools built on it) load it with fairseq's checkpoint
loader, strict, and fairseq's own ``audio_pretraining`` task:

* the task becomes ``audio_pretraining`` with the fields fairseq's config declares;
* the model config keeps the fields the reference's ``Data2VecAudioConfig`` declares (read from
  its source, not imported: importing it registers a second ``data2vec_audio``);
* the teacher stays under ``_ema`` (the reference's key); the ``_ema_updates`` counter that
  older checkpoints of this package carry, which the reference does not know, is left out.

What the reference cannot represent is refused with the reason, never written wrong: a target
other than the feed-forward output (``target_feature``), a teacher attention window, data2vec
2.0's layout, other models.
"""

import ast
import os
from dataclasses import fields
from typing import Dict, Set

import torch

from ..modules.ema import LEGACY_UPDATES_KEY
from .common import NotExportable

REFERENCE_MODULE = ("examples", "data2vec", "models", "data2vec_audio.py")


def reference_config_fields() -> Set[str]:
    """The model config fields of fairseq's reference ``Data2VecAudioConfig``: its own
    (parsed from the installed source) and those of ``Wav2Vec2Config`` it extends."""
    import fairseq
    from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config

    path = os.path.join(os.path.dirname(fairseq.__file__), *REFERENCE_MODULE)
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    (config,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Data2VecAudioConfig"]
    own = {n.target.id for n in config.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return own | {f.name for f in fields(Wav2Vec2Config)} | {"_name"}


def check_representable(model_cfg: Dict) -> None:
    """Raises NotExportable when the reference's speech model cannot represent ``model_cfg``."""
    name = model_cfg.get("_name")
    if name == "data2vec2_audio":
        raise NotExportable("data2vec 2.0's layout (conv decoder, masked copies, ALiBi) has no class in the "
                            "examples/data2vec speech model this fairseq imports; export covers data2vec_audio")
    if name != "data2vec_audio":
        raise NotExportable(f"model {name}: --format fairseq covers pre-trained data2vec_audio checkpoints")
    if model_cfg.get("target_feature", "ffn") != "ffn":
        raise NotExportable(f"target_feature={model_cfg['target_feature']}: the reference's targets are the "
                            "feed-forward outputs (ffn) only")
    if model_cfg.get("teacher_attention_window", 0):
        raise NotExportable("teacher_attention_window: the reference's teacher attends over the whole sequence")


def export_fairseq(checkpoint: str, out_path: str) -> str:
    """Writes ``out_path``, the reference-readable form of ``checkpoint``; returns its class name."""
    from fairseq.tasks.audio_pretraining import AudioPretrainingConfig

    from ..hub import read_checkpoint

    from omegaconf import OmegaConf

    state = read_checkpoint(checkpoint)
    cfg = OmegaConf.to_container(state["cfg"], resolve=True, enum_to_str=True)  # fairseq saves plain containers
    model_cfg = dict(cfg["model"])
    check_representable(model_cfg)
    declared = reference_config_fields()
    task_fields = {f.name for f in fields(AudioPretrainingConfig)}
    new_cfg = dict(cfg)
    new_cfg["model"] = {k: v for k, v in model_cfg.items() if k in declared}
    new_cfg["task"] = {**{k: v for k, v in cfg["task"].items() if k in task_fields}, "_name": "audio_pretraining"}
    model = {k: v for k, v in state["model"].items() if k != LEGACY_UPDATES_KEY}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    torch.save({**state, "cfg": new_cfg, "model": model}, out_path)
    return "Data2VecAudioModel (fairseq examples/data2vec)"
