"""The main job on the built-in demo corpus (``make demo``):

1. synthesize the demo spoken corpus with espeak-ng (skipped when already built);
2. pre-train a tiny data2vec_audio model on it with fairseq-hydra-train
   (examples/audio/pretraining/tiny_cpu.yaml; resumes, or skips when already done).

    python -m d2v_fairseq.demo --work work/demo [--updates 300]

Prints fairseq's progress as it goes and a summary: the loss at the start and the end, the
EMA decay, and where the checkpoint is.
"""

import argparse
import os
import re
import subprocess
import sys
import time

from .data.demo_corpus import build_corpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.dirname(os.path.abspath(__file__))


def stage(message: str) -> None:
    print(f"\n=== {message}", flush=True)


def pretrain(corpus: str, save_dir: str, updates: int) -> list:
    """Runs tiny pre-training, streaming fairseq's log; returns [(update, loss, ema_decay)]."""
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train"),
        "--config-dir", os.path.join(REPO, "examples", "audio", "pretraining"), "--config-name", "tiny_cpu",
        f"common.user_dir={PACKAGE}", f"task.data={corpus}", f"checkpoint.save_dir={save_dir}",
        f"optimization.max_update={updates}", f"hydra.run.dir={save_dir}/hydra",
    ]
    points = []
    pattern = re.compile(r"loss=([\d.]+).*ema_decay=([\d.]+).*num_updates=(\d+)")
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            if "train_inner" in line or "valid on" in line or "done training" in line or "Error" in line:
                print("  " + line.rstrip().split(" - ", 1)[-1], flush=True)
            match = pattern.search(line)
            if match and "train_inner" in line:
                points.append((int(match.group(3)), float(match.group(1)), float(match.group(2))))
    if proc.returncode != 0:
        raise SystemExit(f"pre-training failed (exit {proc.returncode}); command:\n  {' '.join(cmd)}")
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="work/demo", help="where the corpus and checkpoints go")
    parser.add_argument("--updates", type=int, default=300, help="pre-training updates")
    args = parser.parse_args()
    work = os.path.abspath(args.work)
    start = time.time()

    stage("1/2 demo corpus (espeak-ng, 16 kHz)")
    corpus = build_corpus(os.path.join(work, "corpus"))
    print(f"  manifests and labels in {corpus}", flush=True)

    stage(f"2/2 data2vec pre-training, tiny model, {args.updates} updates (fairseq-hydra-train)")
    save_dir = os.path.join(work, "pretrain")
    points = pretrain(corpus, save_dir, args.updates)

    stage("summary")
    if points:
        (u0, l0, _), (u1, l1, d1) = points[0], points[-1]
        print(f"  loss {l0:.3f} at update {u0} -> {l1:.3f} at update {u1}; ema_decay {d1}")
    else:
        print("  already trained: nothing new to log")
    print(f"  checkpoint: {save_dir}/checkpoint_last.pt  ({time.time() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
