"""Running a study: its runs (reused, taken from an earlier table, or trained), the work dir's lock,
progress and ETA, and the study's entry in results.json."""

import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ...checkpoints import write_atomic_json
from ...launch import load_config, with_overrides
from ...locks import DirectoryLock
from ..common import hydra_train
from .keys import data_fingerprint, model_shape, run_key
from .plots import plot_entry
from .recipes import (
    MODALITIES,
    Recipe,
    StudyError,
    default_recipe,
    load_recipe,
    stage_overrides,
    substitute,
)
from .studies import STUDIES, Study, parse_values
from .tables import RunResult, format_table, paired_differences, summarize


def prepare_data(recipe: Recipe, work: str) -> str:
    """The recipe's data dir; the modality's demo data built under WORK/data when it names none."""
    if recipe.data:
        if not os.path.exists(recipe.data):
            raise StudyError(f"recipe key data: no such path {recipe.data}", path=recipe.path)
        return os.path.abspath(recipe.data)
    out = os.path.join(work, "data")
    if recipe.modality == "speech":
        from ..speech_corpus import build_corpus

        build_corpus(out)
    elif recipe.modality == "vision":
        from ..vision import build_data

        return build_data(out)  # its manifests folder
    else:
        from ..text import build_data

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


@dataclass
class Budget:
    """The method study's equal pre-training time: ``seconds`` of fairseq's training clock
    (``optimization.stop_time_hours``) and each setting's update count for them (its schedule's
    length), measured by :func:`calibrate`."""

    seconds: float
    updates: Dict[str, int]


def run_setting(recipe: Recipe, study: Study, value: str, seed: int, data: str, fingerprint: str, work: str,
                progress: Progress, score: Callable[[str, str, str], Dict],
                earlier: Optional[Dict[str, Dict]] = None, budget: Optional[Budget] = None,
                substitutions: Optional[Dict[str, str]] = None) -> RunResult:
    """Pre-trains, fine-tunes and scores one (setting, seed), reusing what is already done;
    ``fingerprint``: ``data_fingerprint(data)``; ``earlier``: scores of an earlier table by run
    directory (:func:`earlier_scores`), taken for this run when it names its directory;
    ``budget``: pre-train for its seconds (the method study); ``substitutions``: more ``{name}``
    values for the overrides (``labels``)."""
    start = time.time()
    stage = study.pretrain_stage(value, recipe)
    updates = budget.updates[value] if budget else study.pretrain_updates(value, recipe)
    setting = [*study.setting_overrides(value), f"common.seed={seed}", f"optimization.max_update={updates}"]
    if budget:
        setting.append(f"optimization.stop_time_hours={budget.seconds / 3600:.8f}")
    subst = {"data": data, "seed": str(seed), "updates": str(updates), **(substitutions or {})}
    pre_overrides = stage_overrides(stage, subst, setting)
    pre_cfg = load_config(stage.config, pre_overrides)
    pre_key = run_key(pre_cfg, data=fingerprint)
    run_name = f"{recipe.modality}-{pre_key}"
    run_dir = os.path.join(work, "runs", run_name)
    pre_dir = os.path.join(run_dir, "pretrain")
    ft_overrides = finetune_overrides(recipe, data, seed, os.path.join(pre_dir, "checkpoint_last.pt"),
                                      study.finetune_overrides(value, recipe))
    ft_key = run_key(load_config(recipe.finetune.config, ft_overrides), pretrain=pre_key, data=fingerprint)
    ft_dir = os.path.join(run_dir, f"finetune-{ft_key}")
    label = f"{study.short}={value}"
    reused = _reused(recipe, ft_dir, work, progress, label, value, seed, run_dir)
    if reused is not None:
        return reused
    taken = (earlier or {}).get(run_name)
    if taken is not None:
        progress.line(label, seed, f"from the earlier table ({run_name}): {recipe.metric} {taken[recipe.metric]:.2f}")
        progress.finished(None)
        return RunResult(value, seed, taken, True, run_dir, earlier=True)
    os.makedirs(run_dir, exist_ok=True)
    write_atomic_json(os.path.join(run_dir, "run.json"),
                      {"modality": recipe.modality, "setting": {study.key: study.config_value(value)}, "seed": seed,
                       "data": data, "data_fingerprint": fingerprint, "pretrain_config": pre_cfg}, default=str)
    pretrain_start = time.time()
    last = os.path.join(pre_dir, "checkpoint_last.pt")
    clock = training_clock(last) if budget and os.path.isfile(last) else None
    if clock and clock["pretrain_train_s"] >= budget.seconds:
        # a run its time stopped is finished (run again, fairseq would train one more update)
        progress.line(label, seed, f"pre-trained before: {clock['pretrain_updates']:.0f} updates in "
                                   f"{clock['pretrain_train_s']:.0f} s of training, kept")
    else:
        limit = f" (at most {budget.seconds:.0f} s of training)" if budget else ""
        progress.line(label, seed, f"pre-training {updates} updates{limit} in {os.path.relpath(run_dir, work)}")
        hydra_train(os.path.dirname(stage.config), pre_dir, updates, pre_overrides,
                    os.path.join(run_dir, "pretrain.log"), modality="",
                    config_name=os.path.splitext(os.path.basename(stage.config))[0], show=())
        clock = None  # trained now: read again below
    pretrain_seconds = time.time() - pretrain_start
    trained = (clock or training_clock(last)) if budget else {}
    progress.line(label, seed, f"fine-tuning {recipe.finetune.updates} updates")
    return _fine_tuned(recipe, ft_dir, ft_overrides, data, seed, score, pretrain_seconds, progress, label, value,
                       run_dir, start, trained)


def training_clock(checkpoint: str) -> Dict[str, float]:
    """{"pretrain_train_s", "pretrain_updates"}: the training clock (fairseq's cumulative training
    time) and the updates a checkpoint holds."""
    from ...checkpoints import read_state

    state = read_state(checkpoint)
    if state is None:
        raise StudyError("cannot read the pre-trained checkpoint", path=checkpoint)
    extra = state.get("extra_state") or {}
    return {"pretrain_train_s": round(float(extra.get("previous_training_time") or 0.0), 1),
            "pretrain_updates": float(state["optimizer_history"][-1]["num_updates"])}


def calibrate(recipe: Recipe, study: Study, values: List[str], data: str, fingerprint: str, work: str,
              substitutions: Dict[str, str]) -> Budget:
    """Each setting's updates per second of training, from a first run of ``recipe.calibrate``
    updates (seed 1, logged every 10: the mean of fairseq's ``ups`` after the first interval),
    made once per setting and config in WORK/calibration; returns the recipe's budget."""
    import re

    updates = {}
    for value in values:
        stage = study.pretrain_stage(value, recipe)
        overrides = stage_overrides(stage, {"data": data, "seed": "1", "updates": str(recipe.calibrate),
                                            **substitutions},
                                    ["common.seed=1", f"optimization.max_update={recipe.calibrate}",
                                     "common.log_interval=10"])
        key = run_key(load_config(stage.config, overrides), data=fingerprint)
        out = os.path.join(work, "calibration", f"{value}-{key}")
        rate_path = os.path.join(out, "rate.json")
        if not os.path.isfile(rate_path):
            os.makedirs(os.path.dirname(out), exist_ok=True)  # its log goes beside it
            print(f"[{study.name} {recipe.modality}] {value}: measuring its updates per second "
                  f"({recipe.calibrate} updates in {os.path.relpath(out, work)})", flush=True)
            hydra_train(os.path.dirname(stage.config), out, recipe.calibrate, overrides, out + ".log", modality="",
                        config_name=os.path.splitext(os.path.basename(stage.config))[0], show=())
            with open(out + ".log", encoding="utf-8") as f:
                ups = [float(v) for line in f if "train_inner" in line for v in re.findall(r"\bups=([\d.]+)", line)]
            if len(ups) < 2:
                raise StudyError(f"the calibration run logged {len(ups)} update rates; pretrain.calibrate needs at "
                                 "least 20 updates", path=out + ".log")
            write_atomic_json(rate_path, {"updates_per_s": sum(ups[1:]) / len(ups[1:]), "ups": ups})
        with open(rate_path) as f:
            rate = json.load(f)["updates_per_s"]
        updates[value] = max(1, int(recipe.seconds * rate))
        print(f"[{study.name} {recipe.modality}] {value}: {rate:.2f} updates/s -> {updates[value]} updates in "
              f"{recipe.seconds:.0f} s", flush=True)
    return Budget(recipe.seconds, updates)


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
    reused = _reused(recipe, ft_dir, work, progress, RANDOM_INIT, RANDOM_INIT, seed, ft_dir)
    if reused is not None:
        return reused
    progress.line(RANDOM_INIT, seed, f"fine-tuning {recipe.finetune.updates} updates from random init")
    return _fine_tuned(recipe, ft_dir, overrides, data, seed, score, 0.0, progress, RANDOM_INIT, RANDOM_INIT, ft_dir,
                       start)


def _reused(recipe: Recipe, ft_dir: str, work: str, progress: Progress, label: str, value: str, seed: int,
            run_dir: str) -> Optional[RunResult]:
    """The run's result when its fine-tuning finished before (said in its progress line), else None."""
    scores = reused_scores(ft_dir, recipe)
    if scores is None:
        return None
    progress.line(label, seed, f"reused {os.path.relpath(ft_dir, work)}: {recipe.metric} {scores[recipe.metric]:.2f}")
    progress.finished(None)
    return RunResult(value, seed, scores, True, run_dir)


def _fine_tuned(recipe: Recipe, ft_dir: str, overrides: List[str], data: str, seed: int,
                score: Callable[[str, str, str], Dict], pretrain_s: float, progress: Progress, label: str, value: str,
                run_dir: str, start: float, extra: Optional[Dict[str, float]] = None) -> RunResult:
    """Fine-tunes and scores a run (:func:`finetune_and_score`), says its score and time, and
    counts it as trained for the ETA."""
    scores = finetune_and_score(recipe, ft_dir, overrides, data, seed, score, pretrain_s=pretrain_s, extra=extra)
    seconds = time.time() - start
    progress.line(label, seed, f"{recipe.metric} {scores[recipe.metric]:.2f} ({_minutes(seconds)})")
    progress.finished(seconds)
    return RunResult(value, seed, scores, False, run_dir)


def finetune_overrides(recipe: Recipe, data: str, seed: int, pretrained: str, extra: Sequence[str] = ()) -> List[str]:
    """The overrides of a fine-tuning run of the recipe from the checkpoint ``pretrained``
    (``extra``: a setting's own, last)."""
    subst = {"data": data, "seed": str(seed), "pretrained": pretrained, "updates": str(recipe.finetune.updates)}
    return stage_overrides(recipe.finetune, subst,
                           [f"common.seed={seed}", f"optimization.max_update={recipe.finetune.updates}", *extra])


def reused_scores(ft_dir: str, recipe: Recipe) -> Optional[Dict]:
    """The scores a finished fine-tuning in ``ft_dir`` wrote (None: not finished)."""
    path = os.path.join(ft_dir, f"score-{recipe.score_split}.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def finetune_and_score(recipe: Recipe, ft_dir: str, overrides: List[str], data: str, seed: int,
                       score: Callable[[str, str, str], Dict], pretrain_s: float,
                       extra: Optional[Dict[str, float]] = None) -> Dict:
    """Fine-tunes into ``ft_dir``, scores its best checkpoint and writes the scores (with the
    pre-training seconds, and ``extra``) beside it; returns them."""
    os.makedirs(os.path.dirname(ft_dir), exist_ok=True)  # its log goes beside it
    hydra_train(os.path.dirname(recipe.finetune.config), ft_dir, recipe.finetune.updates, overrides,
                ft_dir + ".log", modality="",
                config_name=os.path.splitext(os.path.basename(recipe.finetune.config))[0], show=())
    subst = {"data": data, "seed": str(seed)}
    scores = score(os.path.join(ft_dir, "checkpoint_best.pt"), substitute(recipe.score_data, subst), recipe.score_split)
    scores = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
    scores["pretrain_s"] = round(pretrain_s, 1)
    scores.update(extra or {})
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


def default_score(checkpoint: str, data: str, split: str) -> Dict:
    """The recipe's score: ``evaluation.evaluate`` picks the metric from the checkpoint."""
    from ...evaluation import evaluate

    return evaluate(checkpoint, data, split)


def prepare_labels(recipe: Recipe, values: List[str], data: str, fingerprint: str, work: str) -> Dict[str, str]:
    """The ``{labels}`` substitution: HuBERT's MFCC k-means labels of the data, made once in
    WORK/labels-FINGERPRINT when a chosen method needs them (none: {})."""
    if not any(recipe.methods[v].labels for v in values if v in recipe.methods):
        return {}
    from .labels import make_labels

    out = os.path.join(work, f"labels-{fingerprint[:12]}")
    print(f"[method {recipe.modality}] HuBERT labels: MFCC k-means with fairseq's simple_kmeans in "
          f"{os.path.relpath(out, work)}", flush=True)
    return {"labels": make_labels(data, out, fingerprint)}


def run_study(study_name: str, modality: Optional[str] = None, values: Optional[str] = None, seeds: int = 3,
              work: Optional[str] = None, recipe_path: Optional[str] = None, plot: Optional[str] = None,
              score: Callable[[str, str, str], Dict] = default_score, scores_from: Optional[str] = None,
              seconds: Optional[float] = None) -> Dict:
    """Runs (or reuses) every (setting, seed) of a study, and the recipe's random init per seed
    when it names one, and reports it; returns the study's entry of WORK/results.json. See the
    module docstring. ``seconds``: the method study's pre-training time instead of the recipe's."""
    if study_name not in STUDIES:
        raise StudyError(f"unknown study {study_name!r}; choose from {', '.join(STUDIES)}")
    study = STUDIES[study_name]
    if recipe_path is None:
        if modality not in MODALITIES:
            raise StudyError(f"--modality {modality!r} is not one of {', '.join(MODALITIES)}")
        recipe_path = default_recipe(modality, study_name)
    recipe = load_recipe(recipe_path)
    if seconds is not None:
        if study_name != "method" or seconds <= 0:
            raise StudyError("--seconds is the method study's pre-training time (a positive number of seconds)")
        recipe.seconds = float(seconds)
    if study_name == "method" and not recipe.methods:
        raise StudyError("the method study needs a recipe with methods (see configs/ablations/method-speech.yaml)",
                         path=recipe_path)
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
        budget, substitutions, name = None, {}, study.name
        if study_name == "method":
            substitutions = prepare_labels(recipe, settings, data, fingerprint, work)
            budget = calibrate(recipe, study, settings, data, fingerprint, work, substitutions)
            name = f"method-{recipe.seconds:g}s"  # one table per pre-training time
        results = [run_setting(recipe, study, value, seed, data, fingerprint, work, progress, score, earlier, budget,
                               substitutions)
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
        plot = plot or os.path.join(work, f"{name}.png")
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
        if budget:
            entry["pretrain_seconds"] = budget.seconds
            entry["pretrain_updates_planned"] = budget.updates
            entry["paired_differences"] = paired_differences(rows)
        plot_entry(entry, plot)
        table = json.load(open(results_path)) if os.path.isfile(results_path) else {}
        table[name] = entry
        write_atomic_json(results_path, table)
    print(f"\nplot: {plot}\ntable: {results_path} ({name}); {study.paper}")
    return entry
