"""Faults as long runs meet them, through `d2v train` (v1 and data2vec 2.0 speech pre-training):
a SIGKILL inside a checkpoint write, between the links of a save, or at a random moment while the
run trains, then the same command resumes (from the update it says) and ends equal to an
uninterrupted run; a finished run re-run changes nothing; a full disk is one line with exit 2 and
a readable checkpoint_last.pt; a NaN loss is one line naming the update, the checkpoint before it
whole and finite; a one-node run whose workers fairseq spawns keeps every rule in every worker.

The faults come from tests/helpers/faults/sitecustomize.py (on the PYTHONPATH of the runs that ask
for one): nothing of them is in the package's write path.
"""

import os
import random
import re
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
FAULTS = os.path.join(REPO, "tests", "helpers", "faults")  # sitecustomize.py: the faults, by variable


def command(family, data, save_dir, *extra):
    name, *overrides = FAMILIES[family]
    return [sys.executable, "-m", "d2v_fairseq", "train", "--config-dir", f"{REPO}/examples/audio/pretraining",
            "--config-name", name, f"task.data={data}", f"checkpoint.save_dir={save_dir}",
            f"hydra.run.dir={save_dir}/hydra", f"optimization.max_update={MAX_UPDATE}",
            "task.max_sample_size=400000", "dataset.disable_validation=true", "checkpoint.save_interval_updates=2",
            "checkpoint.keep_interval_updates=3",
            *overrides, *extra]


def environment(faults=None):
    """The runs' environment; ``faults``: variables of tests/helpers/faults/sitecustomize.py."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if faults:
        env.update(faults, PYTHONPATH=os.pathsep.join(filter(None, [FAULTS, os.environ.get("PYTHONPATH")])))
    return env


def run(cmd, faults=None, check=True):
    proc = subprocess.run(cmd, env=environment(faults), capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def resumed_from(proc) -> int:
    """The update a run says it resumed from (fairseq's "Loaded checkpoint ... @ N updates")."""
    found = re.findall(r"Loaded checkpoint \S+ \(epoch \d+ @ (\d+) updates\)", proc.stdout + proc.stderr)
    assert found, "the run did not resume from a checkpoint:\n" + proc.stdout[-2000:]
    return int(found[-1])


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


@pytest.mark.parametrize("where, killed_at", [
    ("checkpoint_*_*.pt:2", "inside the write of checkpoint_1_4.pt: its data complete, before its rename"),
    ("checkpoint_last.pt:2", "between the links of the save at update 4: checkpoint_1_4.pt whole, not yet last"),
])
def test_a_kill_inside_a_save_resumes_to_the_same_model(straight, demo_corpus, tmp_path, where, killed_at):
    family, reference = straight
    save_dir = tmp_path / "run"
    killed = run(command(family, demo_corpus, save_dir), faults={"D2V_TEST_KILL_BEFORE_REPLACE": where},
                 check=False)
    assert killed.returncode == -signal.SIGKILL, killed_at
    names = sorted(os.listdir(save_dir))
    # the write in flight left only its temporary; every name a resume reads is whole
    assert [n for n in names if n.endswith(".tmp")] == (
        ["checkpoint_1_4.pt.tmp"] if where.startswith("checkpoint_*") else ["checkpoint_last.pt.tmp"]), names
    assert_every_checkpoint_loads(save_dir, killed_while_writing=True)
    assert updates_in(str(save_dir / "checkpoint_last.pt")) == 2  # the previous complete save
    assert ("checkpoint_1_4.pt" in names) == where.startswith("checkpoint_last")
    resumed = run(command(family, demo_corpus, save_dir))  # the same command resumes
    assert resumed_from(resumed) == 2 and "unfinished write" in resumed.stderr
    assert updates_in(str(save_dir / "checkpoint_last.pt")) == MAX_UPDATE
    assert_every_checkpoint_loads(save_dir)
    assert_same_student_and_teacher(reference / "checkpoint_last.pt", save_dir / "checkpoint_last.pt")


def test_a_kill_at_a_random_moment_never_leaves_a_bad_checkpoint(straight, demo_corpus, tmp_path):
    family, reference = straight
    save_dir = tmp_path / "run"
    cmd = command(family, demo_corpus, save_dir)
    proc = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait for the save at update 4, then kill at a random moment of the updates and saves that follow
    deadline = time.time() + 300
    while not (save_dir / "checkpoint_1_4.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    delay = random.uniform(0.0, 0.4)
    time.sleep(delay)
    assert proc.poll() is None, f"the run ended before the kill (delay {delay:.2f} s after update 4)"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_every_checkpoint_loads(save_dir, killed_while_writing=True)
    at_kill = updates_in(str(save_dir / "checkpoint_last.pt"))
    assert 4 <= at_kill < MAX_UPDATE, f"killed {delay:.2f} s after update 4"
    resumed = run(cmd)
    assert resumed_from(resumed) == at_kill
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
    proc = run(command("v1", demo_corpus, tmp_path / "ckpt"), faults={"D2V_TEST_NAN_AT_UPDATE": "5"}, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    error = [line for line in proc.stderr.splitlines() if line.startswith("d2v: error:")]
    assert len(error) == 1 and "NaN/Inf" in error[0] and "update 5:" in error[0] and "optimization.lr" in error[0]
    assert "checkpoint_last.pt (update 4) is the last good checkpoint" in error[0]
    assert "Traceback" not in proc.stderr
    kept = tmp_path / "ckpt" / "checkpoint_last.pt"
    state = torch.load(kept, weights_only=False)
    assert updates_in(str(kept)) == 4
    tensors = [v for v in state["model"].values() if torch.is_tensor(v)] + list(state["model"]["_ema"].values())
    assert len(tensors) > 10 and all(torch.isfinite(v).all() for v in tensors)


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


SPAWN = ["common.cpu=true", "distributed_training.distributed_backend=gloo",
         "distributed_training.distributed_world_size=2", "dataset.max_tokens=60000"]


def test_a_run_whose_workers_fairseq_spawns_keeps_every_rule(demo_corpus, tmp_path):
    # one node, two devices, no torchrun: fairseq starts each rank with torch.multiprocessing.spawn
    save_dir = tmp_path / "run"
    cmd = command("v1", demo_corpus, save_dir, *SPAWN, "optimization.max_update=6")
    cmd.insert(cmd.index("train") + 1, "--exact-world-size")
    first = run(cmd, faults={"D2V_TEST_DEVICES": "2"})
    assert "distributed init (rank 1)" in first.stdout + first.stderr  # two processes trained
    last = save_dir / "checkpoint_last.pt"
    assert updates_in(str(last)) == 6
    assert os.stat(last).st_ino == os.stat(save_dir / "checkpoint_1_6.pt").st_ino  # a link: the worker's rules
    assert (save_dir / ".d2v-train.lock").is_file()
    before = {n: os.stat(save_dir / n).st_mtime_ns for n in os.listdir(save_dir) if n.endswith(".pt")}
    again = run(cmd, faults={"D2V_TEST_DEVICES": "2"})
    assert "holds 6 updates" in again.stdout and "finished" in again.stdout
    assert again.stdout.count("the run is finished") == 1  # said by rank 0 only
    assert {n: os.stat(save_dir / n).st_mtime_ns for n in os.listdir(save_dir) if n.endswith(".pt")} == before


@pytest.mark.parametrize("family, depth_key", [("v1", "model.encoder_layers"), ("v2", "model.depth")])
def test_a_model_the_config_cannot_build_is_one_line_in_every_worker(demo_corpus, tmp_path, family, depth_key):
    cmd = command(family, demo_corpus, tmp_path / "run", *SPAWN, "model.average_top_k_layers=4")
    cmd.insert(cmd.index("train") + 1, "--exact-world-size")
    proc = run(cmd, faults={"D2V_TEST_DEVICES": "2"}, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("d2v: error:")]
    assert errors and all("model.average_top_k_layers: 4 is outside 1..2" in e and f"{depth_key}=2" in e
                          for e in errors), proc.stderr[-2000:]
