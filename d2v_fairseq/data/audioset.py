"""AudioSet's official CSVs -> fairseq manifests and multi-label label files.

Inputs (a local AudioSet copy): the segment lists ``balanced_train_segments.csv``,
``unbalanced_train_segments.csv``, ``eval_segments.csv`` (``# ...`` header lines, then
``YTID, start_seconds, end_seconds, "label,label,..."``), ``class_labels_indices.csv``
(``index,mid,display_name``, quoted names) and the clips as 16 kHz mono audio files named by
YTID (``YTID.wav``, ``YTID.flac``, ... or with YouTube's leading ``Y``), in one folder.

Outputs per split: ``SPLIT.tsv`` (fairseq's audio manifest: the clip folder, then
``file<TAB>samples``) and ``SPLIT.lbl`` (the class indices present in each clip, space
separated, one line per manifest line), plus ``classes.txt`` (display names, index order).
Clips listed in a CSV but missing on disk are reported (count and the first few YTIDs) and
left out, never silently.
"""

import csv
import logging
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..modules.errors import InputError, InputErrors, raise_all
from .manifest import check_audio

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus")


class AudioSetError(InputError):
    """A malformed AudioSet CSV or label file; the message names the file and line."""


class AudioSetErrors(InputErrors, AudioSetError):
    """Every bad clip of an AudioSet split, reported together."""


class Segment(NamedTuple):
    ytid: str
    start: float
    end: float
    labels: Tuple[str, ...]  # class mids, e.g. "/m/09x0r"


def read_class_labels(path: str) -> Tuple[List[str], Dict[str, int]]:
    """(display names in index order, {mid: index}) from ``class_labels_indices.csv``."""
    names: Dict[int, str] = {}
    index_of: Dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:3]] != ["index", "mid", "display_name"]:
            raise AudioSetError(f"{path}:1: expected the header index,mid,display_name, got {header}")
        for line_no, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != 3:
                raise AudioSetError(f"{path}:{line_no}: expected 3 fields (index, mid, display_name), got {len(row)}")
            try:
                index = int(row[0])
            except ValueError:
                raise AudioSetError(f"{path}:{line_no}: index {row[0]!r} is not an integer") from None
            names[index] = row[2].strip()
            index_of[row[1].strip()] = index
    if sorted(names) != list(range(len(names))):
        raise AudioSetError(f"{path}: class indices are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))], index_of


def read_segments(path: str) -> List[Segment]:
    """The segments of an AudioSet segment CSV (``#`` lines skipped; the labels field quoted,
    comma-separated mids)."""
    segments = []
    with open(path, newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.reader(f, skipinitialspace=True), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 4:
                raise AudioSetError(f"{path}:{line_no}: expected 4 fields (YTID, start_seconds, end_seconds, "
                                    f"positive_labels), got {len(row)}")
            try:
                start, end = float(row[1]), float(row[2])
            except ValueError:
                raise AudioSetError(f"{path}:{line_no}: start/end {row[1]!r}, {row[2]!r} are not numbers") from None
            labels = tuple(m.strip() for m in row[3].split(",") if m.strip())
            if not labels:
                raise AudioSetError(f"{path}:{line_no}: {row[0]} has no labels")
            segments.append(Segment(row[0].strip(), start, end, labels))
    return segments


def find_clips(clip_dir: str) -> Dict[str, str]:
    """{YTID: file name} of the audio files in ``clip_dir`` (a leading "Y" is YouTube's prefix)."""
    clips = {}
    for name in os.listdir(clip_dir):
        stem, ext = os.path.splitext(name)
        if ext.lower() in AUDIO_EXTENSIONS:
            clips[stem] = name
            if stem.startswith("Y") and len(stem) == 12:
                clips.setdefault(stem[1:], name)
    return clips


def prepare_split(csv_path: str, clip_dir: str, index_of: Dict[str, int], out_dir: str, split: str,
                  check: bool = True) -> Dict[str, object]:
    """Writes SPLIT.tsv and SPLIT.lbl for the clips of ``csv_path`` found in ``clip_dir``.
    Returns {"written", "missing" (YTIDs listed but not on disk)}."""
    segments = read_segments(csv_path)
    clips = find_clips(clip_dir)
    missing = [s.ytid for s in segments if s.ytid not in clips]
    if missing:
        message = (f"{csv_path}: {len(missing)} of {len(segments)} clips are not in {clip_dir} and are left out "
                   f"(first: {', '.join(missing[:5])})")
        logger.warning(message)
        print("warning: " + message)
    rows, problems = [], []  # every bad clip is named together, before anything is written
    for segment in segments:
        if segment.ytid not in clips:
            continue
        unknown = [m for m in segment.labels if m not in index_of]
        if unknown:
            problems.append(f"{csv_path}: {segment.ytid}: labels {unknown} are not in class_labels_indices.csv")
            continue
        name = clips[segment.ytid]
        try:
            samples = check_audio(os.path.join(clip_dir, name), f"{csv_path} ({segment.ytid})") if check \
                else _frames(os.path.join(clip_dir, name))
        except InputError as error:
            problems.append(str(error))
            continue
        rows.append((name, samples, " ".join(str(index_of[m]) for m in segment.labels)))
    raise_all(problems, AudioSetError, AudioSetErrors,
              f"{csv_path}: {len(problems)} of {len(segments) - len(missing)} clips")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{split}.tsv"), "w", encoding="utf-8") as tsv, \
            open(os.path.join(out_dir, f"{split}.lbl"), "w", encoding="utf-8") as lbl:
        print(os.path.abspath(clip_dir), file=tsv)
        for name, samples, labels in rows:
            print(f"{name}\t{samples}", file=tsv)
            print(labels, file=lbl)
    return {"written": len(rows), "missing": missing}


def _frames(path: str) -> int:
    import soundfile as sf

    return sf.info(path).frames


def write_classes(out_dir: str, names: Sequence[str]) -> None:
    """``classes.txt``: one display name per line, in index order."""
    with open(os.path.join(out_dir, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")


def read_label_file(path: str, num_entries: int, num_classes: int, manifest: Optional[str] = None,
                    allow_empty: bool = False) -> List[List[int]]:
    """Class indices per line of a ``.lbl`` file, checked: as many lines as the manifest has
    clips, every index an integer in [0, num_classes), no empty line unless ``allow_empty``.
    Errors name the file and line."""
    if not os.path.isfile(path):
        raise AudioSetError(f"{path}: label file not found")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) != num_entries:
        raise AudioSetError(f"{path}: {len(lines)} label lines but {num_entries} clips in "
                            f"{manifest or 'the manifest'}: line {min(len(lines), num_entries) + 1} has no partner")
    labels = []
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields and not allow_empty:
            raise AudioSetError(f"{path}:{line_no}: no labels (every clip needs at least one)")
        try:
            indices = [int(v) for v in fields]
        except ValueError:
            raise AudioSetError(f"{path}:{line_no}: labels must be class indices, got {line!r}") from None
        bad = [i for i in indices if not 0 <= i < num_classes]
        if bad:
            raise AudioSetError(f"{path}:{line_no}: class index {bad[0]} outside [0, {num_classes})")
        labels.append(indices)
    return labels



SPLITS = {"balanced_train": "balanced_train_segments.csv", "unbalanced_train": "unbalanced_train_segments.csv",
          "eval": "eval_segments.csv"}


def prepare(audioset_dir: str, out_dir: str, clips: Optional[str] = None,
            splits: Sequence[str] = ("balanced_train", "eval"), check: bool = True) -> Dict[str, Dict]:
    """Writes classes.txt and SPLIT.tsv + .lbl for each split (see the module docstring); returns
    {split: {"written", "missing"}}. ``clips``: the clips' folder (default AUDIOSET_DIR/SPLIT)."""
    names, index_of = read_class_labels(os.path.join(audioset_dir, "class_labels_indices.csv"))
    os.makedirs(out_dir, exist_ok=True)
    write_classes(out_dir, names)
    results = {}
    for split in splits:
        clip_dir = clips or os.path.join(audioset_dir, split)
        results[split] = prepare_split(os.path.join(audioset_dir, SPLITS[split]), clip_dir, index_of, out_dir, split,
                                       check=check)
    return results
