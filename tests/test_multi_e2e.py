"""data2vec 2.0 (data2vec_multi) end to end on all three modalities, as a user runs it:
fairseq-hydra-train with the package's v2_tiny_cpu configs (pre-training, exact resumption,
fine-tuning, `d2v evaluate`), and fairseq's own released v2 YAMLs with `common.user_dir`
pointing here and only path, size and hardware overrides."""

import os
import re

import pytest
import torch

from .conftest import REPO, VENV_BIN, assert_same_student_and_teacher, run_cli

pytestmark = pytest.mark.slow  # end to end: training runs

HYDRA = os.path.join(VENV_BIN, "fairseq-hydra-train")
USER_DIR = f"common.user_dir={REPO}/d2v_fairseq"
TINY = {  # shrinks the tiny configs further; the cosine period fixed so it does not depend on max_update
    "audio": ["task.max_sample_size=400000", "dataset.disable_validation=true", "dataset.max_tokens=60000",
              "model.clone_batch=4"],
    "vision": ["dataset.batch_size=8", "model.clone_batch=4"],
    "text": ["task.tokens_per_sample=64", "model.modalities.text.max_source_positions=64", "model.clone_batch=4",
             "dataset.batch_size=8"],
}
COMMON = ["model.depth=2", "model.average_top_k_layers=2", "lr_scheduler.warmup_updates=2",
          "+lr_scheduler.lr_period_updates=20", "model.ema_anneal_end_step=10", "common.log_interval=2"]


def pretrain(modality, cwd, data, save_dir, max_update, *extra):
    proc = run_cli([HYDRA, "--config-dir", f"{REPO}/examples/{modality}/pretraining", "--config-name", "v2_tiny_cpu",
                    USER_DIR, f"task.data={data}", f"checkpoint.save_dir={save_dir}",
                    f"optimization.max_update={max_update}", *TINY[modality], *COMMON, *extra], cwd=cwd)
    return proc.stdout + proc.stderr


def evaluate(checkpoint, data, *extra):
    return run_cli([os.path.join(VENV_BIN, "d2v"), "evaluate", str(checkpoint), str(data), *extra]).stdout


@pytest.mark.parametrize("modality", ["audio", "vision", "text"])
def test_v2_pretraining_logs_saves_the_teacher_and_resumes_exactly(modality, demo_corpus, image_folder,
                                                                  text_corpus, tmp_path):
    data = {"audio": demo_corpus, "vision": image_folder, "text": text_corpus}[modality]
    log = pretrain(modality, tmp_path, data, tmp_path / "straight", 8)
    assert "target_var=" in log and "pred_var=" in log and "masked_pct=" in log and "num_updates=8" in log
    state = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "data2vec_multi"
    teacher = state["model"]["_ema"]
    if modality == "text":  # the teacher copies the shared blocks only, keyed as the reference keys them
        assert "1.mlp.fc2.weight" in teacher
    else:
        name = "AUDIO" if modality == "audio" else "IMAGE"
        assert "blocks.1.mlp.fc2.weight" in teacher and any(k.startswith(f"modality_encoders.{name}.") for k in teacher)
    pretrain(modality, tmp_path, data, tmp_path / "resumed", 5)
    pretrain(modality, tmp_path, data, tmp_path / "resumed", 8)  # picks up checkpoint_last.pt at 5
    assert_same_student_and_teacher(tmp_path / "straight" / "checkpoint_last.pt",
                                    tmp_path / "resumed" / "checkpoint_last.pt")


def test_v2_speech_fine_tunes_with_wav2vec_ctc_and_evaluates(demo_corpus, tmp_path):
    pretrain("audio", tmp_path, demo_corpus, tmp_path / "pre", 6)
    ft = run_cli([HYDRA, "--config-dir", f"{REPO}/examples/audio/finetuning", "--config-name", "tiny_cpu", USER_DIR,
                  f"task.data={demo_corpus}", f"model.w2v_path={tmp_path}/pre/checkpoint_last.pt",
                  f"checkpoint.save_dir={tmp_path}/ft", "optimization.max_update=10",
                  "dataset.validate_interval_updates=10", "checkpoint.save_interval_updates=10",
                  "model.freeze_finetune_updates=5"], cwd=tmp_path)
    assert len(re.findall(r"valid on 'valid' subset .*\| wer ([\d.]+)", ft.stdout + ft.stderr)) == 1
    best = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    assert best["cfg"]["model"]["w2v_args"]["model"]["_name"] == "data2vec_multi"
    weights = best["model"]
    assert "w2v_encoder.w2v_model.modality_encoders.AUDIO.alibi_scale" in weights
    assert not any(".decoder." in k or "_ema" in k for k in weights)
    assert re.search(r"on test \(8 items\): wer [\d.]+  cer [\d.]+", evaluate(tmp_path / "ft" / "checkpoint_best.pt",
                                                                         demo_corpus))


def test_v2_images_fine_tune_and_evaluate(image_folder, tmp_path):
    pretrain("vision", tmp_path, image_folder, tmp_path / "pre", 6)
    proc = run_cli([HYDRA, "--config-dir", f"{REPO}/examples/vision/finetuning", "--config-name", "v2_tiny_cpu",
                    USER_DIR, f"task.data={image_folder}", f"model.model_path={tmp_path}/pre/checkpoint_last.pt",
                    f"checkpoint.save_dir={tmp_path}/ft", "optimization.max_update=8", "dataset.batch_size=8",
                    "dataset.validate_interval_updates=4", "checkpoint.save_interval_updates=4"], cwd=tmp_path)
    top1 = re.findall(r"valid on 'val' subset .*\| top1 ([\d.]+)", proc.stdout + proc.stderr)
    assert len(top1) == 2
    best = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    assert best["cfg"]["model"]["_name"] == "mae_image_classification"
    assert {"head.weight", "fc_norm.weight", "model.blocks.0.attn.qkv.weight"} <= set(best["model"])
    pre = torch.load(tmp_path / "pre" / "checkpoint_last.pt", weights_only=False)["model"]
    key = "blocks.0.mlp.fc1.weight"
    assert (best["model"]["model." + key] - pre[key]).abs().max() < 0.05  # started from the student
    assert best["cfg"]["model"]["pretrained_model_args"]["model"]["depth"] == 2  # loads without the pre-trained file
    os.rename(tmp_path / "pre", tmp_path / "pre-moved")
    out = evaluate(tmp_path / "ft" / "checkpoint_best.pt", image_folder)
    assert re.search(r"on val \(12 items\): top1 [\d.]+  top5 100.00", out)


def test_v2_text_fine_tunes_on_sentence_pairs_and_evaluates(text_corpus, rte_bin, tmp_path):
    pretrain("text", tmp_path, text_corpus, tmp_path / "pre", 6)
    proc = run_cli([HYDRA, "--config-dir", f"{REPO}/examples/text/finetuning", "--config-name", "v2_tiny_cpu",
                    USER_DIR, f"task.data={rte_bin}", "task.num_classes=2", "task.max_positions=64",
                    f"model.model_path={tmp_path}/pre/checkpoint_last.pt", f"checkpoint.save_dir={tmp_path}/ft",
                    "optimization.max_update=6", "lr_scheduler.total_num_update=6", "dataset.batch_size=8",
                    "common.log_interval=2"], cwd=tmp_path)
    acc = re.findall(r"valid on 'valid' subset .*\| accuracy ([\d.]+)", proc.stdout + proc.stderr)
    assert acc
    best = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    assert best["cfg"]["model"]["_name"] == "data2vec_text_classification"
    assert "classification_heads.sentence_classification_head.out_proj.weight" in best["model"]
    assert not any("decoder" in k or "_ema" in k for k in best["model"])
    assert best["cfg"]["model"]["pretrained_model_args"]["model"]["depth"] == 2  # loads without the pre-trained file
    os.rename(tmp_path / "pre", tmp_path / "pre-moved")
    out = evaluate(tmp_path / "ft" / "checkpoint_best.pt", rte_bin, "--split", "valid")
    assert re.search(r"accuracy ([\d.]+)", out)


REFERENCE_V2 = os.path.join(os.path.dirname(__import__("fairseq").__file__), "examples", "data2vec", "config", "v2")
# what a user changes to run the released YAMLs on this machine: paths, sizes, CPU, one process
HARDWARE = ["common.fp16=false", "common.cpu=true", "common.tensorboard_logdir=null", "common.log_interval=2",
            "distributed_training.distributed_world_size=1", "optimization.max_update=3", "model.depth=2",
            "+model.num_heads=4", "model.average_top_k_layers=2", "model.clone_batch=2"]
REFERENCE_RUNS = {
    "base_audio_only_task": ["dataset.max_tokens=60000", "dataset.num_workers=0", "task.min_sample_size=8000",
                             "model.embed_dim=64",
                             "model.modalities.audio.feature_encoder_spec='[(64, 10, 5)] + [(64, 3, 2)] * 6'",
                             "model.modalities.audio.conv_pos_groups=4", "model.modalities.audio.decoder.decoder_dim=32"],
    "base_images_only_task": ["dataset.batch_size=4", "dataset.num_workers=0", "+task.input_size=32",
                              "+model.modalities.image.input_size=32", "+model.modalities.image.patch_size=8",
                              "+model.modalities.image.embed_dim=64", "+model.embed_dim=64",
                              "model.modalities.image.prenet_depth=1", "model.modalities.image.decoder.decoder_dim=32",
                              "model.modalities.image.decoder.decoder_layers=2"],
    "base_text_only_task": ["dataset.batch_size=4", "task.tokens_per_sample=64",
                            "+model.modalities.text.max_source_positions=64", "model.embed_dim=64",
                            "model.modalities.text.decoder.decoder_dim=32"],
}


@pytest.mark.parametrize("name", sorted(REFERENCE_RUNS))
def test_the_released_v2_yamls_train_with_this_user_dir(name, demo_corpus, image_folder, text_corpus, tmp_path):
    # the images as the reference reads them: task.data is an image-folder root (train/CLASS/*, val/...)
    data = {"base_audio_only_task": demo_corpus, "base_images_only_task": image_folder.parent / "img",
            "base_text_only_task": text_corpus}[name]
    proc = run_cli([HYDRA, "--config-dir", REFERENCE_V2, "--config-name", name, USER_DIR, f"task.data={data}",
                    f"checkpoint.save_dir={tmp_path}/ckpt", *HARDWARE, *REFERENCE_RUNS[name]], cwd=tmp_path,
                   env={"D2V_CACHE": str(tmp_path / "cache")})
    log = proc.stdout + proc.stderr
    assert '"num_updates": "2"' in log and "target_var" in log
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "data2vec_multi" and "_ema" in state["model"]
