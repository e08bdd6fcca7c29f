"""A frozen-feature, layer-wise linear probe (``d2v probe``): which layers of a model know a label.

For a labeled corpus table (a path column and a label column; splits from a split column, or
made by whole groups of ``group_column``), every item's features are mean-pooled per layer, a
logistic-regression classifier per layer (scikit-learn) is trained on the training split, and
its accuracy on the test split is reported per layer, for each checkpoint given (e.g. a
pre-trained model and the same architecture from random initialization). The table prints, and
a PNG plot (matplotlib) shows accuracy per layer, one line per checkpoint.
"""

import csv
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .data.corpus import Utterance, assign_splits
from .data.inputs import IMAGE_EXTENSIONS, Item
from .features import batches
from .hub import load
from .modules.errors import InputError


def usable_audio(path: str) -> bool:
    """Whether ``path`` is an audio file soundfile reads with at least one sample."""
    import soundfile as sf

    try:
        return sf.info(path).frames > 0
    except (RuntimeError, sf.LibsndfileError):
        return False


def read_labeled_table(table: str, label_column: str, path_column: str = "path", split_column: Optional[str] = None,
                       group_column: Optional[str] = None, test_share: float = 0.2, seed: int = 1,
                       skip_bad: bool = False) -> Dict[str, List]:
    """{"train": [(path, label)], "test": [...], "left_out": ["file:line: path"]} from a labeled
    corpus table; without a split column, whole groups (or single rows) go to test with
    ``test_share``. With ``skip_bad``, rows whose audio is missing, unreadable or empty are left
    out and listed (images are checked when read)."""
    if not os.path.isfile(table):
        raise InputError("no such corpus table", path=table)
    delimiter = "," if table.lower().endswith(".csv") else "\t"
    with open(table, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
        rows = list(reader)
        header = reader.fieldnames or []
    for column in (path_column, label_column, split_column, group_column):
        if column and column not in header:
            raise InputError(f"no {column!r} column in the header {header}", path=table, line=1)
    base = os.path.dirname(os.path.abspath(table))
    utterances = [Utterance(os.path.join(base, r[path_column]), f"{table}:{n}", r[label_column],
                            split=r[split_column] if split_column else None,
                            group=r[group_column] if group_column else None) for n, r in enumerate(rows, start=2)]
    left_out = []
    if skip_bad:
        audio = [u for u in utterances if not u.source.lower().endswith(IMAGE_EXTENSIONS)]
        bad = {id(u) for u in audio if not usable_audio(u.source)}
        left_out = [f"{u.where}: {u.source}" for u in utterances if id(u) in bad]
        utterances = [u for u in utterances if id(u) not in bad]
    assign_splits(utterances, 0.0, test_share, seed)
    splits = {"train": [(u.source, u.text) for u in utterances if u.split == "train"],
              "test": [(u.source, u.text) for u in utterances if u.split == "test"], "left_out": left_out}
    if not splits["train"] or not splits["test"]:
        raise InputError("the probe needs rows in both the train and the test split", path=table)
    return splits


RANDOM = "random:"


def pooled_features(checkpoint: str, paths: Sequence[str], max_tokens: int = 1_600_000,
                    precision: str = "fp32") -> np.ndarray:
    """Mean-pooled features of every layer: (items, layers, C), in the order of ``paths``.
    ``random:CHECKPOINT``: that checkpoint's architecture with fresh weights."""
    random_init = checkpoint.startswith(RANDOM)
    reps = load(checkpoint[len(RANDOM):] if random_init else checkpoint, random_init=random_init, precision=precision)
    items = [Item(str(i), p) for i, p in enumerate(paths)]
    out: Dict[str, np.ndarray] = {}
    for batch_items, values in batches(reps, items, max_tokens, 64):
        inputs, padding = reps.batch(values)
        states, out_padding = reps.hidden_states(inputs, padding)
        if out_padding is None:
            pooled = [s.mean(1) for s in states]
        else:
            keep = (~out_padding).float().unsqueeze(-1)  # (B, T, 1): valid frames only
            pooled = [(s * keep).sum(1) / keep.sum(1) for s in states]
        stacked = torch.stack(pooled, 1).numpy()  # (B, layers, C)
        for item, row in zip(batch_items, stacked, strict=True):
            out[item.id] = row
    return np.stack([out[item.id] for item in items])


def probe(checkpoints: Dict[str, str], table: str, label_column: str, path_column: str = "path",
          split_column: Optional[str] = None, group_column: Optional[str] = None, test_share: float = 0.2,
          seed: int = 1, plot: Optional[str] = None, skip_bad: bool = False,
          report=lambda line: None, precision: str = "fp32") -> Dict[str, List[float]]:
    """Test accuracy (percent) per layer for each named checkpoint; with ``plot``, a PNG of it.
    ``report`` receives a line on the splits and on any rows ``skip_bad`` left out; ``precision``:
    of the features' forward passes (see ``hub.load``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splits = read_labeled_table(table, label_column, path_column, split_column, group_column, test_share, seed,
                                skip_bad)
    left_out = splits.pop("left_out")
    labels = {s: [label for _, label in rows] for s, rows in splits.items()}
    report(f"{len(labels['train'])} train, {len(labels['test'])} test items; majority class {majority(labels):.1f}%"
           + (f"; left out {len(left_out)} unreadable or empty: {', '.join(left_out[:3])}" if left_out else ""))
    results = {}
    for name, checkpoint in checkpoints.items():
        train = pooled_features(checkpoint, [p for p, _ in splits["train"]], precision=precision)
        test = pooled_features(checkpoint, [p for p, _ in splits["test"]], precision=precision)
        accuracies = []
        for layer in range(train.shape[1]):
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
            classifier.fit(train[:, layer], labels["train"])
            accuracies.append(100.0 * classifier.score(test[:, layer], labels["test"]))
        results[name] = accuracies
    if plot:
        plot_accuracies(results, plot, f"{label_column}: linear probe per layer ({len(labels['train'])} train, "
                        f"{len(labels['test'])} test)", majority(labels))
    return results


def majority(labels: Dict[str, List[str]]) -> float:
    """Accuracy (percent) on test of always answering training's most frequent label."""
    values, counts = np.unique(labels["train"], return_counts=True)
    return 100.0 * float(np.mean(np.array(labels["test"]) == values[np.argmax(counts)]))


def plot_accuracies(results: Dict[str, List[float]], path: str, title: str, baseline: Optional[float] = None) -> None:
    """A PNG of accuracy per layer, one line per checkpoint (and the majority-class baseline)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, accuracies in results.items():
        ax.plot(range(len(accuracies)), accuracies, marker="o", label=name)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label="majority class")
    ax.set_xticks(range(max(len(v) for v in results.values())))
    ax.set_xlabel("layer (0: input of the first block)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def format_table(results: Dict[str, List[float]]) -> str:
    """Accuracy per layer as text: one row per layer, one column per checkpoint."""
    names = list(results)
    lines = ["layer" + "".join(f"{n:>16s}" for n in names)]
    for layer in range(max(len(v) for v in results.values())):
        lines.append(f"{layer:>5d}" + "".join(f"{results[n][layer]:>15.1f}%" for n in names))
    return "\n".join(lines)
