"""A local copy of GLUE (the official TSV layout) -> BPE'd, binarized input for fairseq's
``sentence_prediction`` task: ``TASK-bin/input0``, ``input1`` (sentence pairs) and ``label``.

    d2v prepare glue /data/glue /data/glue-bin --tasks RTE MRPC \
        --sp-model /data/text-bin/sentencepiece.bpe.model --dict /data/text-bin/dict.txt

The BPE model and dictionary are the pre-training ones (``d2v prepare text`` writes them).
Splits: train -> train, dev -> valid (MNLI: dev_matched -> valid, dev_mismatched -> valid1).
STS-B scores are divided by 5 (a regression target in [0, 1]). A line with the wrong number of
columns or an unknown label stops the recipe with the file and line named.
"""

import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .text import TextInputError, binarize, encode_file


@dataclass(frozen=True)
class GlueTask:
    """Where a task's columns are and which labels it has (None: a float score)."""
    folder: str
    columns: Optional[int]  # columns per line; None: as many as the header has
    header: bool
    sentence1: int
    sentence2: Optional[int]
    label: int
    labels: Optional[Tuple[str, ...]]
    splits: Tuple[Tuple[str, str], ...] = (("train", "train"), ("dev", "valid"))


TASKS: Dict[str, GlueTask] = {
    "CoLA": GlueTask("CoLA", 4, False, 3, None, 1, ("0", "1")),
    "SST-2": GlueTask("SST-2", None, True, 0, None, 1, ("0", "1")),
    "MRPC": GlueTask("MRPC", None, True, 3, 4, 0, ("0", "1")),
    "QQP": GlueTask("QQP", None, True, 3, 4, 5, ("0", "1")),
    "STS-B": GlueTask("STS-B", None, True, 7, 8, -1, None),
    "MNLI": GlueTask("MNLI", None, True, 8, 9, -1, ("contradiction", "entailment", "neutral"),
                     (("train", "train"), ("dev_matched", "valid"), ("dev_mismatched", "valid1"))),
    "QNLI": GlueTask("QNLI", None, True, 1, 2, 3, ("entailment", "not_entailment")),
    "RTE": GlueTask("RTE", None, True, 1, 2, 3, ("entailment", "not_entailment")),
}


def read_glue_tsv(path: str, task: GlueTask) -> List[Tuple[str, Optional[str], str]]:
    """(sentence1, sentence2 or None, label) per line of a GLUE TSV; errors name file:line."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    expected = task.columns
    start = 0
    if task.header:
        if not lines:
            raise TextInputError(f"{path}: empty (no header line)")
        expected, start = len(lines[0].split("\t")), 1
    for number, line in enumerate(lines[start:], start=start + 1):
        cols = line.split("\t")
        if len(cols) != expected:
            raise TextInputError(f"{path}:{number}: {len(cols)} tab-separated columns, expected {expected}")
        label = cols[task.label].strip()
        if task.labels is None:
            try:
                label = repr(float(label) / 5.0)
            except ValueError:
                raise TextInputError(f"{path}:{number}: score {label!r} is not a number") from None
        elif label not in task.labels:
            raise TextInputError(f"{path}:{number}: unknown label {label!r}; expected one of {list(task.labels)}")
        rows.append((cols[task.sentence1], cols[task.sentence2] if task.sentence2 is not None else None, label))
    if not rows:
        raise TextInputError(f"{path}: no examples")
    return rows


def prepare_task(glue_dir: str, out_dir: str, name: str, sp_model: str, dictionary: str) -> str:
    """One task: returns its ``NAME-bin`` folder."""
    task = TASKS[name]
    dest = os.path.join(out_dir, f"{name}-bin")
    with tempfile.TemporaryDirectory() as tmp:
        prefixes: Dict[str, Dict[str, str]] = {}
        for source, split in task.splits:
            rows = read_glue_tsv(os.path.join(glue_dir, task.folder, f"{source}.tsv"), task)
            columns = {"input0": [r[0] for r in rows], "label": [r[2] for r in rows]}
            if task.sentence2 is not None:
                columns["input1"] = [r[1] for r in rows]
            for column, values in columns.items():
                raw = os.path.join(tmp, f"{split}.{column}")
                with open(raw, "w", encoding="utf-8") as f:
                    f.write("\n".join(values) + "\n")
                if column != "label":
                    encode_file(sp_model, raw, raw + ".bpe")
                    raw += ".bpe"
                prefixes.setdefault(column, {})[split] = raw
        for column, by_split in prefixes.items():
            target = os.path.join(dest, column)
            if column == "label" and task.labels is None:  # a float per line, read as text
                os.makedirs(target, exist_ok=True)
                for split, path in by_split.items():
                    os.replace(path, os.path.join(target, f"{split}.label"))
                continue
            srcdict = dictionary if column != "label" else None
            binarize(target, by_split["train"], by_split["valid"], srcdict=srcdict)
            if "valid1" in by_split:  # MNLI's mismatched dev set: a second validation split
                extra = os.path.join(tmp, f"{column}-valid1")
                binarize(extra, by_split["valid1"], srcdict=os.path.join(target, "dict.txt"))
                for ext in ("bin", "idx"):
                    os.replace(os.path.join(extra, f"train.{ext}"), os.path.join(target, f"valid1.{ext}"))
    return dest
