"""Inference over a corpus: throughput and peak memory of ``d2v transcribe --output`` and
``d2v features`` against the corpus size, the precision and the number of SLURM nodes.

    .venv/bin/python bench/corpus_inference.py MODEL AUDIO_DIR [--sizes 200,1000] [--work DIR] [--data DIR]
        [--precisions fp32,bf16] [--commands transcribe,features] [--slurm-nodes 1,2]

MODEL is a CTC fine-tuned checkpoint, or a width of ``bench/inference_speed.py`` (``tiny``,
``base``, ``base12``): a CTC model of that shape made in WORK by a few updates on the synthesized
demo corpus (its weights barely trained: the figures are of speed, not of transcripts).

Builds, for each size N, a folder of N recordings in nested folders (copies of AUDIO_DIR's audio
files, cycled; 40 per folder, so names repeat across folders), then runs each command once in a
fresh process per precision and reports the recordings, hours of audio, wall seconds, the
real-time factor, hours of audio per hour of CPU (user + system time of the process) and its peak
resident memory (``ru_maxrss``). Memory bounded by a batch window, not the corpus, shows as a peak
that does not grow with N.

``--slurm-nodes 1,2`` also runs ``d2v transcribe --slurm --shards K`` on the two-node SLURM
cluster of ``tests/helpers/slurm_cluster.sh`` (started in WORK for the bench, stopped after; root
only), one shard task per node (``--cpus-per-task`` a whole node, one thread each), and reports
its wall seconds from submitting to the joined output, and the speed-up against one node.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import soundfile as sf

BIN = os.path.dirname(sys.executable)
CLUSTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "helpers",
                       "slurm_cluster.sh")


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


def make_model(model: str, work: str) -> tuple:
    """(checkpoint, its data folder or None) of MODEL: a path as given, or a width made in WORK."""
    if os.path.isfile(model):
        return model, None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from inference_speed import WIDTHS, make_model as make_ctc

    from d2v_fairseq.demos.speech_corpus import build_corpus

    if model not in WIDTHS:
        raise SystemExit(f"MODEL: no file {model!r} and no width of that name ({', '.join(sorted(WIDTHS))})")
    corpus = build_corpus(os.path.join(work, "demo-corpus"), train=24, valid=8, test=40, seed=3)
    return make_ctc(model, work, corpus), corpus


def start_cluster(work: str) -> dict:
    """The environment of a started local two-node cluster (SLURM_CONF set)."""
    state = os.path.join(work, "slurm-cluster")
    proc = subprocess.run(["bash", CLUSTER, "start", state], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the local SLURM cluster did not start:\n{proc.stdout}{proc.stderr}")
    return {"SLURM_CONF": os.path.join(state, "slurm.conf")}


def remove(path: str) -> None:
    """An earlier run's output would be skipped as done: measure from nothing."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.isfile(path):
        os.remove(path)
    for extra in (path + ".failed.tsv",):
        if os.path.isfile(extra):
            os.remove(extra)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a CTC fine-tuned checkpoint, or a width to make: tiny, base, base12")
    p.add_argument("audio_dir", help="a folder of recordings to copy into the corpora")
    p.add_argument("--sizes", default="200,1000", help="corpus sizes, smallest first")
    p.add_argument("--work", default="work/bench-corpus", help="where the corpora and outputs go")
    p.add_argument("--threads", default="1", help="OMP_NUM_THREADS of the commands")
    p.add_argument("--data", help="the checkpoint's fine-tuning data folder (its dict.ltr.txt), if it moved")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16")
    p.add_argument("--commands", default="transcribe,features", help="comma-separated: transcribe, features")
    p.add_argument("--slurm-nodes", help="comma-separated node counts for d2v transcribe --slurm (e.g. 1,2)")
    args = p.parse_args()
    checkpoint, made_data = make_model(args.model, args.work)
    data = args.data or made_data
    env = dict(os.environ, OMP_NUM_THREADS=args.threads)
    if args.slurm_nodes:
        env.update(start_cluster(args.work))
    print(f"{'command':<12} {'precision':>9} {'nodes':>5} {'recordings':>10} {'audio h':>8} {'wall s':>8} {'RTF':>7} "
          f"{'audio h / CPU h':>16} {'peak MB':>8}")
    try:
        for size in (int(v) for v in args.sizes.split(",")):
            corpus = os.path.join(args.work, f"corpus-{size}")
            shutil.rmtree(corpus, ignore_errors=True)
            seconds = build(args.audio_dir, corpus, size)
            for precision in args.precisions.split(","):
                for name in [c for c in args.commands.split(",") if c]:
                    out = os.path.join(args.work, f"{name}-{size}-{precision}" + (".tsv" if name == "transcribe" else ""))
                    cmd = [os.path.join(BIN, "d2v"), name, checkpoint, corpus]
                    cmd += ["--output", out] if name == "transcribe" else [out, "--layers", "last", "--pool", "mean"]
                    cmd += ["--precision", precision] + (["--data", data] if data else [])
                    remove(out)
                    m = measure(cmd, env)
                    print(f"{name:<12} {precision:>9} {'-':>5} {size:>10} {seconds / 3600:>8.3f} {m['wall']:>8.1f} "
                          f"{m['wall'] / seconds:>7.4f} {seconds / max(m['cpu'], 1e-9):>16.1f} {m['peak_mb']:>8.0f}",
                          flush=True)
                walls = {}
                for nodes in (int(v) for v in (args.slurm_nodes or "").split(",") if v):
                    out = os.path.join(args.work, f"slurm-{nodes}-{size}-{precision}.tsv")
                    remove(out)
                    cmd = [os.path.join(BIN, "d2v"), "transcribe", checkpoint, corpus, "--output", out, "--precision",
                           precision, "--slurm", "--shards", str(nodes), "--partition", "local", "--cpus-per-task",
                           str(os.cpu_count()), "--time", "60"] + (["--data", data] if data else [])
                    m = measure(cmd, env)
                    walls[nodes] = m["wall"]
                    speedup = f"  {walls[min(walls)] / m['wall']:.2f}x {min(walls)} node(s)" if len(walls) > 1 else ""
                    print(f"{'slurm':<12} {precision:>9} {nodes:>5} {size:>10} {seconds / 3600:>8.3f} {m['wall']:>8.1f} "
                          f"{m['wall'] / seconds:>7.4f} {'-':>16} {'-':>8}{speedup}", flush=True)
    finally:
        if args.slurm_nodes:
            subprocess.run(["bash", CLUSTER, "stop", os.path.join(args.work, "slurm-cluster")], capture_output=True)


if __name__ == "__main__":
    main()
