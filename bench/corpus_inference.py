"""Inference over a corpus: throughput and peak memory of ``d2v transcribe --output`` and
``d2v features`` against the corpus size.

    .venv/bin/python bench/corpus_inference.py CKPT AUDIO_DIR [--sizes 200,1000] [--work DIR]

Builds, for each size N, a folder of N recordings in nested folders (copies of AUDIO_DIR's audio
files, cycled; 40 per folder, so names repeat across folders), then runs each command once in a
fresh process and reports the recordings, hours of audio, wall seconds, the real-time factor,
hours of audio per hour of CPU (user + system time of the process) and its peak resident memory
(``ru_maxrss``). Memory bounded by a batch window, not the corpus, shows as a peak that does not
grow with N.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

import soundfile as sf

BIN = os.path.dirname(sys.executable)


def build(audio_dir: str, out: str, count: int) -> float:
    """``count`` recordings copied from ``audio_dir`` into ``out/dNN/``; returns their seconds."""
    sources = sorted(os.path.join(audio_dir, n) for n in os.listdir(audio_dir) if n.endswith((".wav", ".flac")))
    seconds = 0.0
    for i in range(count):
        source = sources[i % len(sources)]
        folder = os.path.join(out, f"d{i // 40:03d}")
        os.makedirs(folder, exist_ok=True)
        shutil.copy(source, os.path.join(folder, f"r{i % 40:02d}{os.path.splitext(source)[1]}"))
        seconds += sf.info(source).duration
    return seconds


def measure(cmd, env) -> dict:
    """Wall seconds, CPU seconds and peak RSS (MB) of ``cmd`` run alone in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: each size runs in its own process
    # tree, and sizes go smallest first, so a later larger peak is that size's own
    return {"wall": wall, "cpu": cpu, "peak_mb": after.ru_maxrss / 1024, "stdout": proc.stdout}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a CTC fine-tuned checkpoint")
    p.add_argument("audio_dir", help="a folder of recordings to copy into the corpora")
    p.add_argument("--sizes", default="200,1000", help="corpus sizes, smallest first")
    p.add_argument("--work", default="work/bench-corpus", help="where the corpora and outputs go")
    p.add_argument("--threads", default="1", help="OMP_NUM_THREADS of the commands")
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=args.threads)
    print(f"{'command':<12} {'recordings':>10} {'audio h':>8} {'wall s':>8} {'RTF':>7} {'audio h / CPU h':>16} "
          f"{'peak MB':>8}")
    for size in (int(v) for v in args.sizes.split(",")):
        corpus = os.path.join(args.work, f"corpus-{size}")
        shutil.rmtree(corpus, ignore_errors=True)
        seconds = build(args.audio_dir, corpus, size)
        runs = {
            "transcribe": [os.path.join(BIN, "d2v"), "transcribe", args.checkpoint, corpus, "--output",
                           os.path.join(args.work, f"transcripts-{size}.tsv")],
            "features": [os.path.join(BIN, "d2v"), "features", args.checkpoint, corpus,
                         os.path.join(args.work, f"features-{size}"), "--layers", "last", "--pool", "mean"],
        }
        for name, cmd in runs.items():
            for stale in (cmd[5] if name == "transcribe" else cmd[5],):
                if os.path.isdir(stale):
                    shutil.rmtree(stale)
                elif os.path.isfile(stale):
                    os.remove(stale)
            m = measure(cmd, env)
            print(f"{name:<12} {size:>10} {seconds / 3600:>8.3f} {m['wall']:>8.1f} {m['wall'] / seconds:>7.4f} "
                  f"{seconds / max(m['cpu'], 1e-9):>16.1f} {m['peak_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
