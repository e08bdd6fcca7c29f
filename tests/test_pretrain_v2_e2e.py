"""data2vec 2.0 speech end to end, as a user runs it: fairseq-hydra-train with v2_tiny_cpu.yaml,
resumption, then CTC fine-tuning from the 2.0 checkpoint through fairseq's wav2vec_ctc."""

import os
import re

import pytest
import torch

from .conftest import REPO, VENV_BIN, assert_same_student_and_teacher, run_cli

pytestmark = pytest.mark.slow  # end to end: training runs

# no random crops (see test_pretrain_e2e), the cosine period fixed so it does not depend on max_update
COMMON = [
    "task.max_sample_size=400000", "dataset.disable_validation=true", "dataset.max_tokens=60000",
    "lr_scheduler.warmup_updates=2", "+lr_scheduler.lr_period_updates=10", "model.encoder_layers=2",
    "model.average_top_k_layers=2", "model.ema_anneal_end_step=10", "model.clone_batch=4",
]


def pretrain(cwd, data, save_dir, max_update, *extra):
    return run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/pretraining",
                    "--config-name", "v2_tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={data}",
                    f"checkpoint.save_dir={save_dir}", f"optimization.max_update={max_update}", *COMMON, *extra], cwd=cwd)


def test_v2_pretraining_logs_resumes_exactly_and_fine_tunes_with_ctc(demo_corpus, tmp_path):
    straight = pretrain(tmp_path, demo_corpus, tmp_path / "straight", 12, "common.log_interval=4")
    log = straight.stdout + straight.stderr
    assert "ema_decay=0.99" in log and "target_var=" in log and "wps=" in log
    state = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "data2vec2_audio"
    assert "pos_conv.0.0.weight" in state["model"]["_ema"] and "alibi.scale" in state["model"]["_ema"]

    # hub.load gives the 2.0 model's layers, and they do not depend on the batch (ALiBi included)
    from d2v_fairseq.hub import load

    reps = load(str(tmp_path / "straight" / "checkpoint_last.pt"))
    wave = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    padding = torch.zeros(2, 8000, dtype=torch.bool)
    padding[1, 5000:] = True
    batched, frame_padding = reps.hidden_states(wave, padding)
    alone, _ = reps.hidden_states(wave[1:, :5000])
    n = alone[0].size(1)
    assert reps.num_layers == len(batched) and not frame_padding[1, :n].any()
    assert max((b[1, :n] - a[0]).abs().max().item() for b, a in zip(batched, alone)) < 1e-4

    pretrain(tmp_path, demo_corpus, tmp_path / "resumed", 6)
    pretrain(tmp_path, demo_corpus, tmp_path / "resumed", 12)  # picks up checkpoint_last.pt at 6
    assert_same_student_and_teacher(tmp_path / "straight" / "checkpoint_last.pt",
                                    tmp_path / "resumed" / "checkpoint_last.pt")

    ft = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/finetuning",
                  "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={demo_corpus}",
                  f"model.w2v_path={tmp_path}/straight/checkpoint_last.pt", f"checkpoint.save_dir={tmp_path}/ft",
                  "optimization.max_update=10", "dataset.validate_interval_updates=10",
                  "checkpoint.save_interval_updates=10", "model.freeze_finetune_updates=5"], cwd=tmp_path)
    wers = re.findall(r"valid on 'valid' subset .*\| wer ([\d.]+)", ft.stdout + ft.stderr)
    assert len(wers) == 1
    best = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    assert best["cfg"]["model"]["w2v_args"]["model"]["_name"] == "data2vec2_audio"
    weights = best["model"]
    assert "w2v_encoder.w2v_model.alibi.scale" in weights and not any(".decoder." in k for k in weights)
