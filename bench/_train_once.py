"""Runs fairseq-hydra-train in this process and prints its peak resident memory at exit
(a helper of the speed benchmarks: one process per run, so each peak is its own). With
``D2V_BENCH_PROFILE=1`` it also prints where the updates' time went and their FLOPs
(``_profile.py``)."""

import atexit
import os
import resource
import sys


def _report():
    print(f"BENCH_PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)


atexit.register(_report)
if os.environ.get("D2V_BENCH_PROFILE"):
    from _profile import install  # bench/ is the script's directory

    install()
from fairseq_cli.hydra_train import cli_main  # noqa: E402

sys.argv[0] = "fairseq-hydra-train"
cli_main()
