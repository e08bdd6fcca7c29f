"""A study's plot, and time-to-quality curves of several recipes in one figure."""

import json
import os
from typing import Dict, List, Sequence

from .recipes import StudyError
from .studies import STUDIES


def _figure():
    """A new (figure, axes) of the studies' size, drawn without a display."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.6))


def _finish(fig, ax, entry: Dict, xlabel: str, title: str, note: str, bottom: float, path: str) -> None:
    """Labels (the metric of ``entry``, which way is better), title, legend and the paper's note
    below; writes the figure to ``path`` and closes it."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    better = "lower" if entry["lower_is_better"] else "higher"
    ax.set_ylabel(f"{entry['metric']} on {entry['split']}, % ({better} is better)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.text(0.5, 0.01, _wrap(note, 95), ha="center", va="bottom", fontsize=7.5, style="italic")
    fig.subplots_adjust(bottom=bottom)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_entry(entry: Dict, path: str) -> None:
    """A study's plot from its results.json entry: the metric against the setting, one thin line
    joining each seed's points (the pairing the tables read), the mean with one std, the same
    recipe's random init as a dashed line when the entry holds it (``random_init``: per-seed
    scores), the axis unit, and the paper's finding below (saying which modality it measured)."""
    study = STUDIES[entry["study"]]
    if study.name == "budget":
        plot_curves([entry], path)
        return
    rows = entry["rows"]
    fig, ax = _figure()
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
    _finish(fig, ax, entry, study.axis_label(entry["modality"]),
            f"data2vec {study.name} ablation, {entry['modality']} ({len(seeds)} seed(s))",
            study.paper_note(entry["modality"]), 0.25, path)


def plot_curves(entries: List[Dict], path: str) -> None:
    """Time-to-quality: each entry's (a ``budget`` study of one recipe) score against the
    pre-training seconds of its runs, one thin line per seed, the mean with one std, and the
    recipe's random init at 0 seconds; one colour per recipe."""
    fig, ax = _figure()
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
    seeds = max(len(r["seeds"]) for e in entries for r in e["rows"])
    _finish(fig, ax, entries[0], STUDIES["budget"].axis_label(entries[0]["modality"]) + "; labels: updates",
            f"time to quality, {entries[0]['modality']} (up to {seeds} seed(s) per point)", STUDIES["budget"].paper,
            0.2, path)


def plot_methods(entries: List[Dict], path: str) -> None:
    """Time to quality of the method study: each method's score against the seconds of training
    its runs had (fairseq's clock), one point per pre-training time (an entry ``method-Ns``), the
    mean with one std, one thin line per seed; the random init dashed."""
    fig, ax = _figure()
    entries = sorted(entries, key=lambda e: e["pretrain_seconds"])
    methods = list(dict.fromkeys(r["value"] for e in entries for r in e["rows"]))
    for colour, method in enumerate(methods):
        rows = [r for e in entries for r in e["rows"] if r["value"] == method]
        for seed in sorted({seed for r in rows for seed in r["seeds"]}):
            points = [(r["pretrain_train_s"][r["seeds"].index(seed)], r["scores"][r["seeds"].index(seed)])
                      for r in rows if seed in r["seeds"]]
            ax.plot([p[0] for p in points], [p[1] for p in points], color=f"C{colour}", alpha=0.35, linewidth=1,
                    marker=".")
        ax.errorbar([sum(r["pretrain_train_s"]) / len(r["pretrain_train_s"]) for r in rows], [r["mean"] for r in rows],
                    yerr=[r["std"] for r in rows], color=f"C{colour}", marker="o", capsize=3,
                    label=f"{method} (mean +- std; thin: seeds)")
    baseline = entries[-1].get("random_init")
    if baseline:
        value = sum(baseline.values()) / len(baseline)
        ax.axhline(value, color="dimgray", linestyle="--", linewidth=1.2, label=f"random init, same recipe ({value:.1f})")
    seeds = max(len(r["seeds"]) for e in entries for r in e["rows"])
    _finish(fig, ax, entries[0], "pre-training: seconds of training (fairseq's clock), the same for every method",
            f"time to quality by method, {entries[0]['modality']} ({seeds} seed(s) per point)",
            STUDIES["method"].paper, 0.2, path)


def recipe_label(entry: Dict) -> str:
    """A table's recipe as the plot names it: its ``label``, else the recipe file's name."""
    return entry.get("label") or os.path.splitext(os.path.basename(entry.get("recipe") or "recipe"))[0]


def replot(results_paths: Sequence[str], study_name: str, path: str) -> str:
    """Redraws a study's plot from a results.json (a work dir's, or a copy in docs/ablations);
    a ``budget`` study draws the curves of every file given in one plot, ``method`` the time to
    quality of every pre-training time the files hold."""
    entries = []
    for results_path in results_paths:
        with open(results_path) as f:
            table = json.load(f)
        if study_name == "method":  # every pre-training time the file holds
            entries += [entry for name, entry in table.items() if name.startswith("method-")]
            continue
        if study_name not in table:
            raise StudyError(f"no {study_name!r} study in it (it holds {', '.join(table) or 'none'})",
                             path=results_path)
        entries.append(table[study_name])
    if study_name == "budget":
        plot_curves(entries, path)
    elif study_name == "method":
        if not entries:
            raise StudyError("no method tables (method-SECONDSs) in " + ", ".join(results_paths))
        plot_methods(entries, path)
    elif len(entries) > 1:
        raise StudyError(f"the {study_name} plot draws one table; only budget curves join several")
    else:
        plot_entry(entries[0], path)
    return path


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
