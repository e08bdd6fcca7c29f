"""What a speech recipe will do with each row of a prepared corpus, settled before any training.

Given a corpus in fairseq's wav2vec format (``{train,valid,test,pretrain}.tsv`` + ``.ltr`` /
``.wrd``) and the pre-training and fine-tuning configs that will read it, ``plan_stages``
checks every constraint those stages apply:

* the conv front end's receptive field (a recording shorter than it gives no frame: it is left
  out of every stage);
* CTC: a transcript needs at least one frame per letter, plus one blank between repeated
  letters (``plan`` counts ``|`` word boundaries as letters, as the labels do); a training or
  validation row whose transcript is longer than its frames allow is left out of fine-tuning; a
  test row is still scored (its errors count) and reported;
* fine-tuning's batch limit (``dataset.max_tokens``) and crop size (``task.max_sample_size``,
  which would cut a labeled recording off from the end of its transcript): both follow the
  corpus, so a batch always fits the longest kept utterance; ``max_seconds`` instead leaves
  rows longer than that out of fine-tuning (train and valid), counted;
* pre-training: rows shorter than ``task.min_sample_size`` are skipped by fairseq's dataset,
  rows longer than ``task.max_sample_size`` are cropped (as pre-training always does): both
  reported.

Rows left out are counted per reason with their manifest line; the kept rows of a split go to
``SPLIT_usable.{tsv,ltr,wrd}`` when any were left out, and the plan names the subsets and the
hydra overrides the stages must run with.
"""

import ast
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..modules.errors import InputError
from .manifest import SAMPLE_RATE, read_lines

FINETUNE_SPLITS = ("train", "valid")


@dataclass
class Row:
    """One manifest row: where it is (``SPLIT.tsv:LINE``), its audio and its letters."""
    where: str
    audio: str
    samples: int
    letters: Optional[List[str]] = None
    words: Optional[str] = None


@dataclass
class StagePlan:
    """What the stages will read: subsets, overrides, rows left out and everything reported."""
    subsets: Dict[str, str]  # split -> manifest name to read ("train" or "train_usable")
    finetune_overrides: List[str]
    left_out: Dict[str, List[str]] = field(default_factory=dict)  # reason -> ["SPLIT.tsv:LINE: detail"]
    notes: List[str] = field(default_factory=list)
    durations: Dict[str, Dict[str, float]] = field(default_factory=dict)
    batches_per_epoch: Dict[str, int] = field(default_factory=dict)  # "pretrain" / "finetune" -> batches
    letter_counts: Dict[str, int] = field(default_factory=dict)  # letter -> occurrences in the kept training rows

    def summary(self) -> Dict:
        return {"subsets": self.subsets, "finetune_overrides": self.finetune_overrides, "durations": self.durations,
                "batches_per_epoch": self.batches_per_epoch, "letter_counts": self.letter_counts,
                "left_out": {reason: len(rows) for reason, rows in self.left_out.items()},
                "left_out_rows": self.left_out, "notes": self.notes}


def conv_layers(spec: str, where: str) -> List[Tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` string, e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``,
    -> [(channels, kernel, stride)], read without running code."""
    try:
        layers = _literal_list(ast.parse(spec, mode="eval").body)
    except (SyntaxError, ValueError) as error:
        raise InputError(f"model.conv_feature_layers {spec!r} is not a list of (dim, kernel, stride): {error}",
                         path=where) from None
    return [tuple(int(v) for v in layer) for layer in layers]


def _literal_list(node) -> list:
    """A list expression made of literal lists, ``+`` and ``* int`` (what the configs write)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_list(node.left) + _literal_list(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _literal_list(node.left) * int(ast.literal_eval(node.right))
    value = ast.literal_eval(node)
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def frames(samples: int, layers: Sequence[Tuple[int, int, int]]) -> int:
    """Frames the conv stack gives for ``samples`` (0 when shorter than its receptive field)."""
    n = samples
    for _, kernel, stride in layers:
        if n < kernel:
            return 0
        n = (n - kernel) // stride + 1
    return n


def receptive_field(layers: Sequence[Tuple[int, int, int]]) -> int:
    """The shortest input (samples) that gives one frame."""
    size = 1
    for _, kernel, stride in reversed(layers):
        size = (size - 1) * stride + kernel
    return size


def ctc_frames_needed(letters: Sequence[str]) -> int:
    """The fewest frames CTC can align ``letters`` to: one per letter, one blank between repeats."""
    return len(letters) + sum(1 for a, b in zip(letters, letters[1:], strict=False) if a == b)


def read_split(data_dir: str, split: str) -> List[Row]:
    """SPLIT.tsv with its .ltr / .wrd (when present) as rows."""
    tsv = os.path.join(data_dir, f"{split}.tsv")
    lines = read_lines(tsv)
    ltr_path, wrd_path = os.path.join(data_dir, f"{split}.ltr"), os.path.join(data_dir, f"{split}.wrd")
    ltr = read_lines(ltr_path) if os.path.isfile(ltr_path) else None
    wrd = read_lines(wrd_path) if os.path.isfile(wrd_path) else None
    rows = []
    for i, line in enumerate(lines[1:]):
        audio, samples = line.split("\t")[:2]
        rows.append(Row(f"{split}.tsv:{i + 2}", audio, int(samples), ltr[i].split() if ltr else None,
                        wrd[i] if wrd else None))
    return rows


def duration_stats(rows: Sequence[Row]) -> Dict[str, float]:
    """min, median, max and total seconds of ``rows``."""
    seconds = [r.samples / SAMPLE_RATE for r in rows] or [0.0]
    return {"utterances": len(rows), "min": round(min(seconds), 2), "median": round(statistics.median(seconds), 2),
            "max": round(max(seconds), 2), "total": round(sum(seconds), 1)}


def plan_stages(data_dir: str, pretrain_cfg: dict, finetune_cfg: dict, max_seconds: Optional[float] = None,
                front_end: Optional[str] = None) -> StagePlan:
    """Checks every row of the corpus in ``data_dir`` against the stages' configs (resolved
    dicts) and settles what each stage reads; see the module docstring. ``front_end``: the
    ``conv_feature_layers`` of the model fine-tuning starts from (default: the pre-training
    config's)."""
    model = pretrain_cfg.get("model", {})
    spec = front_end or model.get("conv_feature_layers")
    if not spec:
        raise InputError("the pre-training config names no model.conv_feature_layers", path="pretraining config")
    layers = conv_layers(spec, "model.conv_feature_layers")
    field_min = receptive_field(layers)
    splits = {s: read_split(data_dir, s) for s in ("train", "valid", "test", "pretrain")
              if os.path.isfile(os.path.join(data_dir, f"{s}.tsv"))}
    plan = StagePlan(subsets={}, finetune_overrides=[])
    plan.durations = {s: duration_stats(rows) for s, rows in splits.items()}

    def leave_out(reason: str, row: Row, detail: str) -> None:
        plan.left_out.setdefault(reason, []).append(f"{row.where}: {row.audio}: {detail}")

    kept: Dict[str, List[Row]] = {}
    for split in ("train", "valid", "test"):
        if split not in splits:
            continue
        kept[split] = []
        for row in splits[split]:
            if row.samples < field_min:
                leave_out("shorter than the front end", row, f"{row.samples} samples < {field_min} "
                          f"({field_min / SAMPLE_RATE * 1000:.0f} ms, one frame)")
                continue
            if row.letters is not None:
                need, have = ctc_frames_needed(row.letters), frames(row.samples, layers)
                if need > have:
                    if split == "test":
                        plan.notes.append(f"{row.where}: its transcript needs {need} CTC frames, the audio gives "
                                          f"{have}: scored as it is (its errors count)")
                    else:
                        leave_out("transcript too long for CTC", row, f"{need} frames needed ({len(row.letters)} "
                                  f"letters and word boundaries), {have} in {row.samples / SAMPLE_RATE:.2f} s")
                        continue
            if max_seconds is not None and split in FINETUNE_SPLITS and row.samples > max_seconds * SAMPLE_RATE:
                leave_out("longer than --max-seconds", row, f"{row.samples / SAMPLE_RATE:.1f} s > {max_seconds:g} s "
                          "(kept for pre-training, which crops)")
                continue
            kept[split].append(row)
        if not kept[split] and split in FINETUNE_SPLITS:
            raise InputError(f"no {split} utterance is left for fine-tuning; see the reasons above",
                             path=os.path.join(data_dir, f"{split}.tsv"))
        plan.subsets[split] = split if len(kept[split]) == len(splits[split]) else f"{split}_usable"
        if plan.subsets[split] != split:
            write_subset(data_dir, split, plan.subsets[split], kept[split])

    # fine-tuning's batches and crops follow the corpus: never smaller than its longest kept row
    ft_task, ft_data = finetune_cfg.get("task", {}), finetune_cfg.get("dataset", {})
    longest = max((r.samples for s in FINETUNE_SPLITS for r in kept.get(s, [])), default=0)
    max_tokens = int(ft_data.get("max_tokens") or 0)
    if max_tokens and longest > max_tokens:
        plan.finetune_overrides.append(f"dataset.max_tokens={longest}")
        plan.notes.append(f"fine-tuning batches: at most {longest} samples ({longest / SAMPLE_RATE:.1f} s, the longest "
                          f"kept utterance) instead of the recipe's {max_tokens} ({max_tokens / SAMPLE_RATE:.1f} s)")
    crop = int(ft_task.get("max_sample_size") or 0)
    if crop and longest > crop:
        plan.finetune_overrides.append(f"task.max_sample_size={longest}")
        plan.notes.append(f"fine-tuning crop: {longest} samples instead of the recipe's {crop} (a labeled "
                          "recording is never cut)")

    ft_rows = kept.get("train", [])
    plan.batches_per_epoch["finetune"] = epoch_batches([r.samples for r in ft_rows], max(max_tokens, longest))
    plan.letter_counts = dict(Counter(letter for row in ft_rows for letter in row.letters or () if letter != "|"))

    # pre-training reads pretrain.tsv (or train.tsv): it skips what is too short, crops what is long
    pre_rows = splits.get("pretrain", splits.get("train", []))
    pre_task = pretrain_cfg.get("task", {})
    shortest, crop = int(pre_task.get("min_sample_size") or 0), int(pre_task.get("max_sample_size") or 0)
    too_short = [r for r in pre_rows if r.samples < max(shortest, field_min)]
    if too_short:
        plan.notes.append(f"pre-training skips {len(too_short)} recording(s) shorter than task.min_sample_size="
                          f"{shortest} ({shortest / SAMPLE_RATE:.2f} s), e.g. {too_short[0].where}")
    if crop:
        cropped = sum(1 for r in pre_rows if r.samples > crop)
        if cropped:
            plan.notes.append(f"pre-training crops {cropped} recording(s) to {crop / SAMPLE_RATE:.1f} s "
                              "(a random window each epoch, as it does for every long recording)")
    skipped = {id(r) for r in too_short}
    pre_sizes = [min(r.samples, crop) if crop else r.samples for r in pre_rows if id(r) not in skipped]
    plan.batches_per_epoch["pretrain"] = epoch_batches(pre_sizes, int(pretrain_cfg.get("dataset", {}).get("max_tokens")
                                                                      or 0))
    return plan


def epoch_batches(sizes: Sequence[int], max_tokens: int) -> int:
    """Batches in one epoch of recordings of ``sizes`` samples under fairseq's ``max_tokens``
    (each batch padded to its longest; recordings in length order, as fairseq batches them)."""
    if not max_tokens:
        return len(sizes)
    batches, count, longest = 0, 0, 0
    for size in sorted(sizes):
        if count and (count + 1) * max(longest, size) > max_tokens:
            batches, count, longest = batches + 1, 0, 0
        count, longest = count + 1, max(longest, size)
    return batches + (1 if count else 0)


# Budgets of the own-corpus demo, tuned on Debian's fillets-ng Dutch and Czech recordings (about
# 1.3 hours each, 29 and 40 letters): pre-training passes over the audio, fine-tuning passes over the
# labeled audio, and CTC updates per letter of the alphabet (a letter counts when the training
# transcripts hold it at least LETTER_MIN_COUNT times: one stray word in another script adds no
# work). Validation runs every VALIDATE_EVERY updates; fine-tuning stops when the valid UER has not
# improved for PATIENCE validations (pre-training runs its budget: its loss chases moving targets).
PRETRAIN_EPOCHS = 6
FINETUNE_EPOCHS = 10
UPDATES_PER_LETTER = 100
LETTER_MIN_COUNT = 20
VALIDATE_EVERY = 500
PATIENCE = 3
MIN_UPDATES, MAX_UPDATES = 1000, 10000


@dataclass
class Budget:
    """The updates each stage may take at most, the validation patience, and why."""
    pretrain_updates: int
    finetune_updates: int
    patience: int
    reasons: List[str]


def _round_up(updates: float) -> int:
    return int(min(MAX_UPDATES, max(MIN_UPDATES, -(-updates // VALIDATE_EVERY) * VALIDATE_EVERY)))


def choose_budget(plan: StagePlan) -> Budget:
    """The own-corpus demo's budgets from the corpus: see the constants above."""
    letters = sorted(k for k, n in plan.letter_counts.items() if n >= LETTER_MIN_COUNT)
    pre_batches, ft_batches = plan.batches_per_epoch.get("pretrain", 0), plan.batches_per_epoch.get("finetune", 0)
    pretrain = _round_up(PRETRAIN_EPOCHS * pre_batches)
    by_epochs, by_letters = FINETUNE_EPOCHS * ft_batches, UPDATES_PER_LETTER * len(letters)
    finetune = _round_up(max(by_epochs, by_letters))
    return Budget(pretrain, finetune, PATIENCE, [
        f"pre-training: at most {pretrain} updates ({PRETRAIN_EPOCHS} passes of {pre_batches} batches)",
        f"fine-tuning: at most {finetune} updates (the larger of {FINETUNE_EPOCHS} passes of {ft_batches} batches "
        f"and {UPDATES_PER_LETTER} per letter for {len(letters)} letters seen >= {LETTER_MIN_COUNT} times)",
        f"fine-tuning stops when the valid UER (every {VALIDATE_EVERY} updates) has not improved for {PATIENCE} "
        "validations"])


def write_subset(data_dir: str, split: str, name: str, rows: Sequence[Row]) -> None:
    """NAME.tsv (and .ltr / .wrd when the split has them) holding ``rows`` of SPLIT."""
    root = read_lines(os.path.join(data_dir, f"{split}.tsv"))[0]
    with open(os.path.join(data_dir, f"{name}.tsv"), "w", encoding="utf-8") as f:
        f.write(root + "\n" + "".join(f"{r.audio}\t{r.samples}\n" for r in rows))
    if rows and rows[0].letters is not None:
        with open(os.path.join(data_dir, f"{name}.ltr"), "w", encoding="utf-8") as f:
            f.write("".join(" ".join(r.letters) + "\n" for r in rows))
    if rows and rows[0].words is not None:
        with open(os.path.join(data_dir, f"{name}.wrd"), "w", encoding="utf-8") as f:
            f.write("".join(r.words + "\n" for r in rows))


def format_plan(plan: StagePlan, show_rows: int = 3) -> str:
    """The plan as lines: durations per split, what is left out of which stage and why, notes."""
    lines = [f"{'durations (s)':14s}{'rows':>7s}{'min':>8s}{'median':>8s}{'max':>8s}{'total':>9s}"]
    for split, d in plan.durations.items():
        lines.append(f"{split:14s}{d['utterances']:>7d}{d['min']:>8.2f}{d['median']:>8.2f}{d['max']:>8.2f}"
                     f"{d['total']:>9.1f}")
    if plan.left_out:
        lines.append("left out before training: " + ", ".join(f"{len(rows)} {reason}" for reason, rows in
                                                               plan.left_out.items()))
        for reason, rows in plan.left_out.items():
            lines += [f"  {reason}: {row}" for row in rows[:show_rows]]
            if len(rows) > show_rows:
                lines.append(f"  {reason}: ... {len(rows) - show_rows} more (plan.json lists them all)")
    else:
        lines.append("left out before training: nothing")
    lines += [f"  {note}" for note in plan.notes]
    return "\n".join(lines)
