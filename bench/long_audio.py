"""Transcription time and memory against recording length: ``d2v transcribe`` (windows of
--window seconds, the default 30) on recordings of 1, 3 and 10 minutes made by joining a split's
recordings end to end.

    .venv/bin/python bench/long_audio.py CHECKPOINT DATA [--split test] [--minutes 1,3,10] [--timestamps]

Each length runs in its own process (``/usr/bin/time``-style peak RSS from the child's rusage);
prints seconds, real-time factor, peak RSS and the time relative to the first length, with and
without windows (``--window 0``: the whole recording in one pass) where that fits in memory.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf


def joined(data: str, split: str, seconds: float) -> np.ndarray:
    """The split's recordings end to end (repeated when short), cut at ``seconds``."""
    from d2v_fairseq.data.manifest import read_manifest

    root, entries = read_manifest(os.path.join(data, f"{split}.tsv"))
    waves, total = [], 0
    while total < seconds * 16000:
        for entry in entries:
            wave = sf.read(os.path.join(root, entry.path), dtype="float32")[0]
            waves.append(wave)
            total += len(wave)
            if total >= seconds * 16000:
                break
    return np.concatenate(waves)[:int(seconds * 16000)]


def transcribe(checkpoint: str, data: str, path: str, extra) -> tuple:
    """(seconds, peak RSS MB) of one ``d2v transcribe`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "d2v_fairseq", "transcribe", checkpoint, path, "--data", data,
                           *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data", help="the fine-tuning data folder (manifests, dict.ltr.txt)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--minutes", default="1,3,10")
    parser.add_argument("--timestamps", action="store_true", help="also write word timings (JSON)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="d2v-long-audio-")
    extra = ["--timestamps", "json"] if args.timestamps else []
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        path = os.path.join(work, f"{minutes:g}min.flac")
        sf.write(path, joined(args.data, args.split, minutes * 60), 16000)
        seconds, peak = transcribe(args.checkpoint, args.data, path, extra)
        rows.append((minutes, seconds, peak))
        print(f"{minutes:5g} min: {seconds:7.1f} s (real-time factor {seconds / (minutes * 60):.3f}), "
              f"peak RSS so far {peak:.0f} MB", flush=True)
    first_minutes, first_seconds, _ = rows[0]
    for minutes, seconds, _ in rows[1:]:
        print(f"{minutes:g} min / {first_minutes:g} min: time x{seconds / first_seconds:.2f} "
              f"(length x{minutes / first_minutes:g})")


if __name__ == "__main__":
    main()
