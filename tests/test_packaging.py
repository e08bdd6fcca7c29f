"""The package as pip installs it: the wheel carries the configs and declares its dependencies,
and an installed wheel runs `d2v` and trains from another directory, no checkout needed.

The wheel goes into a fresh virtual environment offline (``--no-index``): the dependencies
come from this test's own environment, seen through a ``.pth`` line, so pip must find every
declared requirement there and downloads nothing.
"""

import glob
import os
import re
import site
import subprocess
import sys
import zipfile

import pytest
import torch

from .conftest import REPO, run_cli

pytestmark = pytest.mark.slow  # builds a wheel, makes a venv, trains


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The package's wheel, built from the source tree without build isolation (offline)."""
    out = tmp_path_factory.mktemp("dist")
    run_cli([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), REPO])
    (path,) = glob.glob(str(out / "d2v_fairseq-*.whl"))
    return path


def test_wheel_ships_the_configs_and_declares_its_dependencies(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    configs = [n for n in names if n.startswith("d2v_fairseq/configs/") and n.endswith(".yaml")]
    in_tree = glob.glob(os.path.join(REPO, "d2v_fairseq", "configs", "**", "*.yaml"), recursive=True)
    assert len(configs) == len(in_tree) > 30
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    required = re.findall(r"^Requires-Dist: ([\w.-]+)==", metadata, re.M)
    assert {"torch", "hydra-core", "soundfile", "sentencepiece", "flashlight-text", "Pillow"} <= set(required)
    assert re.search(r"^Requires-Dist: transformers==[\d.]+; extra == \"hf\"", metadata, re.M)
    assert not any(name.lower().startswith("fairseq") for name in required)  # installed apart, --no-deps
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "d2v = d2v_fairseq.cli:console_main" in entry_points


def test_installed_wheel_runs_d2v_and_trains_from_another_directory(wheel, demo_corpus, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv_site,) = glob.glob(str(venv / "lib" / "python3.*" / "site-packages"))
    # this environment's packages, seen by the new one (their own .pth files are not run: the
    # editable install of the checkout stays out of sight)
    with open(os.path.join(venv_site, "test_environment.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")
    python = str(venv / "bin" / "python")
    run_cli([python, "-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check", wheel])
    d2v = str(venv / "bin" / "d2v")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    listed = run_cli([d2v, "--help"], cwd=elsewhere).stdout
    assert all(command in listed for command in ("prepare", "evaluate", "export", "demo", "train", "configs"))
    configs = run_cli([d2v, "configs"], cwd=elsewhere).stdout.strip()
    assert configs.startswith(venv_site) and os.path.isfile(os.path.join(configs, "audio", "pretraining", "tiny_cpu.yaml"))
    where = run_cli([python, "-c", "import d2v_fairseq; print(d2v_fairseq.__file__)"], cwd=elsewhere).stdout
    assert where.startswith(venv_site)  # the wheel's copy, not the checkout

    proc = run_cli([d2v, "train", "--config-dir", os.path.join(configs, "audio", "pretraining"),
                    "--config-name", "tiny_cpu", f"task.data={demo_corpus}", f"checkpoint.save_dir={tmp_path / 'ckpt'}",
                    "optimization.max_update=3", "dataset.disable_validation=true", "dataset.max_tokens=150000",
                    "lr_scheduler.phase_ratio=null", "+lr_scheduler.warmup_steps=1", "+lr_scheduler.hold_steps=1",
                    "+lr_scheduler.decay_steps=1", "model.encoder_layers=2", "model.average_top_k_layers=2",
                    "common.log_interval=1"], cwd=elsewhere)
    assert "done training" in proc.stdout + proc.stderr
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 3
    assert state["cfg"]["common"]["user_dir"].startswith(venv_site)  # trained with the installed package
    assert "_ema" in state["model"]
