"""Runs fairseq-hydra-train in this process and prints its peak resident memory at exit
(a helper of bench/pretrain_speed.py: one process per run, so each peak is its own)."""

import atexit
import resource
import sys


def _report():
    print(f"BENCH_PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)


atexit.register(_report)
from fairseq_cli.hydra_train import cli_main  # noqa: E402

sys.argv[0] = "fairseq-hydra-train"
cli_main()
