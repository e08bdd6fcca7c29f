"""End to end, as a user runs it: fairseq-hydra-train with our user-dir on synthesized speech."""

import os

import pytest
import torch

from .conftest import REPO, VENV_BIN, assert_same_student_and_teacher, run_cli

pytestmark = pytest.mark.slow  # end to end: training runs

CONFIG_DIR = os.path.join(REPO, "examples", "audio", "pretraining")
# no random crops (fairseq crops with the global numpy RNG, which a resumed run reseeds),
# explicit tri-stage steps so that the schedule does not depend on max_update
COMMON = [
    "task.max_sample_size=400000",
    "dataset.disable_validation=true",
    "dataset.max_tokens=150000",
    "lr_scheduler.phase_ratio=null",
    "+lr_scheduler.warmup_steps=2",
    "+lr_scheduler.hold_steps=4",
    "+lr_scheduler.decay_steps=6",
    "model.encoder_layers=2",
    "model.average_top_k_layers=2",
    "model.ema_anneal_end_step=10",
]


def train(cwd, data, save_dir, max_update, *extra, launcher=None):
    # a trailing slash on user_dir, and a working directory outside the repository
    args = [
        "--config-dir", CONFIG_DIR, "--config-name", "tiny_cpu",
        f"common.user_dir={REPO}/d2v_fairseq/", f"task.data={data}",
        f"checkpoint.save_dir={save_dir}", f"optimization.max_update={max_update}",
        *COMMON, *extra,
    ]
    return run_cli((launcher or [os.path.join(VENV_BIN, "fairseq-hydra-train")]) + args, cwd=cwd)


def test_pretraining_logs_and_saves_teacher(demo_corpus, tmp_path):
    proc = train(tmp_path, demo_corpus, tmp_path / "ckpt", 12, "common.log_interval=4")
    log = proc.stdout + proc.stderr
    assert "ema_decay=0.99" in log and "target_var=" in log and "pred_var=" in log
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "data2vec_audio"
    assert "_ema" in state["model"] and "_ema_updates" not in state["model"]


def test_resumed_run_continues_with_the_same_teacher(demo_corpus, tmp_path):
    train(tmp_path, demo_corpus, tmp_path / "straight", 12)
    train(tmp_path, demo_corpus, tmp_path / "resumed", 6)
    train(tmp_path, demo_corpus, tmp_path / "resumed", 12)  # picks up checkpoint_last.pt at 6
    assert_same_student_and_teacher(tmp_path / "straight" / "checkpoint_last.pt", tmp_path / "resumed" / "checkpoint_last.pt")


def test_two_process_ddp_on_cpu_keeps_teachers_identical(demo_corpus, tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    launcher = [os.path.join(VENV_BIN, "torchrun"), "--nproc_per_node", "2", "--master_port", "29611",
                os.path.join(REPO, "tests", "helpers", "ddp_dump_teacher.py"), str(dump)]
    proc = train(tmp_path, demo_corpus, tmp_path / "ckpt", 6, launcher=launcher)
    assert "distributed init (rank 1)" in proc.stdout + proc.stderr
    ranks = [torch.load(dump / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["num_updates"] == ranks[1]["num_updates"] == 6
    for key, value in ranks[0]["teacher"].items():
        assert torch.equal(value, ranks[1]["teacher"][key]), key
    for key, value in ranks[0]["student"].items():
        if key != "_ema":
            assert torch.equal(value, ranks[1]["student"][key]), key
    # the teacher moved away from the student's initial weights: it was really updated
    assert any(not torch.equal(ranks[0]["teacher"][k], ranks[0]["student"]["encoder." + k]) for k in ranks[0]["teacher"])
