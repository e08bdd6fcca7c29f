"""``d2v train``'s own work around fairseq-hydra-train: a recipe's world size fitted to the
processes at hand (update_freq keeps the effective batch), fp16 without CUDA refused in one
line, bf16 pre-training on CPU, the SLURM variables turned into a process group, its options."""

import os

import pytest

from d2v_fairseq.cli.train import split_arguments
from d2v_fairseq.launch import (TrainConfigError, check_checkpoint_writes, check_precision, fit_world_size,
                                hydra_config_path, resolved_recipe, slurm_overrides)

from .conftest import REPO, VENV_BIN, run_cli

PRETRAIN = os.path.join(REPO, "d2v_fairseq", "configs", "audio", "pretraining")
# tri_stage needs explicit steps for a handful of updates
STAGES = ["lr_scheduler.phase_ratio=null", "+lr_scheduler.warmup_steps=1", "+lr_scheduler.hold_steps=1",
          "+lr_scheduler.decay_steps=1"]
TINY = ["model.encoder_layers=2", "model.encoder_embed_dim=32", "model.encoder_ffn_embed_dim=64",
        "model.encoder_attention_heads=2", "+model.conv_feature_layers='[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2'",
        "model.conv_pos=15", "+model.conv_pos_groups=2", "model.pos_conv_depth=2", "model.average_top_k_layers=2", "common.log_interval=1", "dataset.num_workers=0"]


def test_a_recipe_for_16_processes_keeps_its_batch_on_one():
    cfg = {"distributed_training": {"distributed_world_size": 16}, "dataset": {"max_tokens": 3800000}}
    overrides, line = fit_world_size(cfg, 1)
    assert overrides == ["distributed_training.distributed_world_size=1", "optimization.update_freq=[16]"]
    assert line.startswith("recipe: 16 processes x 3.8M samples/tokens x update_freq 1; here: 1 process -> "
                           "update_freq 16 (same effective batch")
    overrides, line = fit_world_size({**cfg, "optimization": {"update_freq": [2]}}, 3)  # 32 / 3 rounds up
    assert overrides[-1] == "optimization.update_freq=[11]" and "effective batch 1.03x the recipe's" in line
    assert fit_world_size(cfg, 16) == ([], None)
    assert fit_world_size({}, 1) == ([], None)


def test_fp16_without_cuda_is_one_line_naming_the_alternatives():
    with pytest.raises(TrainConfigError, match="common.fp16=true needs a CUDA GPU.*common.bf16=true"):
        check_precision({"common": {"fp16": True}}, cuda=False)
    check_precision({"common": {"fp16": True}}, cuda=True)
    check_precision({"common": {"bf16": True}}, cuda=False)


def test_asynchronous_checkpoint_writes_are_refused_in_one_line_saying_why(tmp_path):
    with pytest.raises(TrainConfigError, match="write_checkpoints_asynchronously.*in place.*leave it false"):
        check_checkpoint_writes({"checkpoint": {"write_checkpoints_asynchronously": True}})
    check_checkpoint_writes({"checkpoint": {"write_checkpoints_asynchronously": False}})
    # the training processes refuse it too (a run that fairseq-hydra-train started with the rules)
    from d2v_fairseq.training_rules import AsyncWritesRefused, _persistent_save

    written = []
    save = _persistent_save(lambda obj, filename, async_write=False: written.append(filename))
    with pytest.raises(AsyncWritesRefused, match="whole or not at all"):
        save({"x": 1}, str(tmp_path / "checkpoint_1_2.pt"), async_write=True)
    assert written == [] and os.listdir(tmp_path) == []


def test_the_recipe_is_read_with_its_overrides():
    argv = ["--config-dir", PRETRAIN, "--config-name=base_librispeech", "common.fp16=false", "+model.x=1",
            "hydra.run.dir=/x"]
    assert hydra_config_path(argv) == os.path.join(PRETRAIN, "base_librispeech.yaml")
    cfg = resolved_recipe(argv)
    assert cfg["common"]["fp16"] is False and cfg["model"]["x"] == 1
    assert cfg["distributed_training"]["distributed_world_size"] == 16
    assert resolved_recipe(["task.data=/x"]) == {}


def test_own_options_are_split_from_fairseqs():
    options, rest = split_arguments(["--slurm", "--nodes", "2", "--config-dir", "d", "--config-name", "n",
                                     "task.data=x", "--exact-world-size"])
    assert options.slurm and options.nodes == 2 and options.exact_world_size
    assert rest == ["--config-dir", "d", "--config-name", "n", "task.data=x"]


def test_slurm_variables_become_a_gloo_process_group_on_cpu(monkeypatch):
    import d2v_fairseq.launch as launch

    monkeypatch.setattr(launch, "first_slurm_host", lambda nodelist: {"n[1-2]": "n1"}[nodelist])
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "n[1-2]"}
    overrides = slurm_overrides(env, port=1234)
    assert "distributed_training.distributed_init_method=tcp://n1:1234" in overrides
    assert "distributed_training.distributed_rank=1" in overrides
    assert "distributed_training.distributed_world_size=2" in overrides
    assert "distributed_training.distributed_backend=gloo" in overrides
    assert "checkpoint.load_checkpoint_on_all_dp_ranks=true" in overrides
    assert slurm_overrides({}) == []


def test_d2v_train_fp16_on_cpu_exits_2_in_one_line(tmp_path):
    import subprocess

    proc = subprocess.run([os.path.join(VENV_BIN, "d2v"), "train", "--config-dir", PRETRAIN, "--config-name",
                           "base_librispeech", "task.data=/nonexistent", f"checkpoint.save_dir={tmp_path}"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "common.fp16: common.fp16=true needs a CUDA GPU" in proc.stderr


def test_slurm_options_need_slurm(tmp_path):
    import subprocess

    proc = subprocess.run([os.path.join(VENV_BIN, "d2v"), "train", "--nodes", "2", "--config-dir", PRETRAIN,
                           "--config-name", "tiny_cpu"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--nodes is a --slurm option" in proc.stderr


@pytest.mark.slow
def test_base_librispeech_trains_here_with_update_freq_16(demo_corpus, tmp_path):
    proc = run_cli([os.path.join(VENV_BIN, "d2v"), "train", "--config-dir", PRETRAIN, "--config-name",
                    "base_librispeech", f"task.data={demo_corpus}", f"checkpoint.save_dir={tmp_path}",
                    f"hydra.run.dir={tmp_path}/hydra", "common.fp16=false", "optimization.max_update=2",
                    "dataset.max_tokens=60000", "task.min_sample_size=8000", "task.max_sample_size=40000",
                    "common.log_format=simple", *TINY, *STAGES])
    out = proc.stdout + proc.stderr
    assert "recipe: 16 processes x 60000 samples/tokens x update_freq 1; here: 1 process -> update_freq 16 " \
           "(same effective batch" in out
    assert "'update_freq': [16]" in out and "num_updates=2" in out.replace(" ", "") or "num_updates 2" in out
    assert os.path.isfile(tmp_path / "checkpoint_last.pt")


@pytest.mark.slow
@pytest.mark.parametrize("config, schedule", [
    ("tiny_cpu", [*STAGES[:1], "+lr_scheduler.warmup_steps=2", "+lr_scheduler.hold_steps=8",
                  "+lr_scheduler.decay_steps=2"]),
    ("v2_tiny_cpu", ["lr_scheduler.warmup_updates=2"]),
])
def test_bf16_pretraining_on_cpu_has_a_finite_falling_loss(demo_corpus, tmp_path, config, schedule):
    import re

    proc = run_cli([os.path.join(VENV_BIN, "d2v"), "train", "--config-dir", PRETRAIN, "--config-name", config,
                    f"task.data={demo_corpus}", f"checkpoint.save_dir={tmp_path}", f"hydra.run.dir={tmp_path}/h",
                    "common.bf16=true", "optimization.max_update=12", "common.log_interval=1", *schedule])
    losses = [float(x) for x in re.findall(r"train_inner.*? loss=([-\d.e+]+|nan|inf)", proc.stdout + proc.stderr)]
    assert len(losses) >= 10 and all(l == l and abs(l) < 1e4 for l in losses)
    assert min(losses[-3:]) < losses[0]


def test_keys_a_recipe_does_not_spell_out_are_added_for_registry_choices():
    from d2v_fairseq.launch import addable_overrides

    cfg = {"task": {"_name": "d2v_audio_pretraining", "data": "???"}, "common": {"seed": 1}}
    assert addable_overrides(["task.skip_bad=true", "task.data=/d", "common.cpu=true", "+task.x=1",
                              "--config-name", "tiny"], cfg) == [
        "+task.skip_bad=true", "task.data=/d", "common.cpu=true", "+task.x=1", "--config-name", "tiny"]


@pytest.mark.parametrize("config, max_update", [("base_librispeech", 2), ("tiny_cpu", 3), ("v2_tiny_cpu", 3)])
def test_a_schedule_with_an_empty_phase_is_fitted_in_one_line(config, max_update):
    from d2v_fairseq.launch import fit_schedule, load_config

    cfg = load_config(os.path.join(REPO, "examples", "audio", "pretraining", f"{config}.yaml"),
                      [f"optimization.max_update={max_update}"])
    overrides, line = fit_schedule(cfg)
    name = cfg["lr_scheduler"]["_name"]
    if name == "tri_stage":
        steps = {o.split("=")[0].lstrip("+").split(".")[-1]: o.split("=")[1] for o in overrides}
        assert steps["phase_ratio"] == "null" and int(steps["decay_steps"]) >= 1
        assert int(steps["warmup_steps"]) + int(steps["hold_steps"]) + int(steps["decay_steps"]) == max_update
        assert "decay phase of 0 updates" in line
    else:
        assert overrides == ["lr_scheduler.warmup_updates=1"] and "no update to decay over" in line
    assert fit_schedule(load_config(os.path.join(REPO, "examples", "audio", "pretraining", f"{config}.yaml"),
                                    ["optimization.max_update=100000"])) == ([], None)
