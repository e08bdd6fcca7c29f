"""Inference over a corpus: throughput and peak memory of ``d2v transcribe --output`` and
``d2v features`` against the corpus size.

    .venv/bin/python bench/corpus_inference.py CKPT AUDIO_DIR [--sizes 200,1000] [--work DIR] [--data DIR]

Builds, for each size N, a folder of N recordings in nested folders (copies of AUDIO_DIR's audio
files, cycled; 40 per folder, so names repeat across folders), then runs each command once in a
fresh process and reports the recordings, hours of audio, wall seconds, the real-time factor,
hours of audio per hour of CPU (user + system time of the process) and its peak resident memory
(``ru_maxrss``). Memory bounded by a batch window, not the corpus, shows as a peak that does not
grow with N.
"""

import argparse
import os
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


# runs one command in a wrapper process of its own and prints its children's resource use, so that
# each measurement's peak memory is that command's alone (RUSAGE_CHILDREN keeps the largest so far)
WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print(f'RUSAGE {u.ru_utime + u.ru_stime} {u.ru_maxrss}', file=sys.stderr); sys.exit(code)")


def measure(cmd, env) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of ``cmd`` run alone."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stderr[-3000:]}")
    _, cpu, peak_kb = [line for line in proc.stderr.splitlines() if line.startswith("RUSAGE ")][-1].split()
    return {"wall": wall, "cpu": float(cpu), "peak_mb": int(peak_kb) / 1024, "stdout": proc.stdout}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a CTC fine-tuned checkpoint")
    p.add_argument("audio_dir", help="a folder of recordings to copy into the corpora")
    p.add_argument("--sizes", default="200,1000", help="corpus sizes, smallest first")
    p.add_argument("--work", default="work/bench-corpus", help="where the corpora and outputs go")
    p.add_argument("--threads", default="1", help="OMP_NUM_THREADS of the commands")
    p.add_argument("--data", help="the checkpoint's fine-tuning data folder (its dict.ltr.txt), if it moved")
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=args.threads)
    print(f"{'command':<12} {'recordings':>10} {'audio h':>8} {'wall s':>8} {'RTF':>7} {'audio h / CPU h':>16} "
          f"{'peak MB':>8}")
    for size in (int(v) for v in args.sizes.split(",")):
        corpus = os.path.join(args.work, f"corpus-{size}")
        shutil.rmtree(corpus, ignore_errors=True)
        seconds = build(args.audio_dir, corpus, size)
        outputs = {"transcribe": os.path.join(args.work, f"transcripts-{size}.tsv"),
                   "features": os.path.join(args.work, f"features-{size}")}
        runs = {
            "transcribe": [os.path.join(BIN, "d2v"), "transcribe", args.checkpoint, corpus, "--output",
                           outputs["transcribe"]],
            "features": [os.path.join(BIN, "d2v"), "features", args.checkpoint, corpus, outputs["features"],
                         "--layers", "last", "--pool", "mean"],
        }
        if args.data:
            for cmd in runs.values():
                cmd += ["--data", args.data]
        for name, cmd in runs.items():
            stale = outputs[name]  # an earlier run's output would be skipped as done: measure from nothing
            if os.path.isdir(stale):
                shutil.rmtree(stale)
            elif os.path.isfile(stale):
                os.remove(stale)
            m = measure(cmd, env)
            print(f"{name:<12} {size:>10} {seconds / 3600:>8.3f} {m['wall']:>8.1f} {m['wall'] / seconds:>7.4f} "
                  f"{seconds / max(m['cpu'], 1e-9):>16.1f} {m['peak_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
