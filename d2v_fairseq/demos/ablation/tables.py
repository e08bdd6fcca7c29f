"""A study's rows (score per seed, mean, std) and its printed table."""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

from .recipes import Recipe
from .studies import Study


@dataclass
class RunResult:
    """One (setting, seed) of a study: its score dict and whether it was reused."""

    value: str
    seed: int
    scores: Dict[str, float]
    reused: bool
    run_dir: str
    earlier: bool = False  # the score was taken from an earlier table (``--scores-from``)


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
        for key in ("pretrain_s", "pretrain_train_s", "pretrain_updates"):  # per seed: time-to-quality's x
            if all(key in r.scores for r in runs):
                row[key] = [r.scores[key] for r in runs]
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


def paired_differences(rows: List[Dict]) -> Dict[str, Dict]:
    """Each row's score minus the first row's, seed by seed (the seeds both have): {value:
    {"per_seed": {seed: difference}, "mean": mean difference}}; the first row is the reference."""
    reference = dict(zip(rows[0]["seeds"], rows[0]["scores"], strict=True))
    out = {}
    for row in rows[1:]:
        per_seed = {seed: score - reference[seed] for seed, score in zip(row["seeds"], row["scores"], strict=True)
                    if seed in reference}
        out[row["value"]] = {"per_seed": per_seed,
                             "mean": sum(per_seed.values()) / len(per_seed) if per_seed else None}
    return out
