"""``d2v transcribe CKPT INPUT... --output FILE``: a corpus transcribed exactly once.

Inputs are audio files, folders (searched recursively) and manifests (:mod:`.data.inputs`),
optionally one contiguous shard of them (``--shard I/N``). Recordings are read in windows and
batched by length (:func:`.inference.stream_batches`); a recording longer than ``window`` seconds
is transcribed alone, in overlapping windows. FILE gets one line per recording, no header:
``PATH<TAB>TRANSCRIPT`` (PATH as given or found), or a JSON line with word timings
(``timestamps="json"``), appended and synced per batch (:class:`.inference.AppendLog`): a kill
loses at most the batch in flight, and the same command again skips what FILE holds. A recording
that cannot be read is named in a WARNING, the rest go on, and every one is listed at the end and
in ``FILE.failed.tsv``.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .data.audio import SAMPLE_RATE, read_audio
from .data.inputs import find_items, parse_shard, shard_range
from .decoding.timing import to_json, to_srt
from .hub import Transcriber
from .checkpoints import write_atomic_text
from .inference import AppendLog, stream_batches, warn_unreadable, write_failures


def output_key(line: str, timestamps: Optional[str]) -> str:
    """The recording a line of the output names (its PATH)."""
    return json.loads(line)["file"] if timestamps == "json" else line.split("\t", 1)[0]


def transcribe_corpus(asr: Transcriber, sources: Sequence[str], output: str, *, max_tokens: int = 4_800_000,
                      batch_size: int = 16, window: float = 30.0, context: float = 2.5,
                      timestamps: Optional[str] = None, shard: Optional[str] = None, progress: bool = True) -> Dict:
    """Transcribes every recording of ``sources`` (its ``shard``, ``I/N``) into ``output`` (see
    the module docstring); returns {"recordings", "skipped", "failed", "audio_s", "seconds", "rtf"}:
    recordings transcribed now, recordings already in ``output``, (path, reason) of the unreadable
    ones, seconds of audio transcribed, wall seconds, and the real-time factor (seconds of
    processing per second of audio)."""
    from tqdm import tqdm

    items = find_items(sources, "speech")
    start, end = shard_range(len(items), *parse_shard(shard))
    items = items[start:end]
    log = AppendLog(output, lambda line: output_key(line, timestamps))
    todo = [item for item in items if item.source not in log.done]
    failures: List[Tuple[str, str]] = []
    began, audio_samples, done = time.perf_counter(), 0, 0
    longest = int(window * SAMPLE_RATE) if window > 0 else 0
    bar = tqdm(total=len(todo), unit="rec", desc="transcribe", disable=not progress, file=sys.stderr)
    try:
        batches = stream_batches(todo, lambda item: read_audio(item.source), len, max_tokens, batch_size,
                                 on_error=warn_unreadable(failures))
        for batch in batches:
            short = [(item, audio) for item, audio in batch if not longest or len(audio) <= longest]
            emissions = dict(zip([item.id for item, _ in short],
                                 asr.batch_emissions([audio for _, audio in short]) if short else [], strict=True))
            lines = []
            for item, audio in batch:
                found = emissions.get(item.id)
                if found is None:  # longer than a window: alone, in overlapping windows
                    found = asr.recording_emissions(audio, window, context)
                if timestamps == "json":
                    transcript = asr.timed_from(found)
                    lines.append(to_json(item.source, transcript.text, transcript.words))
                else:
                    lines.append(f"{item.source}\t{asr.text(asr.decoder.decode(found))}")
                audio_samples += len(audio)
            log.append(lines)
            done += len(batch)
            bar.update(len(batch))
    finally:
        bar.close()
        log.close()
    write_failures(output + ".failed.tsv", failures)
    seconds = time.perf_counter() - began
    audio_s = audio_samples / SAMPLE_RATE
    return {"recordings": done, "skipped": len(items) - len(todo), "failed": failures, "audio_s": audio_s,
            "seconds": seconds, "rtf": seconds / audio_s if audio_s else 0.0}


def closing_lines(summary: Dict, output: str) -> List[str]:
    """What ``d2v transcribe --output`` prints at its end: every unreadable recording, then one
    line of counts, hours of audio and the real-time factor."""
    lines = [f"WARNING: {source}: not transcribed: {reason}" for source, reason in summary["failed"]]
    failed = len(summary["failed"])
    listed = f", {failed} unreadable (listed in {output}.failed.tsv)" if failed else ""
    speed = (f"real-time factor {summary['rtf']:.4f} ({1 / summary['rtf']:.0f}x real time)"
             if summary["rtf"] else "nothing new to transcribe")
    lines.append(f"{summary['recordings']} recordings transcribed, {summary['skipped']} already in {output}{listed}; "
                 f"{summary['audio_s'] / 3600:.3f} h of audio in {summary['seconds']:.1f} s: {speed}")
    return lines


def transcribe_to_stdout(asr: Transcriber, sources: Sequence[str], window: float = 30.0, context: float = 2.5,
                         timestamps: Optional[str] = None, output_dir: str = ".") -> None:
    """``d2v transcribe`` without ``--output``: one recording at a time, ``PATH<TAB>TRANSCRIPT`` on
    stdout (a JSON line with ``timestamps="json"``; with ``"srt"``, ``NAME.srt`` written whole into
    ``output_dir`` and its path after the transcript). Stops at the first unreadable recording."""
    for item in find_items(sources, "speech"):
        path = item.source
        audio = read_audio(path)
        if not timestamps:
            print(f"{path}\t{asr.transcribe(audio, window, context)}", flush=True)
            continue
        transcript = asr.timed(audio, window, context)
        if timestamps == "json":
            print(to_json(path, transcript.text, transcript.words), flush=True)
            continue
        os.makedirs(output_dir, exist_ok=True)
        srt = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + ".srt")
        write_atomic_text(srt, to_srt(transcript.words))  # whole or absent, as every output
        print(f"{path}\t{transcript.text}\t{srt}", flush=True)


def shard_output(output: str, index: int, count: int) -> str:
    """The file shard ``index`` of ``count`` writes before the shards are joined into ``output``."""
    return f"{output}.shard-{index}-of-{count}"


def transcribe_shard(checkpoint: str, sources: Sequence[str], output: str, shard: str,
                     data_dir: Optional[str] = None, decoder: Optional[Dict] = None, device: str = "cpu",
                     precision: str = "fp32", **options) -> Dict:
    """One shard of a corpus job (a SLURM array task): loads the model, transcribes shard ``I/N``
    of ``sources`` into :func:`shard_output` (resumable); returns its summary."""
    index, count = (int(v) for v in shard.split("/"))
    asr = Transcriber(checkpoint, data_dir=data_dir, precision=precision, **(decoder or {}))
    asr.model.to(device)
    return transcribe_corpus(asr, sources, shard_output(output, index, count), shard=shard, progress=False,
                             **options)


def join_shards(output: str, count: int) -> None:
    """``output`` (and ``output.failed.tsv``) written whole as the shards' files one after another,
    in shard order: the lines the one-process run writes (each shard's in its batches' order)."""
    for suffix in ("", ".failed.tsv"):
        parts = [shard_output(output, i, count) + suffix for i in range(count)]
        parts = [p for p in parts if os.path.isfile(p)]
        if parts:
            write_atomic_text(output + suffix, "".join(Path(p).read_text(encoding="utf-8") for p in parts))


def summed(summaries: Sequence[Dict]) -> Dict:
    """The summaries of several shards as one (seconds: the longest shard's, the job's wall time)."""
    total = {"recordings": 0, "skipped": 0, "failed": [], "audio_s": 0.0, "seconds": 0.0}
    for s in summaries:
        for key in ("recordings", "skipped", "audio_s"):
            total[key] += s[key]
        total["failed"] += s["failed"]
        total["seconds"] = max(total["seconds"], s["seconds"])
    total["rtf"] = total["seconds"] / total["audio_s"] if total["audio_s"] else 0.0
    return total
