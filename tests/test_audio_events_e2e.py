"""Audio tagging end to end: fairseq-hydra-train with examples/audio/classification/tiny_cpu.yaml
from our pre-trained checkpoint and from one written by fairseq's own data2vec_audio; mAP logged
at validation, the best checkpoint kept, the evaluation command prints mAP."""

import os
import re
import sys

import pytest
import torch

from d2v_fairseq.demos.sound_events import SOUND_DIR, build_corpus

from .conftest import REPO, VENV_BIN, run_cli

pytestmark = [pytest.mark.slow,  # end to end: training runs
              pytest.mark.skipif(not os.path.isdir(SOUND_DIR), reason="needs Debian's sound-theme-freedesktop "
                                "(apt-get install sound-theme-freedesktop; `make test` does it)")]


@pytest.fixture(scope="module")
def sound_corpus(tmp_path_factory):
    return build_corpus(str(tmp_path_factory.mktemp("events")), {"pretrain": 24, "train": 16, "valid": 12}, seconds=1.0)


def finetune(cwd, data, model_path, save_dir, *extra):
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/classification",
                    "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={data}",
                    f"model.model_path={model_path}", f"checkpoint.save_dir={save_dir}", "optimization.max_update=6",
                    "lr_scheduler.warmup_updates=2", "+lr_scheduler.lr_period_updates=20",
                    "dataset.validate_interval_updates=3", "checkpoint.save_interval_updates=3", "common.log_interval=2",
                    # the release's fine-tuning regularizers, which the tiny config leaves off
                    "dataset.max_tokens=64000", "model.apply_mask=true", "model.source_mixup=0.5", *extra],
                   cwd=cwd)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("pretraining", [["tiny_cpu", "model.encoder_layers=2"],
                                         ["v2_tiny_cpu", "model.clone_batch=2", "model.depth=2"]], ids=["v1", "v2"])
def test_tagger_finetunes_from_our_checkpoint_and_logs_map(sound_corpus, tmp_path, pretraining):
    config, *extra = pretraining
    run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/pretraining",
             "--config-name", config, f"common.user_dir={REPO}/d2v_fairseq", f"task.data={sound_corpus}",
             f"checkpoint.save_dir={tmp_path}/pre", "optimization.max_update=4", "dataset.disable_validation=true",
             "dataset.train_subset=pretrain", "task.min_sample_size=8000", "model.average_top_k_layers=2", *extra],
            cwd=tmp_path)
    log = finetune(tmp_path, sound_corpus, tmp_path / "pre" / "checkpoint_last.pt", tmp_path / "ft")
    maps = re.findall(r"valid on 'valid' subset .*\| mAP ([\d.]+)", log)
    assert len(maps) == 2 and all(0 < float(m) <= 100 for m in maps)
    best = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    pretrained_args = best["cfg"]["model"]["pretrained_args"]
    assert pretrained_args.get("encoder_layers", pretrained_args.get("depth")) == 2  # loads without the pre-trained file
    assert "_ema" not in best["model"] and "proj.weight" in best["model"]
    pre = torch.load(tmp_path / "pre" / "checkpoint_last.pt", weights_only=False)["model"]
    key = "encoder.layers.0.fc1.weight" if config == "tiny_cpu" else "blocks.0.mlp.fc1.weight"
    assert (best["model"]["encoder." + key] - pre[key]).abs().max() < 0.02  # started from the student
    proc = run_cli([os.path.join(VENV_BIN, "d2v"), "evaluate", str(tmp_path / "ft" / "checkpoint_best.pt"),
                    sound_corpus, "--split", "valid", "--top", "3"], cwd=tmp_path)
    match = re.search(r"on valid \(12 items\): mAP ([\d.]+)", proc.stdout)
    assert match and float(match.group(1)) == pytest.approx(float(max(maps)), abs=0.05)
    assert len(re.findall(r"^  +[\d.]+  \S", proc.stdout, re.M)) == 3  # --top 3: the three best classes
    # the demos call the scorer directly (not through evaluate()): same mAP, no autograd in the way
    from d2v_fairseq.evaluation import evaluate_tags

    direct = evaluate_tags(str(tmp_path / "ft" / "checkpoint_best.pt"), sound_corpus, "valid")
    assert direct["mAP"] == pytest.approx(float(match.group(1)), abs=0.01)


def test_tagger_finetunes_from_a_reference_written_checkpoint(sound_corpus, tmp_path):
    run_cli([sys.executable, os.path.join(REPO, "tests", "helpers", "reference_audio_checkpoint.py"), str(tmp_path)])
    log = finetune(tmp_path, sound_corpus, tmp_path / "checkpoint.pt", tmp_path / "ft", "optimization.max_update=3")
    assert re.search(r"valid on 'valid' subset .*\| mAP [\d.]+", log)
    assert "loaded the pre-trained student" in log


def test_label_lines_that_do_not_match_the_manifest_stop_loading(sound_corpus, tmp_path):
    import shutil

    from d2v_fairseq.data.audioset import AudioSetError
    from d2v_fairseq.tasks.audio_classification import AudioTaggingTask, AudioTaggingTaskConfig

    from .conftest import setup_task

    data = tmp_path / "data"
    shutil.copytree(sound_corpus, data, ignore=shutil.ignore_patterns("wav"))
    task = setup_task(AudioTaggingTask, AudioTaggingTaskConfig, data=str(data))
    assert task.num_classes() == len((data / "classes.txt").read_text().split("\n")) - 1
    task.load_dataset("valid")
    assert task.dataset("valid").collater([task.dataset("valid")[i] for i in range(2)])["target"].shape == (2, task.num_classes())
    lines = (data / "train.lbl").read_text().splitlines()
    (data / "train.lbl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(AudioSetError, match=r"train\.lbl: 15 label lines but 16 clips"):
        task.load_dataset("train")
