"""fairseq wav2vec manifests: reading with errors that name the file and line, and writing.

A manifest ``SPLIT.tsv`` is a root directory line, then one ``relative/path.wav<TAB>num_samples``
line per utterance. Labels sit beside it: ``SPLIT.wrd`` (words) and ``SPLIT.ltr`` (letters
separated by spaces, ``|`` after each word), one line per utterance, and ``dict.ltr.txt``.
"""

import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import soundfile as sf
from fairseq.data import BaseWrapperDataset

from ..modules.errors import InputError, InputErrors, raise_all

SAMPLE_RATE = 16000

logger = logging.getLogger(__name__)


class ManifestError(InputError):
    """A bad manifest or label line; the message starts with ``file:line:``."""


@dataclass
class ManifestEntry:
    """One utterance of a manifest."""
    path: str  # relative to the manifest's root
    num_samples: int
    line: int  # 1-based line number in the manifest


def audio_problem(path: str, num_samples: Optional[int] = None, sample_rate: int = SAMPLE_RATE,
                  info=None) -> Optional[str]:
    """What makes ``path`` unusable as a manifest entry (missing, unreadable header, rate,
    channels, empty, a length other than ``num_samples``), or None. ``info``: its soundfile
    header when already read (or the error reading it raised)."""
    if info is None:
        info = read_header(path)
    if isinstance(info, str):
        return info
    if info.samplerate != sample_rate:
        return f"{path} has sample rate {info.samplerate} Hz, expected {sample_rate} Hz"
    if info.channels != 1:
        return f"{path} has {info.channels} channels, expected mono"
    if info.frames <= 0:
        return f"{path} is empty (0 samples)"
    if num_samples is not None and info.frames != num_samples:
        return f"{path} has {info.frames} samples but the manifest says {num_samples}"
    return None


def check_audio(path: str, where: str, num_samples: Optional[int] = None, sample_rate: int = SAMPLE_RATE) -> int:
    """Checks that ``path`` is a readable, non-empty, mono audio file at ``sample_rate``
    (and of ``num_samples`` samples, if given). ``where`` ("file:line") prefixes errors.
    Returns the number of samples."""
    info = read_header(path)
    problem = audio_problem(path, num_samples, sample_rate, info)
    if problem is not None:
        raise ManifestError(f"{where}: {problem}")
    return info.frames


def read_header(path: str):
    """soundfile's header of ``path`` (rate, channels, frames), or a string saying why it
    cannot be read."""
    if not os.path.isfile(path):
        return f"audio file not found: {path}"
    try:
        return sf.info(path)
    except Exception as err:  # libsndfile raises its own error types for unreadable files
        return f"cannot read audio file {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"


@dataclass
class Header:
    """The three fields of an audio header the checks read (a cached soundfile ``info``)."""
    samplerate: int
    channels: int
    frames: int


def cache_path() -> str:
    """The header cache: ``$D2V_CACHE`` or ``~/.cache/d2v_fairseq``, file ``audio_headers.sqlite``."""
    root = os.environ.get("D2V_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "d2v_fairseq")
    return os.path.join(root, "audio_headers.sqlite")


def read_headers(paths: Sequence[str], workers: int = 16, cache: Optional[str] = "default") -> List[object]:
    """The header (or the reason it cannot be read) of every path, read by ``workers`` threads
    and cached by (path, size, mtime) in sqlite (``cache``: a file, "default" for
    :func:`cache_path`, None for none): a second check of an unchanged corpus opens no file."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    stats = []
    for path in paths:
        try:
            st = os.stat(path)
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append(None)
    db = None
    known = {}
    if cache is not None:
        cache = cache_path() if cache == "default" else cache
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            db = sqlite3.connect(cache, timeout=60)
            db.execute("CREATE TABLE IF NOT EXISTS headers (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, "
                       "rate INTEGER, channels INTEGER, frames INTEGER)")
            wanted = [os.path.abspath(p) for p in paths]
            for i in range(0, len(wanted), 500):  # sqlite's limit on bound parameters
                chunk = wanted[i:i + 500]
                rows = db.execute(f"SELECT * FROM headers WHERE path IN ({','.join('?' * len(chunk))})", chunk)
                known.update({row[0]: row[1:] for row in rows})
        except sqlite3.Error:  # an unwritable or damaged cache only costs time
            db = None
    results: List[object] = [None] * len(paths)
    todo = []
    for i, (path, stat) in enumerate(zip(paths, stats, strict=True)):
        row = known.get(os.path.abspath(path))
        if stat is not None and row is not None and tuple(row[:2]) == stat:
            results[i] = Header(*row[2:])
        else:
            todo.append(i)
    with ThreadPoolExecutor(max(1, workers)) as pool:  # libsndfile reads headers without the GIL
        for i, info in zip(todo, pool.map(read_header, [paths[i] for i in todo]), strict=True):
            results[i] = info if isinstance(info, str) else Header(info.samplerate, info.channels, info.frames)
    if db is not None:
        fresh = [(os.path.abspath(paths[i]), *stats[i], results[i].samplerate, results[i].channels, results[i].frames)
                 for i in todo if stats[i] is not None and isinstance(results[i], Header)]
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO headers VALUES (?, ?, ?, ?, ?, ?)", fresh)
        except sqlite3.Error:
            pass
        db.close()
    return results


def read_lines(path: str) -> List[str]:
    """The lines of a text file, without their newlines (a final newline adds no line)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


SKIP_HINT = "task.skip_bad=true leaves them out and lists them; d2v prepare speech --skip-bad for a corpus"


class ManifestErrors(InputErrors, ManifestError):
    """Every bad line of a manifest, reported together (see :class:`InputErrors`)."""


def check_manifest(
    manifest: str, check_files: bool = True, sample_rate: int = SAMPLE_RATE, workers: int = 16
) -> Tuple[str, List[ManifestEntry], List[Tuple[int, str]], Set[int]]:
    """Parses ``manifest`` and, with ``check_files``, checks every audio file's header (in
    parallel, cached). Returns (root, good entries, [(line, "manifest:line: reason"), ...] of
    the bad ones, the lines among them that fairseq's reader could not even parse). Raises ManifestError when the manifest itself is missing or has no root line."""
    if not os.path.isfile(manifest):
        raise ManifestError(f"{manifest}: manifest not found")
    lines = read_lines(manifest)
    if not lines or not lines[0].strip():
        raise ManifestError(f"{manifest}:1: expected the root directory on the first line")
    root = lines[0].strip()
    parsed: List[ManifestEntry] = []
    bad: List[Tuple[int, str]] = []
    malformed = set()  # lines fairseq's reader could not even parse
    for lineno, line in enumerate(lines[1:], start=2):
        where = f"{manifest}:{lineno}"
        fields = line.split("\t")
        if len(fields) != 2:
            bad.append((lineno, f"{where}: expected 2 tab-separated fields (relative path, number of samples), "
                                f"got {len(fields)}: {line!r}"))
            malformed.add(lineno)
            continue
        rel, count = fields[0].strip(), fields[1].strip()
        try:
            num_samples = int(count)
        except ValueError:
            bad.append((lineno, f"{where}: number of samples {count!r} is not an integer"))
            malformed.add(lineno)
            continue
        if num_samples <= 0:
            bad.append((lineno, f"{where}: {rel} has {num_samples} samples"))
            continue
        parsed.append(ManifestEntry(rel, num_samples, lineno))
    entries = parsed
    if check_files:
        headers = read_headers([os.path.join(root, e.path) for e in parsed], workers)
        entries = []
        for entry, info in zip(parsed, headers, strict=True):
            problem = audio_problem(os.path.join(root, entry.path), entry.num_samples, sample_rate, info)
            if problem is None:
                entries.append(entry)
            else:
                bad.append((entry.line, f"{manifest}:{entry.line}: {problem}"))
    bad.sort()
    return root, entries, bad, malformed


def read_manifest(
    manifest: str, check_files: bool = True, sample_rate: int = SAMPLE_RATE
) -> Tuple[str, List[ManifestEntry]]:
    """Parses ``manifest`` and, with ``check_files``, checks every audio file's header.
    Returns (root, entries). Raises ManifestError naming the manifest, line and file: one bad
    line as one line, several as :class:`ManifestErrors` listing them all."""
    root, entries, bad, _ = check_manifest(manifest, check_files, sample_rate)
    raise_bad(manifest, bad, len(entries) + len(bad))
    if not entries:
        raise ManifestError(f"{manifest}: no utterances after the root line")
    return root, entries


@dataclass
class CheckedSplit:
    """A checked manifest: every item's name and the items left out (0-based, manifest order)."""
    manifest: str
    names: List[str]  # "manifest:line (relative path)" of every item
    left_out: Set[int]

    def lenient(self, dataset) -> "LenientAudio":
        """fairseq's FileAudioDataset of this manifest wrapped as :class:`LenientAudio`: it drops
        lines under ``min_sample_size`` itself, so its index j is the j-th item it kept."""
        skipped = getattr(dataset, "skipped_indices", set())
        kept = [i for i in range(len(self.names)) if i not in skipped]
        return LenientAudio(dataset, [j for j, i in enumerate(kept) if i in self.left_out],
                            [self.names[i] for i in kept])


def check_split(manifest: str, check_files: bool, sample_rate: int = SAMPLE_RATE,
                skip_bad: bool = False, bad_list: Optional[str] = None) -> CheckedSplit:
    """Checks ``manifest`` for training: every bad line at once (ManifestError), or with
    ``skip_bad`` the recordings left out, listed in ``bad_list`` (default: SPLIT.bad.tsv in the
    working directory) and counted in a WARNING. A line fairseq cannot parse always stops."""
    root, entries, bad, malformed = check_manifest(manifest, check_files, sample_rate)
    total = len(entries) + len(bad)
    if bad and (not skip_bad or malformed):
        raise_bad(manifest, [b for b in bad if not skip_bad or b[0] in malformed], total)
    if not entries:
        raise ManifestError(f"{manifest}: no usable utterances after the root line")
    lines = read_lines(manifest)[1:]
    names = [f"{manifest}:{i + 2} ({line.split(chr(9))[0]})" for i, line in enumerate(lines)]
    if bad:
        bad_list = bad_list or os.path.abspath(os.path.basename(manifest)[:-len(".tsv")] + ".bad.tsv")
        with open(bad_list, "w", encoding="utf-8") as f:
            f.writelines(f"{problem}\n" for _, problem in bad)
        logger.warning(f"{manifest}: {len(bad)} of {total} recordings left out (task.skip_bad): listed in {bad_list}")
    return CheckedSplit(manifest, names, {line - 2 for line, _ in bad})


def decode_problem(path: str) -> Optional[str]:
    """Why the body of audio file ``path`` does not decode (soundfile reads it whole), or None."""
    try:
        with sf.SoundFile(path) as f:
            for _ in f.blocks(blocksize=2 ** 18, dtype="float32"):
                pass
    except Exception as err:  # libsndfile's own error types, and OSError
        return f"{path} does not decode: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    return None


def verify_manifest(manifest: str, sample_rate: int = SAMPLE_RATE, workers: int = 8) -> int:
    """Checks every header of ``manifest`` and decodes every recording whole; raises
    ManifestError(s) naming every bad line at once. Returns the number of recordings."""
    from concurrent.futures import ThreadPoolExecutor

    root, entries, bad, _ = check_manifest(manifest, True, sample_rate)
    total = len(entries) + len(bad)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        decoded = pool.map(decode_problem, [os.path.join(root, e.path) for e in entries])
        for entry, problem in zip(entries, decoded, strict=True):
            if problem is not None:
                bad.append((entry.line, f"{manifest}:{entry.line}: {problem}"))
    bad.sort()
    raise_bad(manifest, bad, total)
    return total


def raise_bad(manifest: str, bad: Sequence[Tuple[int, str]], total: int) -> None:
    """Raises the error for the bad lines of ``manifest`` (none: returns)."""
    raise_all([p for _, p in bad], ManifestError, ManifestErrors, f"{manifest}: {len(bad)} of {total} lines",
              SKIP_HINT)


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


UNDECODABLE: List[str] = []  # "path: reason" of every recording that failed to decode in this process


class LenientAudio(BaseWrapperDataset):
    """fairseq's audio dataset (indexed like its manifest) such that one recording never stops a
    run: the items ``left_out`` (bad headers, with ``task.skip_bad``) and any recording whose
    body fails to decode when a batch reads it come as ``source=None``, which fairseq's collaters
    drop; a WARNING names each failure once, and :data:`UNDECODABLE` keeps every one for the
    run's end. ``names[i]`` names item i in warnings."""

    def __init__(self, dataset, left_out: Sequence[int] = (), names: Optional[Sequence[str]] = None):
        super().__init__(dataset)
        self.left_out = set(left_out)
        self.names = names
        if hasattr(dataset, "crop_to_max_size"):
            dataset.crop_to_max_size = crop_to_max_size

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        """fairseq's batches, plus the items its ``batch_by_size`` leaves out: with
        ``required_batch_size_multiple`` > 1 (fairseq's default 8, fairseq-generate's too) it can
        drop the last, smaller batch, and those recordings would be neither trained on nor
        decoded. They come as batches of their own, within the same limits."""
        from fairseq.data import data_utils

        batches = list(self.dataset.batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple))
        batched = set(int(i) for batch in batches for i in batch)
        missing = np.array([i for i in indices if int(i) not in batched], dtype=np.int64)
        if len(missing):
            batches += list(data_utils.batch_by_size(missing, self.num_tokens, max_tokens=max_tokens,
                                                     max_sentences=max_sentences, required_batch_size_multiple=1))
        return batches

    def __getitem__(self, index):
        if index in self.left_out:
            return {"id": index, "source": None}
        try:
            return self.dataset[index]
        except Exception as error:  # any decoder error of any format: the batch goes on without it
            name = self.names[index] if self.names is not None else f"item {index}"
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            logger.warning(f"{name}: cannot be decoded, left out of its batch: {reason}")
            UNDECODABLE.append(f"{name}: {reason}")
            self.left_out.add(index)
            return {"id": index, "source": None}


def crop_to_max_size(t, target_size: int, dim: int = 0):
    """fairseq's ``RawAudioDataset.crop_to_max_size`` (a random window of ``target_size`` along
    ``dim``, its start drawn from numpy's global RNG as fairseq draws it), without indexing by a
    list of slices: torch warns that it will read such a list as a tensor index."""
    size = t.size(dim)
    diff = size - target_size
    if diff <= 0:
        return t
    start = np.random.randint(0, diff + 1)
    return t.narrow(dim, start, target_size)


_report_registered = False


def report_at_exit() -> None:
    """Lists, when the process ends, every recording that failed to decode (once per process)."""
    global _report_registered
    if not _report_registered:
        import atexit

        atexit.register(report_undecodable)
        _report_registered = True


def report_undecodable() -> None:
    """Logs every recording that failed to decode in this process (at the run's end)."""
    if UNDECODABLE:
        logger.warning(f"{len(UNDECODABLE)} recording(s) could not be decoded and were left out of their batches "
                       "(`d2v prepare verify MANIFEST` decodes every recording):\n  " + "\n  ".join(UNDECODABLE))
