"""bench/ is not imported by the package: each script's imports and --help are checked here, so
that a refactor cannot break one silently; the GPU check runs its own smoke test on CPU."""

import os
import subprocess
import sys

import pytest

from .conftest import REPO

BENCH = os.path.join(REPO, "bench")
SCRIPTS = sorted(n for n in os.listdir(BENCH) if n.endswith(".py") and not n.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_bench_script_imports_and_has_help(script):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, script), "--help"], capture_output=True, text=True,
                          cwd=BENCH, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_gpu_check_refuses_cleanly_without_cuda():
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "gpu_check.py")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing to check"


@pytest.mark.slow
def test_gpu_check_runs_its_table_on_cpu_with_tiny_configs(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "gpu_check.py"), "--tiny", "--cpu", "--updates", "12",
                           "--only", "speech-v1,vision-v1", "--precisions", "bf16", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("speech-v1", "vision-v1"))]
    assert [r[0] for r in rows] == ["speech-v1", "vision-v1"] and all(r[-1] == "ok" for r in rows)
    assert rows[0][-2].endswith("x")  # the ratio against fairseq's reference speech model


def bench_module(name):
    sys.path.insert(0, BENCH)
    try:
        return __import__(name)
    finally:
        sys.path.remove(BENCH)


def test_stage_timer_counts_nested_time_once():
    import time

    profile = bench_module("_profile")
    timer = profile.StageTimer()
    timer.active = True
    outer = timer.wrap("outer", lambda: (time.sleep(0.02), inner()))
    inner = timer.wrap("inner", lambda: time.sleep(0.03))
    outer()
    assert 0.03 <= timer.seconds["inner"] < 0.06
    assert 0.02 <= timer.seconds["outer"] < 0.04  # the inner stage's time is not the outer's too


def test_flop_count_covers_matmuls_and_the_cpu_attention_kernel():
    import torch

    profile = bench_module("_profile")
    profile._register_attention_flops()
    layer = torch.nn.Linear(32, 16)
    with profile.FlopCount() as count:
        layer(torch.randn(8, 32))
    assert count.total == 2 * 8 * 32 * 16
    q = torch.randn(2, 4, 10, 8, requires_grad=True)
    with profile.FlopCount() as count:
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
    assert count.total == 3 * 4 * 2 * 4 * 10 * 10 * 8  # forward 4 B H T S D, backward twice that
    conv = torch.nn.Conv1d(64, 64, 3, padding=1, groups=16)
    x = torch.randn(2, 64, 10, requires_grad=True)
    with profile.FlopCount() as count:
        y = conv(x)
    forward = count.total
    assert forward == 2 * 2 * 64 * 4 * 3 * 10  # grouped: 64 / 16 input channels per output
    with profile.FlopCount() as count:
        y.sum().backward()
    assert count.total == 2 * forward  # the input's gradient and the weight's, each a forward's worth


def test_width_overrides_replace_the_small_ones():
    measure = bench_module("_measure")
    assert measure.with_overrides(["model.depth=4", "+model.num_heads=4", "task.data=x"],
                                  ["model.num_heads=12", "model.depth=2"]) == \
        ["task.data=x", "model.num_heads=12", "model.depth=2"]


def test_speed_table_on_cuda_or_in_half_precision_refuses_cleanly_without_cuda():
    for args, message in ((["--device", "cuda"], "--device cuda, but torch.cuda.is_available() is False"),
                          (["--precision", "bf16"], "--precision bf16 needs --device cuda")):
        proc = subprocess.run([sys.executable, os.path.join(BENCH, "speed_table.py"), *args], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2 and proc.stderr.strip() == f"speed_table: {message}"


def test_every_run_gets_the_device_and_precision_overrides_last(monkeypatch, tmp_path):
    measure = bench_module("_measure")
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 0, "done training in 2.0 seconds\nBENCH_PEAK_RSS_MB 10\n", "")

    monkeypatch.setattr(measure.subprocess, "run", fake_run)
    monkeypatch.setattr(measure, "EXTRA_OVERRIDES", ["common.cpu=false", "common.bf16=true"])
    result = measure.train_once("ours", ["--config-name", "x", "common.cpu=true", "model.depth=2"], str(tmp_path), 4,
                                profile=False)
    assert seen["cmd"][2:] == ["--config-name", "x", "model.depth=2", "common.cpu=false", "common.bf16=true"]
    assert result["updates_per_s"] == 2.0


def test_the_matmul_peak_is_measured_in_the_precision_asked():
    profile = bench_module("_profile")
    assert profile.peak_flops(size=256, repeats=2) > 1e8
    assert profile.peak_flops(size=256, repeats=2, dtype="bfloat16") > 1e6
