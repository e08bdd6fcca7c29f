"""Study recipes: the data, the pre-training and fine-tuning stages with their overrides, and the
configs they resolve to."""

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ...environment import config_root
from ...launch import config_get, load_config
from ...modules.errors import InputError


class StudyError(InputError):
    """A study that cannot run as asked (bad ``--values``, recipe or work dir)."""


MODALITIES = ("speech", "text", "vision")


DEPTH_KEYS = ("model.encoder_layers", "model.transformer.encoder.layers", "model.depth")
LOWER_IS_BETTER = ("wer", "cer")
# stand-ins for a recipe's placeholders where only the config's shape matters
PLACEHOLDERS = {"data": "DATA", "pretrained": "PRETRAINED", "updates": "1", "seed": "1"}


@dataclass
class Stage:
    """A training stage of a recipe: a hydra config file, its update count and overrides (which
    may name ``{data}``, ``{pretrained}``, ``{updates}`` and ``{seed}``)."""

    config: str
    updates: int
    overrides: List[str] = field(default_factory=list)


@dataclass
class Method:
    """A pre-training method of the method study: its own config and overrides (after the
    recipe's common pre-training overrides), the overrides its fine-tuning adds, and the labels
    it needs made first (``mfcc-kmeans``: HuBERT's first iteration, named ``{labels}``)."""

    pretrain: Stage
    finetune_overrides: List[str] = field(default_factory=list)
    labels: Optional[str] = None


LABEL_KINDS = ("mfcc-kmeans",)


@dataclass
class Recipe:
    """What a study runs for each setting: pre-training, fine-tuning, scoring."""

    path: str
    modality: str
    pretrain: Stage
    finetune: Stage
    score_data: str
    score_split: str
    metric: str
    data: Optional[str] = None
    default_values: Dict[str, str] = field(default_factory=dict)
    # overrides that turn the fine-tuning into one from random initialization (None: no baseline)
    random_init: Optional[List[str]] = None
    label: str = ""  # how plots name the recipe (default: the file's name)
    # the method study: its methods, and the pre-training budget in seconds of fairseq's training
    # clock that every method gets (each method's update count measured by a first run of
    # ``calibrate`` updates)
    methods: Dict[str, Method] = field(default_factory=dict)
    seconds: Optional[float] = None
    calibrate: int = 40

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


def default_recipe(modality: str, study: str = "") -> str:
    """The installed study recipe of ``modality`` (the method study's own: ``method-MODALITY``)."""
    name = f"method-{modality}" if study == "method" else modality
    path = os.path.join(config_root(), "ablations", f"{name}.yaml")
    if study == "method" and not os.path.isfile(path):
        raise StudyError(f"the method study ships a speech recipe only; give --recipe FILE for {modality}")
    return path


def load_recipe(path: str) -> Recipe:
    """Reads a recipe YAML (see ``configs/ablations/speech.yaml``); errors name the file and key."""
    from omegaconf import OmegaConf

    if not os.path.isfile(path):
        raise StudyError("no such recipe file", path=path)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as error:  # yaml's and omegaconf's parse errors share no base class
        where = getattr(getattr(error, "problem_mark", None), "line", None)
        raise StudyError(f"not a recipe YAML ({str(error).splitlines()[0]}); quote values holding {{...}}",
                         path=path, line=None if where is None else where + 1) from None

    def need(section: dict, key: str, where: str):
        if not isinstance(section, dict) or key not in section:
            raise StudyError(f"recipe key {where}{key} is missing", path=path)
        return section[key]

    def stage(name: str, section: dict, updates_needed: bool = True) -> Stage:
        config = need(section, "config", f"{name}.")
        config = config if os.path.isabs(config) else os.path.join(
            os.path.dirname(os.path.abspath(path)) if os.path.isfile(os.path.join(os.path.dirname(path), config))
            else config_root(), config)
        if not os.path.isfile(config):
            raise StudyError(f"recipe key {name}.config: no such config file {config}", path=path)
        updates = int(need(section, "updates", f"{name}.")) if updates_needed else int(section.get("updates") or 0)
        return Stage(config, updates, [str(o) for o in section.get("overrides") or []])

    modality = need(raw, "modality", "")
    if modality not in MODALITIES:
        raise StudyError(f"recipe key modality: {modality!r} is not one of {', '.join(MODALITIES)}", path=path)
    score = need(raw, "score", "")
    seconds = need(raw, "pretrain", "").get("seconds")
    pretrain = stage("pretrain", raw["pretrain"], updates_needed=seconds is None)
    finetune = stage("finetune", need(raw, "finetune", ""))
    methods = {}
    for name, section in (raw.get("methods") or {}).items():
        if not isinstance(section, dict):
            raise StudyError(f"recipe key methods.{name}: a config, overrides, finetune_overrides and labels",
                             path=path)
        labels = section.get("labels")
        if labels is not None and labels not in LABEL_KINDS:
            raise StudyError(f"recipe key methods.{name}.labels: {labels!r} is not one of {', '.join(LABEL_KINDS)}",
                             path=path)
        methods[str(name)] = Method(stage(f"methods.{name}", section, updates_needed=False),
                                    [str(o) for o in section.get("finetune_overrides") or []], labels)
    if methods and seconds is None:
        raise StudyError("recipe key pretrain.seconds is missing: the methods share a pre-training time", path=path)
    random_init = raw["finetune"].get("random_init")
    if random_init is not None and not isinstance(random_init, list):
        raise StudyError("recipe key finetune.random_init: a list of overrides", path=path)
    return Recipe(os.path.abspath(path), modality, pretrain, finetune,
                  str(need(score, "data", "score.")), str(score.get("split", "test")),
                  str(need(score, "metric", "score.")), raw.get("data"),
                  {k: str(v) for k, v in (raw.get("values") or {}).items()},
                  None if random_init is None else [str(o) for o in random_init],
                  str(raw.get("label") or os.path.splitext(os.path.basename(path))[0]), methods,
                  None if seconds is None else float(seconds), int(raw["pretrain"].get("calibrate") or 40))


def stage_overrides(stage: Stage, substitutions: Dict[str, str], extra: Sequence[str] = ()) -> List[str]:
    """The overrides a run of ``stage`` is given: the stage's own (``{name}`` substituted), then
    ``extra``. The run key and the run itself both read exactly these."""
    return [substitute(o, substitutions) for o in stage.overrides] + list(extra)


def resolved_config(stage: Stage, substitutions: Dict[str, str], extra: Sequence[str] = ()) -> dict:
    """The stage's config file with :func:`stage_overrides` applied, as a plain dict."""
    return load_config(stage.config, stage_overrides(stage, substitutions, extra))


def substitute(text: str, substitutions: Dict[str, str]) -> str:
    """``text`` with each ``{name}`` replaced by its value."""
    for name, value in substitutions.items():
        text = text.replace("{" + name + "}", value)
    return text


def model_depth(recipe: Recipe) -> int:
    """The number of blocks of the recipe's pre-training model."""
    cfg = resolved_config(recipe.pretrain, PLACEHOLDERS)
    for key in DEPTH_KEYS:
        depth = config_get(cfg, key)
        if depth is not None:
            return int(depth)
    raise StudyError(f"the pre-training config names no depth (one of {', '.join(DEPTH_KEYS)})",
                     path=recipe.pretrain.config)
