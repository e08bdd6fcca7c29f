"""The paper's ablations as studies anyone can rerun (Baevski et al., 2022, sec. 5.3):

* ``top-k``: how many of the teacher's top blocks the target averages (``average_top_k_layers``);
* ``target``: which point of the teacher's block is the target (``target_feature``: ``ffn``,
  ``ffn-residual``, ``attn``, ``block``);
* ``context``: how much of the input the teacher's self-attention sees
  (``teacher_attention_window``: steps, a fraction of the input, or ``full``);
* ``budget``: the number of pre-training updates, scored against the pre-training seconds they
  took (a time-to-quality curve; ``--replot`` joins several recipes' curves in one plot).

A study runs, for every setting and pre-training seed, one pre-training and one fine-tuning +
scoring with a *recipe* (``configs/ablations/MODALITY.yaml`` by default: the demo's data and a
narrow 8-block model; ``--recipe FILE`` for another). Every run lives in a directory keyed by
what determines it: the resolved pre-training config (overrides, update count, seed) and a
fingerprint of the data; the fine-tuning directory below it is keyed the same way. A finished
run is reused, a changed setting gets a new directory, an interrupted one resumes from its
``checkpoint_last.pt``. Settings that resolve to the same config (``K = 8`` in ``top-k`` and
``ffn`` in ``target``) share one run. A recipe whose fine-tuning names ``random_init`` overrides
also fine-tunes the same model from random initialization once per seed: the study's baseline,
drawn in its plot. ``--scores-from`` takes the scores of runs an earlier table lists under the
same run directory (same resolved pre-training config, seed and data) instead of training them
again.

    d2v ablate top-k --modality vision --values 1,4 --seeds 1 --work W

prints one row per setting (score per seed, mean, std), writes W/STUDY.png and the table into
W/results.json.
"""

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from ..environment import config_root
from ..checkpoints import write_atomic_json
from ..launch import config_get, load_config, with_overrides
from ..locks import DirectoryLock
from ..modules.errors import InputError
from ..modules.transformer import TARGET_FEATURES
from .common import hydra_train


class StudyError(InputError):
    """A study that cannot run as asked (bad ``--values``, recipe or work dir)."""


@dataclass(frozen=True)
class Study:
    """One ablation: the model config key it varies, how to read its values, the paper's finding.
    Each study is one object: its default values, how a value is checked, the config value it
    sets and whether its values are numbers (a number axis in the plot)."""

    name: str
    key: str
    short: str
    label: str
    paper: str
    numeric = False

    def default_values(self, recipe: "Recipe") -> Optional[List[str]]:
        """The settings when neither ``--values`` nor the recipe names them (None: none)."""
        return None

    def problem(self, value: str, recipe: "Recipe") -> Optional[str]:
        """Why ``value`` is not a setting of this study (None: it is)."""
        return None

    def config_value(self, value: str) -> str:
        """The value a setting gives the config key."""
        return value

    def axis_label(self, modality: str) -> str:
        """The plot's x axis, with its unit."""
        return self.label

    def paper_note(self, modality: str) -> str:
        """The paper's finding, as the plot prints it under a ``modality`` study."""
        return self.paper

    def pretrain_updates(self, value: str, recipe: "Recipe") -> int:
        """The pre-training updates of a run of this setting."""
        return recipe.pretrain.updates

    def setting_overrides(self, value: str) -> List[str]:
        """The overrides that make a pre-training run this setting (``++``: set the key whether
        or not the config file names it)."""
        return [f"++{self.key}={self.config_value(value)}"]


class TopKStudy(Study):
    """K top blocks averaged into the target: 1 to the model's depth."""
    numeric = True

    def default_values(self, recipe):
        return [str(k) for k in range(1, model_depth(recipe) + 1)]

    def problem(self, value, recipe):
        depth = model_depth(recipe)
        if not value.isdigit() or not 1 <= int(value) <= depth:
            return f"K={value} is not a whole number from 1 to the model's depth {depth}"
        return None


class TargetStudy(Study):
    """The point of the teacher's block the target is taken from."""

    def default_values(self, recipe):
        return list(TARGET_FEATURES)

    def problem(self, value, recipe):
        if value not in TARGET_FEATURES:
            return f"{value!r} is not a target point; choose from {', '.join(TARGET_FEATURES)}"
        return None

    def paper_note(self, modality):
        if modality == "speech":
            return self.paper
        return f"{self.paper} -- the paper measured speech only (WER); this plot is {modality}, on another metric"


class ContextStudy(Study):
    """The teacher's attention window: steps, a fraction of the input, or ``full`` (window 0)."""

    def problem(self, value, recipe):
        if value != "full" and not _is_window(value):
            return (f"{value!r} is not a teacher context: a number of steps (>= 1), a fraction of the input "
                    "(0 < f < 1) or full")
        return None

    def config_value(self, value):
        return "0" if value == "full" else value

    def axis_label(self, modality):
        unit = {"speech": "20-ms frames", "vision": "patches", "text": "tokens"}.get(modality, "steps")
        return f"teacher attention window, +- {unit} (full: the whole input)"


class BudgetStudy(Study):
    """The pre-training budget in updates; the plot puts the score against the seconds it took."""
    numeric = True

    def problem(self, value, recipe):
        if not value.isdigit() or int(value) < 1:
            return f"budget {value!r} is not a whole number of updates (>= 1)"
        return None

    def pretrain_updates(self, value, recipe):
        return int(value)

    def setting_overrides(self, value):
        return []  # the update count is the setting, and every run sets it

    def axis_label(self, modality):
        return "pre-training wall clock, seconds (start-up included)"


STUDIES = {
    "top-k": TopKStudy("top-k", "model.average_top_k_layers", "K", "K: top blocks averaged into the target",
                       "paper (Base, all modalities): averaging several top blocks beats K=1, markedly for speech "
                       "and text, slightly for images; all blocks is only a little worse than the best K"),
    "target": TargetStudy("target", "model.target_feature", "target", "point of the teacher's block used as target",
                          "paper (speech, reduced setup, WER): attn 100.0, ffn 13.1, ffn-residual 14.8, block 14.5"),
    "context": ContextStudy("context", "model.teacher_attention_window", "window",
                            "teacher context (attention window)",
                            "paper (speech and images): the more context the teacher sees, the better; the whole "
                            "input is best"),
    "budget": BudgetStudy("budget", "optimization.max_update", "updates", "pre-training updates",
                          "paper (data2vec 2.0, Base): MAE's ImageNet accuracy in 16.4x less pre-training time, "
                          "wav2vec 2.0's LibriSpeech WER in 10.6x less, RoBERTa's GLUE score in half the time"),
}
MODALITIES = ("speech", "text", "vision")
# the config key that holds the model's depth, per pre-training model
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

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


def default_recipe(modality: str) -> str:
    """The installed study recipe of ``modality``."""
    return os.path.join(config_root(), "ablations", f"{modality}.yaml")


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

    def stage(name: str) -> Stage:
        section = need(raw, name, "")
        config = need(section, "config", f"{name}.")
        config = config if os.path.isabs(config) else os.path.join(
            os.path.dirname(os.path.abspath(path)) if os.path.isfile(os.path.join(os.path.dirname(path), config))
            else config_root(), config)
        if not os.path.isfile(config):
            raise StudyError(f"recipe key {name}.config: no such config file {config}", path=path)
        return Stage(config, int(need(section, "updates", f"{name}.")), [str(o) for o in section.get("overrides") or []])

    modality = need(raw, "modality", "")
    if modality not in MODALITIES:
        raise StudyError(f"recipe key modality: {modality!r} is not one of {', '.join(MODALITIES)}", path=path)
    score = need(raw, "score", "")
    pretrain, finetune = stage("pretrain"), stage("finetune")
    random_init = raw["finetune"].get("random_init")
    if random_init is not None and not isinstance(random_init, list):
        raise StudyError("recipe key finetune.random_init: a list of overrides", path=path)
    return Recipe(os.path.abspath(path), modality, pretrain, finetune,
                  str(need(score, "data", "score.")), str(score.get("split", "test")),
                  str(need(score, "metric", "score.")), raw.get("data"),
                  {k: str(v) for k, v in (raw.get("values") or {}).items()},
                  None if random_init is None else [str(o) for o in random_init],
                  str(raw.get("label") or os.path.splitext(os.path.basename(path))[0]))


# ---------------------------------------------------------------- settings


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


def parse_values(study: Study, text: Optional[str], recipe: Recipe) -> List[str]:
    """The study's settings from ``--values`` (or the recipe's, or the study's default), checked;
    returned as the values to set. Raises StudyError naming the bad value before anything runs."""
    text = text or recipe.default_values.get(study.name)
    if not text:
        values = study.default_values(recipe)
        if values is None:
            raise StudyError(f"--values is needed for the {study.name} study (e.g. 2,8,32,full)")
        return values
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise StudyError(f"--values {text!r} names no setting")
    if len(set(values)) != len(values):
        raise StudyError(f"--values {text!r} names a setting twice")
    for value in values:
        problem = study.problem(value, recipe)
        if problem:
            raise StudyError(f"--values: {problem}")
    return values


def _is_window(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return (0 < number < 1) or (number >= 1 and number == int(number))


# ---------------------------------------------------------------- keying


def data_fingerprint(path: str) -> str:
    """A hash of every file under ``path`` (name, size, contents; files over 4 MiB by size and
    their first and last MiB), so that changed data never reuses a run."""
    digest = hashlib.sha256()
    paths = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    for file in paths:
        size = os.path.getsize(file)
        digest.update(f"{os.path.relpath(file, path)}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size <= 4 << 20:
                digest.update(f.read())
            else:
                digest.update(f.read(1 << 20))
                f.seek(-(1 << 20), os.SEEK_END)
                digest.update(f.read())
    return digest.hexdigest()


# study keys a recipe's config may leave out: set to the model's default, they are left out of the
# key too, so that (say) ``target ffn`` and ``top-k`` at the recipe's K share one run
DEFAULTED_KEYS = ("target_feature", "teacher_attention_window")


def model_default(model_name: str, field_name: str):
    """The default of a registered model's config field (None when unknown)."""
    from fairseq.models import MODEL_DATACLASS_REGISTRY

    from .. import models  # noqa: F401  (registers the package's models)

    config = MODEL_DATACLASS_REGISTRY.get(model_name)
    declared = getattr(config, "__dataclass_fields__", {}).get(field_name)
    return None if declared is None else declared.default


def run_key(resolved: dict, **inputs) -> str:
    """A short hash of a resolved config (its paths to the work dir left out, study keys at the
    model's default left out) and ``inputs``."""
    resolved = json.loads(json.dumps(resolved, default=str))
    model = resolved.get("model")
    if isinstance(model, dict) and "_name" in model:
        for key in DEFAULTED_KEYS:
            if key in model and str(model[key]) == str(model_default(model["_name"], key)):
                del model[key]
            elif key in model and key == "teacher_attention_window" and float(model[key]) == 0.0:
                del model[key]
    for section, key in (("common", "user_dir"), ("checkpoint", "save_dir"), ("checkpoint", "restore_file"),
                         ("task", "data"), ("model", "w2v_path"), ("model", "model_path")):
        if isinstance(resolved.get(section), dict):
            resolved[section].pop(key, None)
    blob = json.dumps({"config": resolved, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- running


@dataclass
class RunResult:
    """One (setting, seed) of a study: its score dict and whether it was reused."""

    value: str
    seed: int
    scores: Dict[str, float]
    reused: bool
    run_dir: str
    earlier: bool = False  # the score was taken from an earlier table (``--scores-from``)


def prepare_data(recipe: Recipe, work: str) -> str:
    """The recipe's data dir; the modality's demo data built under WORK/data when it names none."""
    if recipe.data:
        if not os.path.exists(recipe.data):
            raise StudyError(f"recipe key data: no such path {recipe.data}", path=recipe.path)
        return os.path.abspath(recipe.data)
    out = os.path.join(work, "data")
    if recipe.modality == "speech":
        from .speech_corpus import build_corpus

        build_corpus(out)
    elif recipe.modality == "vision":
        from .vision import build_data

        return build_data(out)  # its manifests folder
    else:
        from .text import build_data

        build_data(out, {"train": 40, "valid": 20, "test": 100}, 4000)
    return out


def work_lock(work: str) -> DirectoryLock:
    """WORK/.lock (flock, holder's host, pid and start): two studies never share one work dir at once."""
    return DirectoryLock(work, ".lock", "study", "wait for it or use another --work")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class Progress:
    """One line per run stage: study, setting, seed, stage, elapsed time and the study's ETA:
    the runs left, times the share of the runs so far that had to be trained (the others were
    reused or taken from an earlier table), times the mean time of a trained run."""

    def __init__(self, study: Study, modality: str, total: int):
        self.study, self.modality, self.total = study, modality, total
        self.start = time.time()
        self.trained: List[float] = []
        self.done = 0

    def eta(self) -> Optional[float]:
        """Seconds the study still needs (None before the first trained run)."""
        if not self.trained:
            return None
        # runs left x (trained share of the runs done) x (mean time of a trained run)
        return (self.total - self.done) * sum(self.trained) / self.done

    def line(self, value: str, seed: int, what: str) -> None:
        elapsed = time.time() - self.start
        eta = self.eta()
        eta = "ETA ?" if eta is None else f"ETA {_minutes(eta)}"
        print(f"[{self.study.name} {self.modality}] {value} seed {seed} (run {self.done + 1}/{self.total}): "
              f"{what} | {_minutes(elapsed)} elapsed, {eta}", flush=True)

    def finished(self, seconds: Optional[float]) -> None:
        self.done += 1
        if seconds is not None:
            self.trained.append(seconds)


RANDOM_INIT = "random init"


def run_setting(recipe: Recipe, study: Study, value: str, seed: int, data: str, fingerprint: str, work: str,
                progress: Progress, score: Callable[[str, str, str], Dict],
                earlier: Optional[Dict[str, Dict]] = None) -> RunResult:
    """Pre-trains, fine-tunes and scores one (setting, seed), reusing what is already done;
    ``fingerprint``: ``data_fingerprint(data)``; ``earlier``: scores of an earlier table by run
    directory (:func:`earlier_scores`), taken for this run when it names its directory."""
    start = time.time()
    updates = study.pretrain_updates(value, recipe)
    setting = [*study.setting_overrides(value), f"common.seed={seed}", f"optimization.max_update={updates}"]
    subst = {"data": data, "seed": str(seed), "updates": str(updates)}
    pre_overrides = stage_overrides(recipe.pretrain, subst, setting)
    pre_cfg = load_config(recipe.pretrain.config, pre_overrides)
    pre_key = run_key(pre_cfg, data=fingerprint)
    run_name = f"{recipe.modality}-{pre_key}"
    run_dir = os.path.join(work, "runs", run_name)
    pre_dir = os.path.join(run_dir, "pretrain")
    ft_overrides = finetune_overrides(recipe, data, seed, os.path.join(pre_dir, "checkpoint_last.pt"))
    ft_key = run_key(load_config(recipe.finetune.config, ft_overrides), pretrain=pre_key, data=fingerprint)
    ft_dir = os.path.join(run_dir, f"finetune-{ft_key}")
    label = f"{study.short}={value}"
    scores = reused_scores(ft_dir, recipe)
    if scores is not None:
        progress.line(label, seed, f"reused {os.path.relpath(ft_dir, work)}: {recipe.metric} {scores[recipe.metric]:.2f}")
        progress.finished(None)
        return RunResult(value, seed, scores, True, run_dir)
    taken = (earlier or {}).get(run_name)
    if taken is not None:
        progress.line(label, seed, f"from the earlier table ({run_name}): {recipe.metric} {taken[recipe.metric]:.2f}")
        progress.finished(None)
        return RunResult(value, seed, taken, True, run_dir, earlier=True)
    os.makedirs(run_dir, exist_ok=True)
    write_atomic_json(os.path.join(run_dir, "run.json"),
                      {"modality": recipe.modality, "setting": {study.key: study.config_value(value)}, "seed": seed,
                       "data": data, "data_fingerprint": fingerprint, "pretrain_config": pre_cfg}, default=str)
    progress.line(label, seed, f"pre-training {updates} updates in {os.path.relpath(run_dir, work)}")
    pretrain_start = time.time()
    hydra_train(os.path.dirname(recipe.pretrain.config), pre_dir, updates, pre_overrides,
                os.path.join(run_dir, "pretrain.log"), modality="",
                config_name=os.path.splitext(os.path.basename(recipe.pretrain.config))[0], show=())
    pretrain_seconds = time.time() - pretrain_start
    progress.line(label, seed, f"fine-tuning {recipe.finetune.updates} updates")
    scores = finetune_and_score(recipe, ft_dir, ft_overrides, data, seed, score, pretrain_s=pretrain_seconds)
    seconds = time.time() - start
    progress.line(label, seed, f"{recipe.metric} {scores[recipe.metric]:.2f} ({_minutes(seconds)})")
    progress.finished(seconds)
    return RunResult(value, seed, scores, False, run_dir)


def run_random_init(recipe: Recipe, seed: int, data: str, fingerprint: str, work: str, architecture: str,
                    progress: Progress, score: Callable[[str, str, str], Dict]) -> RunResult:
    """Fine-tunes and scores the recipe's model from random initialization (the recipe's
    ``finetune.random_init`` overrides) with ``seed``; ``architecture``: a pre-trained checkpoint
    of the recipe, read for the model's shape only."""
    start = time.time()
    overrides = with_overrides(finetune_overrides(recipe, data, seed, architecture), recipe.random_init)
    key = run_key(load_config(recipe.finetune.config, overrides), pretrain=RANDOM_INIT, data=fingerprint,
                  shape=model_shape(architecture))
    ft_dir = os.path.join(work, "runs", f"{recipe.modality}-random-init", f"finetune-{key}")
    scores = reused_scores(ft_dir, recipe)
    if scores is not None:
        progress.line(RANDOM_INIT, seed, f"reused {os.path.relpath(ft_dir, work)}: {recipe.metric} {scores[recipe.metric]:.2f}")
        progress.finished(None)
        return RunResult(RANDOM_INIT, seed, scores, True, ft_dir)
    progress.line(RANDOM_INIT, seed, f"fine-tuning {recipe.finetune.updates} updates from random init")
    scores = finetune_and_score(recipe, ft_dir, overrides, data, seed, score, pretrain_s=0.0)
    seconds = time.time() - start
    progress.line(RANDOM_INIT, seed, f"{recipe.metric} {scores[recipe.metric]:.2f} ({_minutes(seconds)})")
    progress.finished(seconds)
    return RunResult(RANDOM_INIT, seed, scores, False, ft_dir)


def model_shape(checkpoint: str) -> Dict[str, List[int]]:
    """The pre-trained model's shape: every parameter's name and size (the EMA teacher left out),
    read from ``checkpoint`` without loading its tensors."""
    from ..checkpoints import read_state

    state = read_state(checkpoint)
    if state is None:
        raise StudyError("cannot read the pre-trained checkpoint the random init takes its shape from", path=checkpoint)
    return {name: list(value.shape) for name, value in state["model"].items() if hasattr(value, "shape")}


def finetune_overrides(recipe: Recipe, data: str, seed: int, pretrained: str) -> List[str]:
    """The overrides of a fine-tuning run of the recipe from the checkpoint ``pretrained``."""
    subst = {"data": data, "seed": str(seed), "pretrained": pretrained, "updates": str(recipe.finetune.updates)}
    return stage_overrides(recipe.finetune, subst,
                           [f"common.seed={seed}", f"optimization.max_update={recipe.finetune.updates}"])


def reused_scores(ft_dir: str, recipe: Recipe) -> Optional[Dict]:
    """The scores a finished fine-tuning in ``ft_dir`` wrote (None: not finished)."""
    path = os.path.join(ft_dir, f"score-{recipe.score_split}.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def finetune_and_score(recipe: Recipe, ft_dir: str, overrides: List[str], data: str, seed: int,
                       score: Callable[[str, str, str], Dict], pretrain_s: float) -> Dict:
    """Fine-tunes into ``ft_dir``, scores its best checkpoint and writes the scores (with the
    pre-training seconds) beside it; returns them."""
    os.makedirs(os.path.dirname(ft_dir), exist_ok=True)  # its log goes beside it
    hydra_train(os.path.dirname(recipe.finetune.config), ft_dir, recipe.finetune.updates, overrides,
                ft_dir + ".log", modality="",
                config_name=os.path.splitext(os.path.basename(recipe.finetune.config))[0], show=())
    subst = {"data": data, "seed": str(seed)}
    scores = score(os.path.join(ft_dir, "checkpoint_best.pt"), substitute(recipe.score_data, subst), recipe.score_split)
    scores = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
    scores["pretrain_s"] = round(pretrain_s, 1)
    write_atomic_json(os.path.join(ft_dir, f"score-{recipe.score_split}.json"), scores)
    return scores


def earlier_scores(path: str, recipe: Recipe) -> Dict[str, Dict]:
    """The scores of an earlier results.json (e.g. a copy in docs/ablations) by run directory
    name: {run dir: {metric: score}}, from every study it holds of the recipe's modality and
    metric (a run directory names one pre-training config and seed, whichever study ran it).
    Each table's ``runs`` list its run directories in the order the study ran them (every
    setting, then every seed)."""
    if not os.path.isfile(path):
        raise StudyError("no such results file", path=path)
    with open(path) as f:
        table = json.load(f)
    entries = {name: entry for name, entry in table.items()
               if entry.get("modality") == recipe.modality and entry.get("metric") == recipe.metric}
    if not entries:
        raise StudyError(f"it holds no {recipe.modality} / {recipe.metric} table (it holds {', '.join(table) or 'none'})",
                         path=path)
    found: Dict[str, Dict] = {}
    for name, entry in entries.items():
        runs = [score for row in entry["rows"] for score in row["scores"]]
        if len(runs) != len(entry.get("runs", [])):
            raise StudyError(f"its {name} table lists {len(entry.get('runs', []))} run directories for {len(runs)} "
                             "scores", path=path)
        for run_dir, score in zip(entry["runs"], runs, strict=True):
            found[os.path.basename(run_dir)] = {recipe.metric: score}
    return found


def summarize(study: Study, recipe: Recipe, results: List[RunResult]) -> List[Dict]:
    """One row per setting: the metric per seed, its mean and standard deviation (n - 1), the
    means of the other scores every run has, and the seeds taken from an earlier table."""
    rows = []
    for value in dict.fromkeys(r.value for r in results):
        runs = [r for r in results if r.value == value]
        scores = [r.scores[recipe.metric] for r in runs]
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1)) if len(scores) > 1 else 0.0
        shared = [key for key in runs[0].scores if key not in (recipe.metric, "n") and all(key in r.scores for r in runs)]
        row = {"value": value, "seeds": [r.seed for r in runs], "scores": scores, "mean": mean, "std": std,
               "other_means": {key: sum(r.scores[key] for r in runs) / len(runs) for key in shared}}
        if all("pretrain_s" in r.scores for r in runs):  # per seed: a time-to-quality plot's x
            row["pretrain_s"] = [r.scores["pretrain_s"] for r in runs]
        if any(r.earlier for r in runs):
            row["seeds_from_earlier_table"] = [r.seed for r in runs if r.earlier]
        rows.append(row)
    return rows


def format_table(study: Study, recipe: Recipe, rows: List[Dict], random_init: Optional[Dict] = None) -> str:
    """The study's table as text: setting, the metric per seed, mean, std; then the recipe's
    random init (``random_init``: the summarized row) when there is one."""
    every = rows + ([random_init] if random_init else [])
    seeds = max(len(r["scores"]) for r in every)
    head = f"{study.short:>14s}" + "".join(f"{'seed ' + str(i + 1):>9s}" for i in range(seeds))
    head += f"{'mean':>9s}{'std':>8s}"
    lines = [f"{study.name} ({recipe.modality}): {recipe.metric} on {recipe.score_split} "
             f"({'lower' if recipe.lower_is_better else 'higher'} is better)", head]
    for r in every:
        cells = "".join(f"{s:>9.2f}" for s in r["scores"]) + " " * 9 * (seeds - len(r["scores"]))
        lines.append(f"{r['value']:>14s}{cells}{r['mean']:>9.2f}{r['std']:>8.2f}")
    return "\n".join(lines)


def plot_entry(entry: Dict, path: str) -> None:
    """A study's plot from its results.json entry: the metric against the setting, one thin line
    joining each seed's points (the pairing the tables read), the mean with one std, the same
    recipe's random init as a dashed line when the entry holds it (``random_init``: per-seed
    scores), the axis unit, and the paper's finding below (saying which modality it measured)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    study = STUDIES[entry["study"]]
    if study.name == "budget":
        plot_curves([entry], path)
        return
    rows = entry["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    labels = [r["value"] for r in rows]
    xs = [int(v) for v in labels] if study.numeric else list(range(len(rows)))
    seeds = sorted({seed for r in rows for seed in r["seeds"]})
    for i, seed in enumerate(seeds):  # one line per seed across the settings
        points = [(x, r["scores"][r["seeds"].index(seed)]) for x, r in zip(xs, rows, strict=True) if seed in r["seeds"]]
        ax.plot([p[0] for p in points], [p[1] for p in points], color=f"C{(i + 1) % 10}", alpha=0.7, linewidth=1,
                marker=".", label=f"seed {seed}")
    ax.errorbar(xs, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=4,
                color="black", linestyle="-" if study.numeric else "none", label="mean +- std", zorder=4)
    baseline = entry.get("random_init")
    if baseline:
        value = sum(baseline.values()) / len(baseline)
        ax.axhline(value, color="dimgray", linestyle="--", linewidth=1.2, label=f"random init, same recipe ({value:.1f})")
    if not study.numeric:
        ax.set_xticks(xs, labels)
    elif len(xs) > 1:
        ax.set_xticks(xs)
    ax.set_xlabel(study.axis_label(entry["modality"]))
    better = "lower" if entry["lower_is_better"] else "higher"
    ax.set_ylabel(f"{entry['metric']} on {entry['split']}, % ({better} is better)")
    ax.set_title(f"data2vec {study.name} ablation, {entry['modality']} ({len(seeds)} seed(s))", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.text(0.5, 0.01, _wrap(study.paper_note(entry["modality"]), 95), ha="center", va="bottom", fontsize=7.5,
             style="italic")
    fig.subplots_adjust(bottom=0.25)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(entries: List[Dict], path: str) -> None:
    """Time-to-quality: each entry's (a ``budget`` study of one recipe) score against the
    pre-training seconds of its runs, one thin line per seed, the mean with one std, and the
    recipe's random init at 0 seconds; one colour per recipe."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for colour, entry in enumerate(entries):
        name = recipe_label(entry)
        rows = entry["rows"]
        if any("pretrain_s" not in r for r in rows):
            raise StudyError(f"the {name} table records no pre-training seconds per run", path=entry.get("recipe"))
        for seed in sorted({seed for r in rows for seed in r["seeds"]}):
            points = sorted((r["pretrain_s"][r["seeds"].index(seed)], r["scores"][r["seeds"].index(seed)])
                            for r in rows if seed in r["seeds"])
            ax.plot([p[0] for p in points], [p[1] for p in points], color=f"C{colour}", alpha=0.35, linewidth=1,
                    marker=".")
        means = sorted((sum(r["pretrain_s"]) / len(r["pretrain_s"]), r["mean"], r["std"], r["value"]) for r in rows)
        ax.errorbar([m[0] for m in means], [m[1] for m in means], yerr=[m[2] for m in means], color=f"C{colour}",
                    marker="o", capsize=3, label=f"{name} (mean +- std; thin: seeds)")
        for x, y, _, updates in means:
            ax.annotate(f"{updates}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6.5,
                        color=f"C{colour}")
        baseline = entry.get("random_init")
        if baseline:
            value = sum(baseline.values()) / len(baseline)
            ax.scatter([0], [value], color=f"C{colour}", marker="x", s=50, zorder=5,
                       label=f"{name}: random init ({value:.1f})")
    ax.set_xlabel(STUDIES["budget"].axis_label(entries[0]["modality"]) + "; labels: updates")
    better = "lower" if entries[0]["lower_is_better"] else "higher"
    ax.set_ylabel(f"{entries[0]['metric']} on {entries[0]['split']}, % ({better} is better)")
    seeds = max(len(r["seeds"]) for e in entries for r in e["rows"])
    ax.set_title(f"time to quality, {entries[0]['modality']} (up to {seeds} seed(s) per point)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.text(0.5, 0.01, _wrap(STUDIES["budget"].paper, 95), ha="center", va="bottom", fontsize=7.5, style="italic")
    fig.subplots_adjust(bottom=0.2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recipe_label(entry: Dict) -> str:
    """A table's recipe as the plot names it: its ``label``, else the recipe file's name."""
    return entry.get("label") or os.path.splitext(os.path.basename(entry.get("recipe") or "recipe"))[0]


def replot(results_paths: Sequence[str], study_name: str, path: str) -> str:
    """Redraws a study's plot from a results.json (a work dir's, or a copy in docs/ablations);
    a ``budget`` study draws the curves of every file given in one plot."""
    entries = []
    for results_path in results_paths:
        with open(results_path) as f:
            table = json.load(f)
        if study_name not in table:
            raise StudyError(f"no {study_name!r} study in it (it holds {', '.join(table) or 'none'})",
                             path=results_path)
        entries.append(table[study_name])
    if study_name == "budget":
        plot_curves(entries, path)
    elif len(entries) > 1:
        raise StudyError(f"the {study_name} plot draws one table; only budget curves join several")
    else:
        plot_entry(entries[0], path)
    return path


def _utc_now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def provenance(recipe: Recipe) -> Dict:
    """When and from what a study's table is made, taken as it starts (the code it runs): UTC
    date, the package's git commit (when it runs from a checkout) and the sha256 of the recipe and
    of each stage's config file."""
    import hashlib
    import subprocess

    def sha(path: str) -> str:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]

    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short",
                                 "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"date": _utc_now(), "commit": commit,
            "recipe_sha256": {os.path.basename(p): sha(p) for p in (recipe.path, recipe.pretrain.config,
                                                                     recipe.finetune.config)}}


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def default_score(checkpoint: str, data: str, split: str) -> Dict:
    """The recipe's score: ``evaluation.evaluate`` picks the metric from the checkpoint."""
    from ..evaluation import evaluate

    return evaluate(checkpoint, data, split)


def run_study(study_name: str, modality: Optional[str] = None, values: Optional[str] = None, seeds: int = 3,
              work: Optional[str] = None, recipe_path: Optional[str] = None, plot: Optional[str] = None,
              score: Callable[[str, str, str], Dict] = default_score, scores_from: Optional[str] = None) -> Dict:
    """Runs (or reuses) every (setting, seed) of a study, and the recipe's random init per seed
    when it names one, and reports it; returns the study's entry of WORK/results.json. See the
    module docstring."""
    if study_name not in STUDIES:
        raise StudyError(f"unknown study {study_name!r}; choose from {', '.join(STUDIES)}")
    study = STUDIES[study_name]
    if recipe_path is None:
        if modality not in MODALITIES:
            raise StudyError(f"--modality {modality!r} is not one of {', '.join(MODALITIES)}")
        recipe_path = default_recipe(modality)
    recipe = load_recipe(recipe_path)
    if modality is not None and modality != recipe.modality:
        raise StudyError(f"the recipe is for {recipe.modality}, not --modality {modality}", path=recipe_path)
    if seeds < 1:
        raise StudyError(f"--seeds {seeds}: at least one pre-training seed is needed")
    settings = parse_values(study, values, recipe)
    earlier = earlier_scores(scores_from, recipe) if scores_from else None
    started = provenance(recipe)
    work = os.path.abspath(work or os.path.join("work", "ablations", recipe.modality))
    os.makedirs(work, exist_ok=True)
    with work_lock(work):  # held until results.json is written: two studies never interleave there
        data = prepare_data(recipe, work)
        baselines = seeds if recipe.random_init else 0
        progress = Progress(study, recipe.modality, len(settings) * seeds + baselines)
        fingerprint = data_fingerprint(data)
        results = [run_setting(recipe, study, value, seed, data, fingerprint, work, progress, score, earlier)
                   for value in settings for seed in range(1, seeds + 1)]
        random_init = []
        if recipe.random_init:
            # the model's shape (only) from any pre-trained checkpoint of the recipe on disk
            shapes = [os.path.join(r.run_dir, "pretrain", "checkpoint_last.pt") for r in results]
            shapes = [p for p in shapes if os.path.isfile(p)]
            if not shapes:
                raise StudyError("the random init reads the model's shape from a pre-trained checkpoint of the "
                                 "recipe, and every score came from the earlier table: train one setting here first",
                                 path=work)
            random_init = [run_random_init(recipe, seed, data, fingerprint, work, shapes[0], progress, score)
                           for seed in range(1, seeds + 1)]
        rows = summarize(study, recipe, results)
        baseline_row = summarize(study, recipe, random_init)[0] if random_init else None
        print("\n" + format_table(study, recipe, rows, baseline_row))
        plot = plot or os.path.join(work, f"{study.name}.png")
        results_path = os.path.join(work, "results.json")
        entry = {"study": study.name, "modality": recipe.modality, "recipe": recipe.path, "label": recipe.label,
                 "metric": recipe.metric,
                 "lower_is_better": recipe.lower_is_better, "split": recipe.score_split, "seeds": seeds,
                 "paper": study.paper, "rows": rows, "plot": os.path.relpath(os.path.abspath(plot), work),
                 "runs": [os.path.relpath(r.run_dir, work) for r in results],
                 "seconds": round(time.time() - progress.start, 1), **started,
                 "finished": _utc_now()}
        if baseline_row:
            entry["random_init"] = {str(r.seed): r.scores[recipe.metric] for r in random_init}
            entry["random_init_runs"] = [os.path.relpath(r.run_dir, work) for r in random_init]
        if earlier is not None:
            entry["scores_from"] = os.path.abspath(scores_from)
        plot_entry(entry, plot)
        table = json.load(open(results_path)) if os.path.isfile(results_path) else {}
        table[study.name] = entry
        write_atomic_json(results_path, table)
    print(f"\nplot: {plot}\ntable: {results_path} ({study.name}); {study.paper}")
    return entry
