"""Reading saved configs of data2vec checkpoints (ours and fairseq's released ones), and the
one loader that fine-tuning models use to start from a pre-trained encoder.

Released checkpoints carry config keys that no current dataclass declares (legacy wav2vec 2.0
fields, debug options). fairseq drops such keys silently when it builds the model; here each
dropped key is named in a warning first, so that a setting that mattered is not lost unseen.

They also lack keys that today's fairseq reads: a checkpoint saves the task and model configs
of the fairseq that wrote it (the 2022 releases: no ``multi_corpus_keys``, ``subsample``, ...),
and fairseq reads some of them raw (``task.load_dataset(split, task_cfg=saved_cfg.task)`` in
fairseq-generate). ``complete_config`` fills such keys with the current defaults, logging once
which ones.
"""

import logging
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Set, Tuple

from fairseq import checkpoint_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.models import MODEL_DATACLASS_REGISTRY
from fairseq.tasks import TASK_DATACLASS_REGISTRY
from omegaconf import II, DictConfig, OmegaConf, open_dict

logger = logging.getLogger(__name__)

_reported: Set[Tuple[str, Tuple[str, ...]]] = set()


@dataclass
class PretrainedEncoderConfig(FairseqDataclass):
    """The fields of every fine-tuning model that starts from a pre-trained encoder (the image
    classifier, the audio tagger), read by ``pretrained_for_finetuning``."""

    model_path: str = field(
        default="???", metadata={"help": "the pre-trained checkpoint (its config and student weights)"}
    )
    no_pretrained_weights: bool = field(
        default=False, metadata={"help": "take only the architecture from model_path (random init baseline)"}
    )
    pretrained_args: Optional[Any] = field(
        default=None,
        metadata={"help": "the pre-trained model's config, filled in at build (like w2v_args): a fine-tuned "
                  "checkpoint loads without model_path"},
    )
    num_classes: int = field(default=0, metadata={"help": "classes (0: the task's)"})
    # written into the pre-trained config: fine-tuning masks and mixup draw from (seed, update)
    seed: int = II("common.seed")


def complete_config(cfg: DictConfig, dataclass_type, what: str) -> DictConfig:
    """Adds to ``cfg`` (a saved config, changed in place) every field of ``dataclass_type`` it
    lacks, with that field's default; logs the filled names once per ``what`` and set of names.
    Interpolations (``${common.seed}``) are kept, to resolve against the saved root config."""
    missing = [f.name for f in fields(dataclass_type) if f.name not in cfg]
    if not missing:
        return cfg
    key = (what, tuple(missing))
    if key not in _reported:
        _reported.add(key)
        logger.info(f"{what} lacks fields that this fairseq and package read (written by an older "
                    f"fairseq or for another task); filled with their defaults: {', '.join(missing)}")
    defaults = OmegaConf.to_container(OmegaConf.structured(dataclass_type), resolve=False, enum_to_str=True)
    with open_dict(cfg):
        for name in missing:
            cfg[name] = defaults[name]
    return cfg


def complete_saved_configs(cfg: DictConfig, where: str) -> None:
    """Completes a checkpoint's task and model configs, and those of the pre-trained model a
    fine-tuned one embeds (``model.w2v_args``), each from its registered dataclass."""
    for group, registry in (("task", TASK_DATACLASS_REGISTRY), ("model", MODEL_DATACLASS_REGISTRY)):
        sub = cfg.get(group)
        if isinstance(sub, DictConfig) and sub.get("_name") in registry:
            complete_config(sub, registry[sub._name], f"{where}: {group} config ({sub._name})")
    w2v_args = cfg.model.get("w2v_args") if isinstance(cfg.get("model"), DictConfig) else None
    if isinstance(w2v_args, DictConfig):
        complete_saved_configs(w2v_args, f"{where}: model.w2v_args")


def undeclared_keys(group_cfg, registry=None) -> List[str]:
    """Keys of a checkpoint's model (or, with ``registry=TASK_DATACLASS_REGISTRY``, task)
    config that its registered dataclass does not declare."""
    registry = MODEL_DATACLASS_REGISTRY if registry is None else registry
    name = group_cfg.get("_name", None)
    if name not in registry:
        return []
    declared = {f.name for f in fields(registry[name])} | {"_name"}
    return sorted(k for k in group_cfg.keys() if k not in declared)


def undeclared_model_keys(model_cfg) -> List[str]:
    """Keys of a checkpoint's model config that its registered dataclass does not declare."""
    return undeclared_keys(model_cfg)


def keep_resolved_config(cfg: DictConfig, model) -> None:
    """Writes what a fine-tuning model resolved at build (the pre-trained model's config, the
    class count) back into ``cfg``, the trainer's own model config that checkpoints save, so
    that a fine-tuned checkpoint loads without the pre-trained one. (fairseq builds models from
    a merged copy of ``cfg``: what ``build_model`` sets there is not saved.)"""
    resolved = getattr(model, "cfg", None)
    for key in ("pretrained_args", "pretrained_model_args"):  # this package's name, and data2vec 2.0's
        if resolved is not None and resolved.get(key) is not None:
            with open_dict(cfg):
                cfg[key] = resolved[key]
                cfg.num_classes = resolved.num_classes


def pretrained_for_finetuning(cfg: DictConfig, expected_model, task=None) -> Optional[Dict]:
    """The shared start of a fine-tuning model's ``build_model``: on its first build, reads
    ``cfg.model_path`` (checking it holds ``expected_model``, a model name or a tuple of them;
    completing a released-format config) and stores that model config as ``cfg.pretrained_args``; fills ``cfg.num_classes``
    from ``task`` when unset. Returns the checkpoint's state (None on a rebuild from a
    fine-tuned checkpoint, whose ``pretrained_args`` are already there)."""
    state = None
    if cfg.pretrained_args is None:
        state = checkpoint_utils.load_checkpoint_to_cpu(cfg.model_path)
        name = state["cfg"].model.get("_name")
        expected = (expected_model,) if isinstance(expected_model, str) else tuple(expected_model)
        if name not in expected:
            raise ValueError(f"model.model_path={cfg.model_path}: a {name} checkpoint, not {' or '.join(expected)}")
        complete_saved_configs(state["cfg"], cfg.model_path)
        with open_dict(cfg):
            cfg.pretrained_args = state["cfg"].model
            cfg.pretrained_args.seed = cfg.seed  # fine-tuning masks: this run's seed
    with open_dict(cfg):
        if task is not None and cfg.num_classes <= 0:
            cfg.num_classes = task.num_classes()
    if cfg.num_classes <= 0:
        raise ValueError("model.num_classes: unknown (set it, or task.num_classes)")
    return state
