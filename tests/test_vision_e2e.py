"""Vision end to end, as a user runs it: fairseq-hydra-train with tiny_cpu.yaml on an image
folder; a killed and resumed run equals an uninterrupted one; fine-tuning logs top-1/top-5
and keeps the best checkpoint; the evaluation command prints top-1/top-5."""

import os
import re

import numpy as np
import pytest
import torch

from .conftest import REPO, VENV_BIN, assert_same_student_and_teacher, run_cli

pytestmark = pytest.mark.slow  # end to end: training runs

PRETRAIN_DIR = os.path.join(REPO, "examples", "vision", "pretraining")
FINETUNE_DIR = os.path.join(REPO, "examples", "vision", "finetuning")


def pretrain(cwd, data, save_dir, max_update, *extra):
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", PRETRAIN_DIR, "--config-name",
                    "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={data}",
                    f"checkpoint.save_dir={save_dir}", f"optimization.max_update={max_update}", "dataset.batch_size=8",
                    "model.depth=2", "model.embed_dim=32", "model.average_top_k_layers=2", "lr_scheduler.warmup_updates=2",
                    "+lr_scheduler.lr_period_updates=20",  # the cosine period must not depend on max_update
                    "common.log_interval=2", *extra], cwd=cwd)
    return proc.stdout + proc.stderr


def test_vision_pretraining_logs_and_saves_teacher(image_folder, tmp_path):
    log = pretrain(tmp_path, image_folder, tmp_path / "ckpt", 4)
    assert "ema_decay=0.998" in log and "target_var=" in log and "num_updates=4" in log
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "data2vec_vision"
    assert "_ema" in state["model"] and "blocks.1.attn.qkv.weight" in state["model"]["_ema"]


def test_vision_resumed_run_ends_like_an_uninterrupted_one(image_folder, tmp_path):
    pretrain(tmp_path, image_folder, tmp_path / "straight", 8)
    pretrain(tmp_path, image_folder, tmp_path / "resumed", 5)  # stops mid-epoch (3 batches per epoch)
    pretrain(tmp_path, image_folder, tmp_path / "resumed", 8)
    assert_same_student_and_teacher(tmp_path / "straight" / "checkpoint_last.pt", tmp_path / "resumed" / "checkpoint_last.pt")


def finetune(cwd, data, save_dir, model_path, *extra):
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", FINETUNE_DIR, "--config-name",
                    "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={data}",
                    f"checkpoint.save_dir={save_dir}", f"model.model_path={model_path}", "optimization.max_update=6",
                    "optimizer.groups.default.lr_scheduler.max_update=6", "optimizer.groups.default.lr_scheduler.warmup_updates=2",
                    "dataset.validate_interval_updates=3", "common.log_interval=2", "dataset.batch_size=8", *extra], cwd=cwd)
    return proc.stdout + proc.stderr


def test_finetuning_logs_top1_top5_and_the_evaluation_command_prints_them(image_folder, tmp_path):
    pretrain(tmp_path, image_folder, tmp_path / "pre", 3)
    log = finetune(tmp_path, image_folder, tmp_path / "ft", tmp_path / "pre" / "checkpoint_last.pt")
    assert len(re.findall(r"valid on 'val' subset .*\| top1 [\d.]+ \| top5 [\d.]+", log)) == 2
    assert "Group :" in log  # fairseq's composite optimizer: one group per layer-wise lr scale
    pre = torch.load(tmp_path / "pre" / "checkpoint_last.pt", weights_only=False)["model"]
    ft = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    assert "_ema" not in ft["model"] and "head.weight" in ft["model"]
    # the fine-tuned checkpoint carries the pre-trained config: it loads without that checkpoint
    assert ft["cfg"]["model"]["pretrained_args"]["depth"] == 2 and ft["cfg"]["model"]["num_classes"] == 3
    key = "blocks.0.mlp.0.weight"
    # started from the pre-trained student: 6 small steps move a weight far less than a new init would
    assert (ft["model"]["encoder.encoder." + key] - pre["encoder." + key]).abs().max() < 0.02
    os.rename(tmp_path / "pre", tmp_path / "pre-moved")
    proc = run_cli([os.path.join(VENV_BIN, "d2v"), "evaluate",
                    str(tmp_path / "ft" / "checkpoint_best.pt"), str(image_folder.parent / "img" / "val")], cwd=tmp_path)
    match = re.search(r"\(12 items\): top1 ([\d.]+)  top5 ([\d.]+)", proc.stdout)
    assert match and float(match.group(2)) == 100.0  # 3 classes: the top 5 always hold the label
    # the random-init baseline keeps the architecture, not the weights (another seed, so that
    # its initialization is not the one pre-training started from)
    finetune(tmp_path, image_folder, tmp_path / "rand", tmp_path / "pre-moved" / "checkpoint_last.pt",
             "model.no_pretrained_weights=true", "common.seed=7", "optimization.max_update=1", "optimizer.groups.default.lr_scheduler.max_update=1")
    rand = torch.load(tmp_path / "rand" / "checkpoint_last.pt", weights_only=False)["model"]
    assert (rand["encoder.encoder." + key] - pre["encoder." + key]).abs().max() > 0.02


def perturbed(checkpoint, out):
    """``checkpoint`` with random relative-position bias and layer scales, so that an export
    that mixed up their layout could not match."""
    state = torch.load(checkpoint, weights_only=False)
    generator = torch.Generator().manual_seed(0)
    for key, value in state["model"].items():
        if key.endswith(("relative_position_bias_table", "gamma_1", "gamma_2")):
            state["model"][key] = torch.randn(value.shape, generator=generator)
    torch.save(state, out)
    return out


def test_vision_exports_to_transformers_with_equal_features_and_logits(image_folder, tmp_path):
    transformers = pytest.importorskip("transformers")
    from d2v_fairseq.hub import load_checkpoint
    from d2v_fairseq.interop import export

    pretrain(tmp_path, image_folder, tmp_path / "pre", 2)
    pre = perturbed(tmp_path / "pre" / "checkpoint_last.pt", tmp_path / "pre.pt")
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    assert export(str(pre), str(tmp_path / "hf_pre"))[0] == "Data2VecVisionModel"
    ours, _, _ = load_checkpoint(str(pre))
    hf = transformers.Data2VecVisionModel.from_pretrained(tmp_path / "hf_pre").eval()
    assert hf.config.layer_norm_eps == 1e-6 and hf.config.use_shared_relative_position_bias
    with torch.no_grad():
        expected = ours.eval().extract_features(images)["x"]
        torch.testing.assert_close(hf(pixel_values=images).last_hidden_state, expected, atol=1e-4, rtol=1e-4)
        theirs = hf(pixel_values=images, output_hidden_states=True).hidden_states
    # every layer, as d2v_fairseq.hub.load gives them, equals transformers' hidden states
    from d2v_fairseq.hub import load

    reps = load(str(pre))
    mine, padding = reps.hidden_states(images)
    assert padding is None and len(mine) == len(theirs) == reps.num_layers and reps.downsample_rate == 4
    for m, t in zip(mine, theirs, strict=False):
        torch.testing.assert_close(m, t, atol=1e-4, rtol=1e-4)
    # d2v features on the image folder: the evaluation transform, one (layers, 1 + patches, C) array each
    run_cli([os.path.join(VENV_BIN, "d2v"), "features", str(pre), str(image_folder.parent / "img" / "val"),
             str(tmp_path / "feats"), "--pool", "mean"])
    index = (tmp_path / "feats" / "index.tsv").read_text().splitlines()
    assert len(index) == 1 + 12 and index[1].split("\t")[2] == str(1 + 8 * 8)
    assert np.load(tmp_path / "feats" / f"{index[1].split()[0]}.npy").shape == (reps.num_layers, 32)

    finetune(tmp_path, image_folder, tmp_path / "ft", pre, "optimization.max_update=3",
             "optimizer.groups.default.lr_scheduler.max_update=3")
    ft = tmp_path / "ft" / "checkpoint_last.pt"
    assert export(str(ft), str(tmp_path / "hf_ft"))[0] == "Data2VecVisionForImageClassification"
    ours, _, _ = load_checkpoint(str(ft))
    hf = transformers.Data2VecVisionForImageClassification.from_pretrained(tmp_path / "hf_ft").eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=images).logits, ours.eval()(images), atol=1e-4, rtol=1e-4)
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path / "hf_ft")
    assert processor.crop_size == {"height": 32, "width": 32} and processor.image_mean[0] == 0.485
