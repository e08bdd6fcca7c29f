"""fairseq wav2vec manifests: reading with errors that name the file and line, and writing.

A manifest ``SPLIT.tsv`` is a root directory line, then one ``relative/path.wav<TAB>num_samples``
line per utterance. Labels sit beside it: ``SPLIT.wrd`` (words) and ``SPLIT.ltr`` (letters
separated by spaces, ``|`` after each word), one line per utterance, and ``dict.ltr.txt``.
"""

import os
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import soundfile as sf

from ..modules.errors import InputError

SAMPLE_RATE = 16000


class ManifestError(InputError):
    """A bad manifest or label line; the message starts with ``file:line:``."""


@dataclass
class ManifestEntry:
    """One utterance of a manifest."""
    path: str  # relative to the manifest's root
    num_samples: int
    line: int  # 1-based line number in the manifest


def check_audio(path: str, where: str, num_samples: Optional[int] = None, sample_rate: int = SAMPLE_RATE) -> int:
    """Checks that ``path`` is a readable, non-empty, mono audio file at ``sample_rate``
    (and of ``num_samples`` samples, if given). ``where`` ("file:line") prefixes errors.
    Returns the number of samples."""
    if not os.path.isfile(path):
        raise ManifestError(f"{where}: audio file not found: {path}")
    try:
        info = sf.info(path)
    except Exception as err:  # libsndfile raises its own error types for unreadable files
        raise ManifestError(f"{where}: cannot read audio file {path}: {err}") from None
    if info.samplerate != sample_rate:
        raise ManifestError(f"{where}: {path} has sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    if info.channels != 1:
        raise ManifestError(f"{where}: {path} has {info.channels} channels, expected mono")
    if info.frames <= 0:
        raise ManifestError(f"{where}: {path} is empty (0 samples)")
    if num_samples is not None and info.frames != num_samples:
        raise ManifestError(f"{where}: {path} has {info.frames} samples but the manifest says {num_samples}")
    return info.frames


def read_lines(path: str) -> List[str]:
    """The lines of a text file, without their newlines (a final newline adds no line)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_manifest(
    manifest: str, check_files: bool = True, sample_rate: int = SAMPLE_RATE
) -> Tuple[str, List[ManifestEntry]]:
    """Parses ``manifest`` and, with ``check_files``, checks every audio file's header.
    Returns (root, entries). Raises ManifestError naming the manifest, line and file."""
    if not os.path.isfile(manifest):
        raise ManifestError(f"{manifest}: manifest not found")
    lines = read_lines(manifest)
    if not lines or not lines[0].strip():
        raise ManifestError(f"{manifest}:1: expected the root directory on the first line")
    root = lines[0].strip()
    entries: List[ManifestEntry] = []
    for lineno, line in enumerate(lines[1:], start=2):
        where = f"{manifest}:{lineno}"
        fields = line.split("\t")
        if len(fields) != 2:
            raise ManifestError(
                f"{where}: expected 2 tab-separated fields (relative path, number of samples), "
                f"got {len(fields)}: {line!r}"
            )
        rel, count = fields[0].strip(), fields[1].strip()
        try:
            num_samples = int(count)
        except ValueError:
            raise ManifestError(f"{where}: number of samples {count!r} is not an integer") from None
        if num_samples <= 0:
            raise ManifestError(f"{where}: {rel} has {num_samples} samples")
        if check_files:
            check_audio(os.path.join(root, rel), where, num_samples, sample_rate)
        entries.append(ManifestEntry(rel, num_samples, lineno))
    if not entries:
        raise ManifestError(f"{manifest}: no utterances after the root line")
    return root, entries


def letters(words: str) -> str:
    """'HELLO WORLD' -> 'H E L L O | W O R L D |' (fairseq's letter target format)."""
    return " ".join(" ".join(word) + " |" for word in words.split())


def write_split(out_dir: str, split: str, root: str, items: Sequence[Tuple[str, int, str]]) -> None:
    """Writes SPLIT.tsv / .wrd / .ltr for items (relative path, num_samples, transcript)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{split}.tsv"), "w", encoding="utf-8") as tsv, open(
        os.path.join(out_dir, f"{split}.wrd"), "w", encoding="utf-8"
    ) as wrd, open(os.path.join(out_dir, f"{split}.ltr"), "w", encoding="utf-8") as ltr:
        print(os.path.abspath(root), file=tsv)
        for rel, num_samples, text in items:
            print(f"{rel}\t{num_samples}", file=tsv)
            print(text, file=wrd)
            print(letters(text), file=ltr)


def write_letter_dict(out_dir: str, transcripts: Iterable[str]) -> None:
    """Writes ``dict.ltr.txt`` (symbol and count per line, most frequent first)."""
    counts: Counter = Counter()
    for text in transcripts:
        counts.update(letters(text).split())
    with open(os.path.join(out_dir, "dict.ltr.txt"), "w", encoding="utf-8") as f:
        for symbol, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{symbol} {count}", file=f)
