"""What the speed benchmarks share: one fairseq-hydra-train run in its own process (through
_train_once.py, which reports its peak RSS), its figures parsed from the log, and the table."""

import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List

from d2v_fairseq.launch import with_overrides  # the speed benchmarks import it from here too

BENCH = os.path.dirname(os.path.abspath(__file__))
# overrides every run of this process gets last (speed_table.py --device / --precision set them)
EXTRA_OVERRIDES: List[str] = []


def front_end(width: int) -> str:
    """Hydra override for the speech conv front end, ``width`` channels wide, with the reference's
    kernels and strides (320x downsampling)."""
    return f"model.conv_feature_layers='[({width}, 10, 5)] + [({width}, 3, 2)] * 4 + [({width}, 2, 2)] * 2'"


def train_once(kind: str, args: List[str], cwd: str, updates: int, keep_log: bool = False,
               profile: bool = True) -> Dict[str, float]:
    """Runs fairseq-hydra-train with ``args``; returns updates_per_s, the mean batch size
    (``bsz``), seconds of training, peak RSS in MB, wall seconds (and the output as ``log``
    with ``keep_log``). With ``profile`` (``_profile.py``): also ``stages`` (seconds per update
    of each stage) and ``flops_per_update``, and updates_per_s counts the timed updates only
    (the warm-up and the FLOP-counted update left out)."""
    start = time.time()
    env = dict(os.environ, D2V_BENCH_PROFILE="1") if profile else None
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "_train_once.py"), *with_overrides(args, EXTRA_OVERRIDES)],
                          capture_output=True, text=True, cwd=cwd, env=env)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out[-5000:]}")
    train_s = float(re.search(r"done training in ([\d.]+) seconds", out).group(1))
    bsz = [float(b) for b in re.findall(r"bsz=([\d.]+)", out)]
    result = {"updates_per_s": updates / train_s, "bsz": sum(bsz) / len(bsz) if bsz else float("nan"),
              "train_s": train_s, "peak_rss_mb": float(re.search(r"BENCH_PEAK_RSS_MB ([\d.]+)", out).group(1)),
              "wall_s": time.time() - start, **({"log": out} if keep_log else {})}
    found = re.search(r"BENCH_PROFILE (.*)", out)
    if found:
        profiled = json.loads(found.group(1))
        n = profiled["updates"]
        if n:
            result["stages"] = {k: v / n for k, v in profiled["seconds"].items()}
            result["updates_per_s"] = 1.0 / sum(result["stages"].values())
        result["flops_per_update"] = profiled["flops_per_update"]
        result["optimized"] = profiled.get("optimized_tensors_and_values")
    return result


def print_table(title: str, results: Dict[str, Dict[str, float]], rate: str) -> None:
    """updates/s, ``rate`` (e.g. samples_per_s) and peak RSS of "reference" and "ours", and ours / reference."""
    label = rate.replace("_per_s", "/s")
    print(f"\n{title}")
    print(f"{'':12s}{'updates/s':>12s}{label:>12s}{'peak RSS MB':>14s}")
    for kind, r in results.items():
        print(f"{kind:12s}{r['updates_per_s']:12.3f}{r[rate]:12.0f}{r['peak_rss_mb']:14.0f}")
    ours, ref = results["ours"], results["reference"]
    print(f"{'ratio':12s}{ours['updates_per_s'] / ref['updates_per_s']:12.3f}"
          f"{ours[rate] / ref[rate]:12.3f}{ours['peak_rss_mb'] / ref['peak_rss_mb']:14.3f}")


def wordnet_text_data(data: str, vocab_size: int) -> str:
    """Binarized masked_lm data in ``data`` from 20,000 WordNet glosses (500 for valid), built
    once; returns ``data``."""
    if os.path.isfile(os.path.join(data, "train.bin")):
        return data
    from d2v_fairseq.data.text import prepare
    from d2v_fairseq.demos.wordnet import read_glosses

    os.makedirs(data, exist_ok=True)
    glosses = [g for _, g, _ in read_glosses()]
    with open(os.path.join(data, "raw.train.txt"), "w") as f:
        f.write("\n".join(glosses[:20000]) + "\n")
    with open(os.path.join(data, "raw.valid.txt"), "w") as f:
        f.write("\n".join(glosses[-500:]) + "\n")
    prepare(os.path.join(data, "raw.train.txt"), os.path.join(data, "raw.valid.txt"), data, vocab_size=vocab_size)
    return data
