"""Your own speech corpus -> everything data2vec pre-training, CTC fine-tuning and decoding read.

Input, one of:

* a corpus table, TSV (``.tsv``) or CSV (``.csv``) with a header: a path column and a transcript
  column (default ``path`` and ``text``; Common Voice's table: ``--text-column sentence``),
  paths relative to the table, other columns kept (a split column, a speaker column ...);
* a Kaldi data directory: ``wav.scp`` (utterance id, file path; a piped command is refused),
  ``text`` (utterance id, transcript), optional ``utt2spk`` (the speaker becomes the group);
* a folder of audio files with same-named ``.txt`` transcripts (files without one: unlabeled).

Without transcripts the result is a pre-training corpus only.

Output in OUT_DIR: ``audio/`` (each recording once, 16 kHz mono FLAC, resampled with soxr; a
re-run converts nothing it converted before), fairseq's manifests ``{train,valid,test}.tsv`` with
``.wrd`` and ``.ltr`` labels, ``dict.ltr.txt`` from the training split, ``pretrain.tsv`` (the
training split's audio plus every unlabeled recording: what pre-training reads), a word n-gram
LM and lexicon from the training transcripts (``lm/``), and ``corpus.json`` (the summary).

Splits are given (a split column: train, valid, test) or made: whole groups (``group_column``,
e.g. speaker or chapter) go to one split, ``valid_share`` / ``test_share`` of the groups each,
the same for the same seed.

The summary names the Unicode script of the letters (Latin, Cyrillic, ...) and, where there is
more than one, how many rows hold each and the first rows of the rarer ones; ``keep_scripts``
keeps only rows written entirely in the named scripts (the others are left out and counted).

Bad input (a missing, unreadable, empty or zero-length recording; an empty transcript; a
letter in valid or test never seen in training; a duplicate path; a row with the wrong number
of columns) stops the import with the file and line, or, with ``skip_bad``, is left out and
counted per reason. Nothing is dropped silently: the summary counts what was kept and what was
left out.
"""

import csv
import hashlib
import json
import logging
import os
import re
import unicodedata
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from ..modules.errors import InputError, InputErrors, raise_all
from ..modules.seeding import seeded_rng
from .audio import wav_shortfall
from .manifest import SAMPLE_RATE, letters

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "dev": "valid",
               "test": "test", "eval": "test"}
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au")


class CorpusError(InputError):
    """A bad corpus row or file; the message names the file and line."""


class CorpusErrors(InputErrors, CorpusError):
    """Every bad row of a corpus, reported together."""


@dataclass
class Utterance:
    """One recording of the corpus and what the input says of it."""
    source: str  # absolute path of the recording
    where: str  # "file:line" of the row that named it
    text: Optional[str] = None  # the transcript as given; None: unlabeled
    split: Optional[str] = None
    group: Optional[str] = None
    extra: Dict[str, str] = field(default_factory=dict)
    # filled by the import
    audio: str = ""  # path of the converted FLAC, relative to OUT_DIR/audio
    frames: int = 0
    words: str = ""  # the normalized transcript


@dataclass(frozen=True)
class TextOptions:
    """How transcripts are normalized: ``case`` upper, lower or keep; punctuation and digits
    kept or dropped (dropped characters become spaces)."""
    case: str = "upper"
    keep_punctuation: bool = False
    keep_digits: bool = False


# --- reading the inputs ---------------------------------------------------------------------
def read_table(path: str, path_column: str = "path", text_column: Optional[str] = "text") -> Tuple[List[Utterance], List[Tuple[str, str]]]:
    """Rows of a TSV or CSV corpus table -> (utterances, bad rows as (where, reason)).

    Columns other than path and transcript are kept in ``extra``; a missing transcript column
    means an unlabeled corpus. A row with the wrong number of columns is a bad row."""
    if not os.path.isfile(path):
        raise CorpusError("no such corpus table", path=path)
    delimiter = "," if path.lower().endswith(".csv") else "\t"
    root = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE))
    if not rows:
        raise CorpusError("empty corpus table (expected a header line)", path=path)
    header = [h.strip() for h in rows[0]]
    if path_column not in header:
        raise CorpusError(f"no {path_column!r} column in the header {header}; name the audio path column "
                          "with --path-column", path=path, line=1)
    if text_column is not None and text_column not in header:
        logger.warning(f"{path}: no {text_column!r} column: an unlabeled corpus (pre-training only)")
        text_column = None
    utterances, bad = [], []
    for number, row in enumerate(rows[1:], start=2):
        where = f"{path}:{number}"
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) != len(header):
            bad.append((where, "wrong number of columns", f"{len(row)} columns, the header has {len(header)}"))
            continue
        values = dict(zip(header, (cell.strip() for cell in row), strict=False))
        source = values.pop(path_column)
        text = values.pop(text_column) if text_column else None
        utterances.append(Utterance(os.path.normpath(os.path.join(root, source)), where, text, extra=values))
    return utterances, bad


def read_kaldi(data_dir: str) -> Tuple[List[Utterance], List[Tuple[str, str, str]]]:
    """A Kaldi data directory (``wav.scp``, ``text``, optional ``utt2spk``) -> (utterances, bad rows).
    The speaker of ``utt2spk`` becomes the utterance's group."""
    scp = os.path.join(data_dir, "wav.scp")
    if not os.path.isfile(scp):
        raise CorpusError("no wav.scp (a Kaldi data directory has wav.scp and text)", path=scp)
    texts = _kaldi_map(os.path.join(data_dir, "text"), allow_empty_value=True)
    speakers = _kaldi_map(os.path.join(data_dir, "utt2spk"))
    utterances, bad = [], []
    with open(scp, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{scp}:{number}"
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2:
                bad.append((where, "wrong number of columns", "expected 'UTTERANCE-ID PATH'"))
                continue
            utt, source = parts
            if source.endswith("|") or source.startswith("|"):
                raise CorpusError(f"{utt}: a piped command ({source!r}) is not supported; convert the audio to "
                                  "files first", path=scp, line=number)
            source = source if os.path.isabs(source) else os.path.join(data_dir, source)
            text = texts.get(utt, (None, None))[0] if texts else None
            utterances.append(Utterance(os.path.normpath(source), where, text, group=speakers.get(utt, (None,))[0],
                                        extra={"utt": utt}))
    return utterances, bad


def _kaldi_map(path: str, allow_empty_value: bool = False) -> Dict[str, Tuple[str, str]]:
    """utterance id -> (value, "file:line") of a Kaldi two-column file; {} if it is absent."""
    if not os.path.isfile(path):
        return {}
    mapping = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split(maxsplit=1)
            if not parts:
                continue
            if len(parts) == 1 and not allow_empty_value:
                raise CorpusError("expected 'UTTERANCE-ID VALUE'", path=path, line=number)
            mapping[parts[0]] = (parts[1] if len(parts) > 1 else "", f"{path}:{number}")
    return mapping


def read_folder(folder: str) -> Tuple[List[Utterance], List[Tuple[str, str, str]]]:
    """Audio files under ``folder`` (recursively) with same-named ``.txt`` transcripts (files
    without one are unlabeled) -> (utterances, bad rows); the subfolder is the group."""
    if not os.path.isdir(folder):
        raise CorpusError("no such folder", path=folder)
    utterances = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS:
                continue
            source = os.path.join(root, name)
            transcript = os.path.join(root, stem + ".txt")
            text = None
            if os.path.isfile(transcript):
                with open(transcript, encoding="utf-8") as f:
                    text = " ".join(f.read().split())
            utterances.append(Utterance(os.path.abspath(source), f"{transcript if text is not None else source}:1",
                                        text, group=os.path.relpath(root, folder)))
    if not utterances:
        raise CorpusError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)})", path=folder)
    return utterances, []


def read_corpus(source: str, path_column: str = "path", text_column: Optional[str] = "text"):
    """Any of the three inputs (see the module docstring) -> (utterances, bad rows)."""
    if os.path.isdir(source):
        if os.path.isfile(os.path.join(source, "wav.scp")):
            return read_kaldi(source)
        return read_folder(source)
    return read_table(source, path_column, text_column)


# --- text -------------------------------------------------------------------------------------
def normalize_text(text: str, options: TextOptions = TextOptions()) -> str:
    """A transcript as the letter targets spell it: letters of any script (diacritics and
    combining marks kept), apostrophes inside words, digits and punctuation kept or dropped,
    case changed, whitespace collapsed. ``|`` (the word boundary symbol) never survives."""
    out = []
    text = unicodedata.normalize("NFC", text)
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category[0] in "LM":
            out.append(ch)
        elif ch in "'\u2019" and 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha():
            out.append("'")
        elif category == "Nd" and options.keep_digits:
            out.append(ch)
        elif category[0] in "PS" and options.keep_punctuation and ch != "|":
            out.append(ch)
        else:
            out.append(" ")
    words = "".join(out).split()
    joined = " ".join(words)
    if options.case == "upper":
        return joined.upper()
    if options.case == "lower":
        return joined.lower()
    return joined


# --- audio ------------------------------------------------------------------------------------
def converted_name(source: str, root: str) -> str:
    """A stable FLAC name for ``source``: its path under ``root`` (folders joined by ``__``) plus
    a short hash of the full path, so that two files of one name never collide."""
    rel = os.path.relpath(source, root) if source.startswith(root) else os.path.basename(source)
    stem = re.sub(r"[^\w.-]+", "_", os.path.splitext(rel)[0].replace(os.sep, "__"))[-80:]
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    return f"{stem}-{digest}.flac"


def convert_audio(source: str, target: str, sample_rate: int = SAMPLE_RATE) -> Tuple[int, Optional[str], Optional[str]]:
    """Writes ``source`` (any format soundfile reads, any rate and channels) as ``sample_rate``
    mono 16-bit FLAC ``target`` unless it is there already and newer. Returns (frames, bad
    reason, detail); frames 0 and a reason when the recording cannot be used."""
    if not os.path.isfile(source):
        return 0, "missing audio", f"no such file {source}"
    if os.path.isfile(target) and os.path.getmtime(target) >= os.path.getmtime(source):
        try:
            return sf.info(target).frames, None, None
        except RuntimeError:
            pass  # a broken earlier conversion: convert again
    try:
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as error:
        return 0, "unreadable audio", f"{source}: {str(error).splitlines()[0] if str(error) else error}"
    if audio.shape[0] == 0:
        return 0, "empty audio", f"{source} has 0 samples"
    shortfall = wav_shortfall(source)
    if shortfall:
        return 0, "cut-short audio", f"{source}: {shortfall}"
    audio = audio.mean(axis=1)  # (S, channels) -> (S,)
    if rate != sample_rate:
        import soxr

        audio = soxr.resample(audio, rate, sample_rate, quality="HQ").astype(np.float32)
    if audio.shape[0] == 0 or not np.any(audio):
        return 0, "empty audio", f"{source} is silent or shorter than one sample at {sample_rate} Hz"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".tmp.flac"
    sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
    os.replace(tmp, target)
    return audio.shape[0], None, None


def _convert(args):
    return convert_audio(*args)


# --- the import -----------------------------------------------------------------------------
@dataclass
class ImportResult:
    """What the import wrote and left out."""
    out_dir: str
    splits: Dict[str, List[Utterance]]
    unlabeled: List[Utterance]
    left_out: Dict[str, List[str]]  # reason -> ["file:line: detail", ...]
    letters: List[str]
    converted: int  # recordings converted by this run (0 on a re-run)
    scripts: Dict[str, Dict] = field(default_factory=dict)  # script -> {"letters", "rows", "examples"}

    def summary(self) -> Dict:
        """Counts, hours, groups per split, the letter inventory and what was left out."""
        def stats(items):
            seconds = sorted(u.frames / SAMPLE_RATE for u in items) or [0.0]
            return {"utterances": len(items), "hours": round(sum(u.frames for u in items) / SAMPLE_RATE / 3600, 4),
                    "groups": len({u.group for u in items if u.group is not None}),
                    "seconds": {"min": round(seconds[0], 2), "median": round(float(np.median(seconds)), 2),
                                "max": round(seconds[-1], 2)}}
        return {"out_dir": self.out_dir, "splits": {s: stats(items) for s, items in self.splits.items()},
                "unlabeled": stats(self.unlabeled), "letters": self.letters, "scripts": self.scripts,
                "converted": self.converted,
                "left_out": {reason: len(rows) for reason, rows in self.left_out.items()},
                "left_out_rows": self.left_out}


def assign_splits(utterances: List[Utterance], valid_share: float, test_share: float, seed: int) -> None:
    """Gives each utterance without a split one, by whole groups (an utterance without a group
    is a group of its own): ``test_share`` and ``valid_share`` of the groups, the rest train."""
    pending = [u for u in utterances if u.split is None]
    groups = sorted({u.group if u.group is not None else u.source for u in pending})
    if not groups:
        return
    order = [groups[i] for i in seeded_rng(seed, "split").permutation(len(groups))]
    n_test = int(round(test_share * len(groups))) if test_share > 0 else 0
    n_valid = int(round(valid_share * len(groups))) if valid_share > 0 else 0
    if len(groups) >= 3:
        n_test, n_valid = max(n_test, 1 if test_share > 0 else 0), max(n_valid, 1 if valid_share > 0 else 0)
    split_of = {g: "test" for g in order[:n_test]}
    split_of.update({g: "valid" for g in order[n_test:n_test + n_valid]})
    for u in pending:
        u.split = split_of.get(u.group if u.group is not None else u.source, "train")


def row_order(where: str) -> Tuple[str, int]:
    """A sort key of "file:line" (a ``where`` without a line number sorts first in its file)."""
    path, _, line = where.rpartition(":")
    return (path, int(line)) if line.isdigit() else (where, 0)


def import_corpus(
    source: str,
    out_dir: str,
    path_column: str = "path",
    text_column: Optional[str] = "text",
    split_column: Optional[str] = None,
    group_column: Optional[str] = None,
    valid_share: float = 0.1,
    test_share: float = 0.1,
    seed: int = 1,
    text: TextOptions = TextOptions(),
    skip_bad: bool = False,
    lm_order: int = 3,
    workers: int = 0,
    progress: bool = True,
    keep_scripts: Optional[Sequence[str]] = None,
) -> ImportResult:
    """Imports a corpus (see the module docstring); returns what it wrote and left out."""
    out_dir = os.path.abspath(out_dir)
    utterances, bad = read_corpus(source, path_column, text_column)
    left_out: Dict[str, List[str]] = defaultdict(list)

    problems: List[Tuple[str, str]] = []  # (where, why) of every bad row, reported together unless skip_bad

    def reject(where: str, reason: str, detail: str) -> None:
        problems.append((where, f"{where}: {reason}: {detail}"))
        left_out[reason].append(f"{where}: {detail}")

    for where, reason, detail in bad:
        reject(where, reason, detail)
    for column, attribute in ((split_column, "split"), (group_column, "group")):
        if column is None:
            continue
        for u in utterances:
            if column not in u.extra:
                raise CorpusError(f"no {column!r} column", path=u.where.rsplit(":", 1)[0], line=1)
            setattr(u, attribute, u.extra[column])
    if split_column:
        for u in utterances:
            if u.split.lower() not in SPLIT_NAMES:
                raise CorpusError(f"split {u.split!r}: expected one of {sorted(set(SPLIT_NAMES))}",
                                  path=u.where.rsplit(":", 1)[0], line=int(u.where.rsplit(":", 1)[1]))
            u.split = SPLIT_NAMES[u.split.lower()]

    # duplicates: the first row that names a recording keeps it
    first: Dict[str, str] = {}
    unique = []
    for u in utterances:
        if u.source in first:
            reject(u.where, "duplicate path", f"{u.source} is also on {first[u.source]}")
            continue
        first[u.source] = u.where
        unique.append(u)

    # transcripts
    kept = []
    for u in unique:
        if u.text is not None:
            u.words = normalize_text(u.text, text)
            if not u.words:
                reject(u.where, "empty transcript", f"{u.text!r} has no letters after normalization")
                continue
        kept.append(u)
    scripts = script_inventory(kept)
    if keep_scripts:
        wanted = {name.upper() for name in keep_scripts}
        unknown = wanted - set(scripts)
        if unknown:
            raise CorpusError(f"--keep-script {', '.join(sorted(unknown))}: no transcript holds such letters "
                              f"(the corpus's scripts: {', '.join(scripts) or 'none'})", path=source)
        within = []
        for u in kept:
            other = sorted(set(row_scripts(u.words)) - wanted)
            if u.text is not None and other:
                # an explicit choice, not bad input: left out and counted whatever skip_bad says
                left_out["other script"].append(f"{u.where}: {'/'.join(other)} letters in {u.words!r}")
                continue
            within.append(u)
        kept = within

    # audio, converted in parallel
    audio_root = os.path.join(out_dir, "audio")
    common = os.path.commonpath([u.source for u in kept]) if kept else ""
    common = common if os.path.isdir(common) else os.path.dirname(common)
    jobs = []
    for u in kept:
        u.audio = converted_name(u.source, common)
        target = os.path.join(audio_root, u.audio)
        fresh = os.path.isfile(target) and os.path.isfile(u.source) and os.path.getmtime(target) >= os.path.getmtime(u.source)
        jobs.append((u.source, target, SAMPLE_RATE, fresh))
    converted = sum(1 for job in jobs if not job[3])
    results = _run_conversions([job[:3] for job in jobs], workers, progress)
    usable = []
    for u, (frames, reason, detail) in zip(kept, results, strict=True):
        if reason is not None:
            reject(u.where, reason, detail)
            continue
        u.frames = frames
        usable.append(u)

    labeled = [u for u in usable if u.text is not None]
    unlabeled = [u for u in usable if u.text is None]
    assign_splits(labeled, valid_share, test_share, seed)
    train_letters = Counter(ch for u in labeled if u.split == "train" for ch in u.words.replace(" ", ""))
    splits: Dict[str, List[Utterance]] = {s: [] for s in SPLITS}
    for u in labeled:
        unseen = sorted(set(u.words.replace(" ", "")) - set(train_letters))
        if u.split != "train" and unseen:
            reject(u.where, "letter not in training", f"{' '.join(unseen)} in {u.words!r} never occurs in the "
                   "training transcripts")
            continue
        splits[u.split].append(u)
    if problems and not skip_bad:
        problems.sort(key=lambda p: row_order(p[0]))
        raise_all([p for _, p in problems], CorpusError, CorpusErrors,
                  f"{source}: {len(problems)} of {len(utterances) + len(bad)} rows",
                  "--skip-bad leaves them out, counts them and lists them in left_out.tsv",
                  one_hint="--skip-bad leaves such rows out and counts them")
    if labeled and not splits["train"]:
        raise CorpusError("no training utterances left", path=source)
    result = ImportResult(out_dir, splits if labeled else {}, unlabeled, dict(left_out),
                          [ch for ch, _ in train_letters.most_common()], converted, scripts)
    write_outputs(result, lm_order)
    return result


def letter_script(ch: str) -> str:
    """The Unicode script of a letter as its character name begins (LATIN, CYRILLIC, GREEK,
    ARABIC, CJK, HANGUL ...); COMMON for what is not a letter (apostrophes, digits)."""
    if not unicodedata.category(ch).startswith("L"):
        return "COMMON"
    return unicodedata.name(ch, "UNKNOWN").split(" ")[0]


def row_scripts(words: str) -> List[str]:
    """The scripts of the letters of ``words`` (COMMON left out), in order of first appearance."""
    return list(dict.fromkeys(s for s in map(letter_script, words.replace(" ", "")) if s != "COMMON"))


def script_inventory(utterances: Sequence[Utterance], examples: int = 3) -> Dict[str, Dict]:
    """script -> {"letters": its letters, "rows": rows holding one (a row may count for several),
    "examples": the first ``examples`` rows} over the labeled ``utterances``, most rows first."""
    found: Dict[str, Dict] = {}
    for u in utterances:
        if u.text is None:
            continue
        for script in row_scripts(u.words):
            entry = found.setdefault(script, {"letters": set(), "rows": 0, "examples": []})
            entry["rows"] += 1
            if len(entry["examples"]) < examples:
                entry["examples"].append(u.where)
        for ch in set(u.words.replace(" ", "")):
            script = letter_script(ch)
            if script in found:
                found[script]["letters"].add(ch)
    ordered = sorted(found.items(), key=lambda item: -item[1]["rows"])
    return {name: {**entry, "letters": "".join(sorted(entry["letters"]))} for name, entry in ordered}


def _run_conversions(jobs: Sequence[tuple], workers: int, progress: bool) -> List[tuple]:
    """convert_audio over ``jobs`` in ``workers`` processes (0: one per core), with a progress bar."""
    from tqdm import tqdm

    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    # disable=None: a bar on a terminal only, not in logs
    bar = tqdm(total=len(jobs), desc="audio -> 16 kHz mono FLAC", unit="file", disable=None if progress else True,
               leave=False)
    results = []
    if workers == 1 or len(jobs) < 8:
        for job in jobs:
            results.append(convert_audio(*job))
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for result in pool.map(_convert, jobs, chunksize=8):
                results.append(result)
                bar.update()
    bar.close()
    return results


def write_outputs(result: ImportResult, lm_order: int = 3) -> None:
    """The manifests, labels, letter dictionary, LM, lexicon, ``corpus.json`` and the rows left
    out (``left_out.tsv``: reason, file:line and why) of ``result``."""
    from ..decoding.lm import KneserNeyLM, write_lexicon

    out, audio_root = result.out_dir, os.path.join(result.out_dir, "audio")
    os.makedirs(out, exist_ok=True)
    for split, items in result.splits.items():
        write_manifest(out, split, audio_root, items, labels=True)
    pretrain = result.splits.get("train", []) + result.unlabeled
    if not result.splits:  # unlabeled corpus: train / valid by groups for pre-training
        assign_splits(result.unlabeled, 0.1, 0.0, 1)
        write_manifest(out, "train", audio_root, [u for u in result.unlabeled if u.split == "train"], labels=False)
        write_manifest(out, "valid", audio_root, [u for u in result.unlabeled if u.split != "train"], labels=False)
    write_manifest(out, "pretrain", audio_root, pretrain, labels=False)
    if result.splits:
        counts = Counter(s for u in result.splits["train"] for s in letters(u.words).split())
        with open(os.path.join(out, "dict.ltr.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{symbol} {count}\n" for symbol, count in counts.most_common()))
        if lm_order > 0:
            sentences = [u.words.split() for u in result.splits["train"]]
            os.makedirs(os.path.join(out, "lm"), exist_ok=True)
            KneserNeyLM(sentences, lm_order).write_arpa(os.path.join(out, "lm", "lm.arpa"))
            write_lexicon((w for s in sentences for w in s), os.path.join(out, "lm", "lexicon.txt"))
    with open(os.path.join(out, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(result.summary(), f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "left_out.tsv"), "w", encoding="utf-8") as f:
        f.write("reason\trow\n")
        f.writelines(f"{reason}\t{row}\n" for reason, rows in result.left_out.items() for row in rows)


def write_manifest(out_dir: str, split: str, audio_root: str, items: Sequence[Utterance], labels: bool) -> None:
    """SPLIT.tsv (and with ``labels`` SPLIT.wrd / .ltr) for ``items``, in their order."""
    with open(os.path.join(out_dir, f"{split}.tsv"), "w", encoding="utf-8") as tsv:
        tsv.write(audio_root + "\n" + "".join(f"{u.audio}\t{u.frames}\n" for u in items))
    if labels:
        with open(os.path.join(out_dir, f"{split}.wrd"), "w", encoding="utf-8") as wrd:
            wrd.write("".join(u.words + "\n" for u in items))
        with open(os.path.join(out_dir, f"{split}.ltr"), "w", encoding="utf-8") as ltr:
            ltr.write("".join(letters(u.words) + "\n" for u in items))


def labeled_subset(data_dir: str, minutes: float, seed: int = 1, split: str = "train") -> str:
    """Writes SPLIT_{M}min.tsv/.wrd/.ltr: utterances of ``split`` in a seeded random order until
    ``minutes`` of audio (the paper's low-resource settings: 10 minutes, 1 hour); returns its name."""
    from .manifest import read_lines

    name = f"{split}_{minutes:g}min"
    lines = {ext: read_lines(os.path.join(data_dir, f"{split}.{ext}")) for ext in ("tsv", "wrd", "ltr")}
    root, rows = lines["tsv"][0], lines["tsv"][1:]
    chosen, total = [], 0
    for i in seeded_rng(seed, "labeled-subset").permutation(len(rows)):
        if total >= minutes * 60 * SAMPLE_RATE:
            break
        chosen.append(int(i))
        total += int(rows[i].split("\t")[1])
    chosen.sort()
    for ext in ("tsv", "wrd", "ltr"):
        with open(os.path.join(data_dir, f"{name}.{ext}"), "w", encoding="utf-8") as f:
            head = [root] if ext == "tsv" else []
            body = [rows[i] if ext == "tsv" else lines[ext][i] for i in chosen]
            f.write("\n".join(head + body) + "\n")
    return name


def format_summary(summary: Dict, show_rows: int = 3) -> str:
    """The import summary as lines: per split utterances, hours and groups; the letters; what
    was left out per reason, with the first rows of each."""
    lines = [f"{'split':10s}{'utterances':>12s}{'hours':>9s}{'groups':>8s}"]
    rows = dict(summary["splits"])
    if summary["unlabeled"]["utterances"]:
        rows["unlabeled"] = summary["unlabeled"]
    for name, s in rows.items():
        lines.append(f"{name:10s}{s['utterances']:>12d}{s['hours']:>9.2f}{s['groups']:>8d}")
    for name, s in rows.items():
        if s["utterances"] and "seconds" in s:
            sec = s["seconds"]
            lines.append(f"  {name} durations: min {sec['min']:.2f} s, median {sec['median']:.2f} s, "
                         f"max {sec['max']:.2f} s, total {s['hours'] * 60:.1f} min")
    if summary["letters"]:
        lines.append(f"letters ({len(summary['letters'])}, most frequent first): {' '.join(summary['letters'])}")
    scripts = summary.get("scripts", {})
    if len(scripts) > 1:
        parts = []
        for i, (name, s) in enumerate(scripts.items()):
            where = "" if i == 0 else ": " + ", ".join(s["examples"]) + (", ..." if s["rows"] > len(s["examples"]) else "")
            parts.append(f"{name} {s['rows']} row(s), {len(s['letters'])} letters{where}")
        lines.append("scripts: " + "; ".join(parts) + " (--keep-script NAME keeps rows written only in NAME)")
    elif scripts:
        lines.append(f"script: {next(iter(scripts))}")
    lines.append(f"converted to 16 kHz FLAC by this run: {summary['converted']}")
    left = summary["left_out"]
    lines.append("left out: " + (", ".join(f"{n} {reason}" for reason, n in left.items()) if left else "nothing"))
    for reason, where in summary.get("left_out_rows", {}).items():
        lines += [f"  {reason}: {w}" for w in where[:show_rows]]
        if len(where) > show_rows:
            lines.append(f"  {reason}: ... {len(where) - show_rows} more (corpus.json lists them all)")
    lines.append(f"written to {summary['out_dir']}")
    return "\n".join(lines)
