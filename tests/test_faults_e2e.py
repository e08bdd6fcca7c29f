"""Faults as long runs meet them, through `d2v train` (v1 and data2vec 2.0 speech pre-training):
a SIGKILL during a checkpoint save or at a random moment, then the same command resumes and ends
equal to an uninterrupted run; a finished run re-run changes nothing; a full disk is one line
with exit 2 and a readable checkpoint_last.pt; a NaN loss is one line naming the update."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from d2v_fairseq.checkpoints import readable, stopped_early, updates_in

from .conftest import REPO, assert_same_student_and_teacher

pytestmark = pytest.mark.slow  # end to end: training runs

FAMILIES = {
    "v1": ["tiny_cpu", "model.encoder_layers=2", "model.average_top_k_layers=2", "model.ema_anneal_end_step=10",
           "dataset.max_tokens=150000", "lr_scheduler.phase_ratio=null", "+lr_scheduler.warmup_steps=2",
           "+lr_scheduler.hold_steps=4", "+lr_scheduler.decay_steps=6"],
    "v2": ["v2_tiny_cpu", "model.depth=2", "model.average_top_k_layers=2", "model.ema_anneal_end_step=10",
           "dataset.max_tokens=60000", "model.clone_batch=4", "lr_scheduler.warmup_updates=2",
           "+lr_scheduler.lr_period_updates=20"],
}
MAX_UPDATE = 10


def command(family, data, save_dir, *extra):
    name, *overrides = FAMILIES[family]
    return [sys.executable, "-m", "d2v_fairseq", "train", "--config-dir", f"{REPO}/examples/audio/pretraining",
            "--config-name", name, f"task.data={data}", f"checkpoint.save_dir={save_dir}",
            f"hydra.run.dir={save_dir}/hydra", f"optimization.max_update={MAX_UPDATE}",
            "task.max_sample_size=400000", "dataset.disable_validation=true", "checkpoint.save_interval_updates=2",
            "checkpoint.keep_interval_updates=3",
            *overrides, *extra]


def run(cmd, env=None, check=True):
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})), capture_output=True,
                          text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def uninterrupted(demo_corpus, tmp_path_factory):
    """family -> the save_dir of an uninterrupted run to MAX_UPDATE (each made once, on first use)."""
    runs = {}

    def get(family):
        if family not in runs:
            runs[family] = tmp_path_factory.mktemp(f"straight-{family}")
            run(command(family, demo_corpus, runs[family]))
        return runs[family]
    return get


@pytest.fixture(params=["v1", "v2"])
def straight(request, uninterrupted):
    """(family, save_dir of its uninterrupted run), for v1 and 2.0."""
    return request.param, uninterrupted(request.param)


def assert_every_checkpoint_loads(save_dir, killed_while_writing=False):
    """Every checkpoint name loads; a ``.tmp`` file (an unfinished write) only after a kill."""
    names = [n for n in os.listdir(save_dir) if n.endswith(".pt")]
    assert names and all(readable(os.path.join(save_dir, n)) for n in names), names
    if not killed_while_writing:
        assert not [n for n in os.listdir(save_dir) if n.endswith(".tmp")]


def test_a_kill_inside_a_save_resumes_to_the_same_model(straight, demo_corpus, tmp_path):
    family, reference = straight
    save_dir = tmp_path / "run"
    # killed after the 2nd write (checkpoint_1_4.pt) and before it is linked as checkpoint_last.pt
    killed = run(command(family, demo_corpus, save_dir), env={"D2V_FAULT": "kill-after-write:2"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert_every_checkpoint_loads(save_dir)
    assert updates_in(str(save_dir / "checkpoint_1_4.pt")) == 4
    assert updates_in(str(save_dir / "checkpoint_last.pt")) == 2  # the previous complete save
    run(command(family, demo_corpus, save_dir))  # the same command resumes
    assert updates_in(str(save_dir / "checkpoint_last.pt")) == MAX_UPDATE
    assert_same_student_and_teacher(reference / "checkpoint_last.pt", save_dir / "checkpoint_last.pt")


def test_a_kill_at_a_random_moment_never_leaves_a_bad_checkpoint(straight, demo_corpus, tmp_path):
    family, reference = straight
    save_dir = tmp_path / "run"
    cmd = command(family, demo_corpus, save_dir)
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # start-up takes several seconds; then an update and a save follow every second or so
    time.sleep(random.Random(f"{family}-kill").uniform(7, 15))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if os.path.isdir(save_dir) and any(n.endswith(".pt") for n in os.listdir(save_dir)):
        assert_every_checkpoint_loads(save_dir, killed_while_writing=True)
    run(cmd)
    assert_every_checkpoint_loads(save_dir)  # the resumed run removed any unfinished write
    assert updates_in(str(save_dir / "checkpoint_last.pt")) == MAX_UPDATE
    assert_same_student_and_teacher(reference / "checkpoint_last.pt", save_dir / "checkpoint_last.pt")


def test_a_finished_run_stays_finished(straight, demo_corpus):
    family, save_dir = straight
    before = {n: os.stat(save_dir / n).st_mtime_ns for n in os.listdir(save_dir) if n.endswith(".pt")}
    proc = run(command(family, demo_corpus, save_dir))
    assert f"holds {MAX_UPDATE} updates" in proc.stdout and "finished" in proc.stdout
    assert {n: os.stat(save_dir / n).st_mtime_ns for n in os.listdir(save_dir) if n.endswith(".pt")} == before


def test_a_run_stopped_early_stays_stopped(demo_corpus, tmp_path):
    # a learning rate of 0 keeps the student, so validation stops improving at once
    save_dir = tmp_path / "run"
    cmd = command("v1", demo_corpus, save_dir, "optimization.lr=[0.0]", "dataset.disable_validation=false",
                  "dataset.validate_interval_updates=2", "checkpoint.patience=1", "optimization.max_update=40")
    first = run(cmd)
    record = stopped_early(str(save_dir))
    assert record is not None and record["metric"] == "loss" and record["patience"] == 1, first.stdout[-2000:]
    assert record["updates"] < 40 and f"stopped early at update {record['updates']}" in first.stdout
    assert updates_in(str(save_dir / "checkpoint_last.pt")) == record["updates"]
    before = {n: os.stat(save_dir / n).st_mtime_ns for n in os.listdir(save_dir) if n.endswith(".pt")}
    again = run(cmd)
    assert "stopped early" in again.stdout and "finished" in again.stdout and "taking over" not in again.stderr
    assert {n: os.stat(save_dir / n).st_mtime_ns for n in os.listdir(save_dir) if n.endswith(".pt")} == before


def test_an_unreadable_last_checkpoint_resumes_from_the_newest_readable(uninterrupted, demo_corpus, tmp_path):
    family = "v2"  # the rule is the launcher's, the same for every family
    reference = uninterrupted(family)
    save_dir = tmp_path / "run"
    run(command(family, demo_corpus, save_dir, "optimization.max_update=6"))
    last = save_dir / "checkpoint_last.pt"
    saved = sorted(save_dir.glob("checkpoint_*_*.pt"), key=lambda p: updates_in(str(p)))
    newest, previous = saved[-1], saved[-2]
    assert updates_in(str(newest)) == 6
    assert os.stat(last).st_ino == os.stat(newest).st_ino  # one write, two names: a link, not a copy
    data = last.read_bytes()
    os.remove(last)  # cut a copy of its own, not checkpoint_2_6.pt
    last.write_bytes(data[: len(data) // 3])
    os.remove(newest)  # the newest readable one is now update 4
    proc = run(command(family, demo_corpus, save_dir))
    assert f"resuming from {previous.name} (update 4)" in proc.stderr
    assert (save_dir / "checkpoint_last.pt.unreadable").is_file()
    assert_same_student_and_teacher(reference / "checkpoint_last.pt", save_dir / "checkpoint_last.pt")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_line_and_a_rerun_resumes(demo_corpus, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=7m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        cmd = command("v1", demo_corpus, disk / "ckpt", "hydra.run.dir=" + str(tmp_path / "hydra"))
        proc = run(cmd, check=False)  # checkpoints of about 3 MB: the third save does not fit
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "will run out of space" in proc.stderr  # said before training
        error = [line for line in proc.stderr.splitlines() if line.startswith("d2v: error:")]
        assert len(error) == 1 and "no space left" in error[0] and "free" in error[0], proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        done = updates_in(str(disk / "ckpt" / "checkpoint_last.pt"))
        assert 0 < done < MAX_UPDATE and readable(str(disk / "ckpt" / "checkpoint_last.pt"))
        assert not [n for n in os.listdir(disk / "ckpt") if n.endswith(".tmp")]
        subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True)
        run(cmd)
        assert updates_in(str(disk / "ckpt" / "checkpoint_last.pt")) == MAX_UPDATE
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_nan_loss_is_one_line_naming_the_update(demo_corpus, tmp_path):
    proc = run(command("v1", demo_corpus, tmp_path / "ckpt", "optimization.lr=[1e30]"), check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    error = [line for line in proc.stderr.splitlines() if line.startswith("d2v: error:")]
    assert len(error) == 1 and "NaN/Inf" in error[0] and "update " in error[0] and "optimization.lr" in error[0]
    assert "Traceback" not in proc.stderr
    for name in os.listdir(tmp_path / "ckpt"):
        if name.endswith(".pt"):
            state = torch.load(tmp_path / "ckpt" / name, weights_only=False)
            assert all(torch.isfinite(v).all() for v in state["model"].values() if torch.is_tensor(v))


def test_train_names_every_broken_recording_at_once_and_skip_bad_trains(demo_corpus, tmp_path):
    import shutil
    from pathlib import Path

    data = tmp_path / "data"
    shutil.copytree(demo_corpus, data)
    demo_corpus = Path(demo_corpus)
    root, *lines = (data / "train.tsv").read_text().splitlines()
    broken = {}
    for number in (3, 8, 12):  # manifest lines: a text file, a WAV cut short, one missing
        rel = lines[number - 2].split("\t")[0]
        target = os.path.join(root, rel)
        copy = data / f"broken{number}.wav"
        if number == 3:
            copy.write_text("not audio")
        elif number == 8:
            copy.write_bytes(open(target, "rb").read()[:2000])
        lines[number - 2] = f"{copy if number != 12 else data / 'gone.wav'}\t{lines[number - 2].split(chr(9))[1]}"
        broken[number] = copy
    (data / "train.tsv").write_text("/\n" + "\n".join(
        l if l.startswith("/") else os.path.join(root, l) for l in lines) + "\n")
    (data / "valid.tsv").write_text("/\n" + "\n".join(
        os.path.join(root, l) for l in (demo_corpus / "valid.tsv").read_text().splitlines()[1:]) + "\n")
    proc = run(command("v1", data, tmp_path / "ckpt", "optimization.max_update=2"), check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    error = proc.stderr[proc.stderr.index("d2v: error:"):]
    assert "3 of 24 lines cannot be used" in error.splitlines()[0]
    for number in (3, 8, 12):
        assert f"train.tsv:{number}: " in error
    proc = run(command("v1", data, tmp_path / "ckpt", "optimization.max_update=2", "task.skip_bad=true"))
    assert "3 of 24 recordings left out" in proc.stdout + proc.stderr
    assert updates_in(str(tmp_path / "ckpt" / "checkpoint_last.pt")) == 2
