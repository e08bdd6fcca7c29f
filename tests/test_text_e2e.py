"""Text end to end, as a user runs it: fairseq-hydra-train with our user-dir and tiny_cpu.yaml
on binarized WordNet glosses; a killed and resumed run equals an uninterrupted one."""

import os

import torch

from .conftest import REPO, VENV_BIN, run_cli

CONFIG_DIR = os.path.join(REPO, "examples", "text", "pretraining")


def train(cwd, data, save_dir, max_update, *extra):
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", CONFIG_DIR, "--config-name",
                    "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq/", f"task.data={data}",
                    f"checkpoint.save_dir={save_dir}", f"optimization.max_update={max_update}",
                    "model.transformer.encoder.layers=2", "model.average_top_k_layers=2", "lr_scheduler.warmup_updates=2",
                    "+lr_scheduler.lr_period_updates=20", "dataset.disable_validation=true", "common.log_interval=4",
                    *extra], cwd=cwd)
    return proc.stdout + proc.stderr


def test_text_pretraining_logs_and_saves_teacher(text_corpus, tmp_path):
    log = train(tmp_path, text_corpus, tmp_path / "ckpt", 8)
    assert "ema_decay=0.99" in log and "target_var=" in log and "pred_var=" in log and "num_updates=8" in log
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "data2vec_text"
    assert "encoder.sentence_encoder.layers.0.fc1.weight" in state["model"]
    assert "encoder.regression_head.0.weight" in state["model"]
    assert "_ema" in state["model"] and int(state["model"]["_ema_updates"]) == 7


def test_text_resumed_run_ends_like_an_uninterrupted_one(text_corpus, tmp_path):
    train(tmp_path, text_corpus, tmp_path / "straight", 10)
    train(tmp_path, text_corpus, tmp_path / "resumed", 5)
    train(tmp_path, text_corpus, tmp_path / "resumed", 10)  # picks up checkpoint_last.pt at 5
    a = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoint_last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        if key == "_ema":
            for k in a[key]:
                assert torch.equal(a[key][k], b[key][k]), f"teacher {k}"
        else:
            assert torch.equal(a[key], b[key]), key
