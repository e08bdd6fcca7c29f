"""``d2v train --slurm`` on a real SLURM cluster: two nodes on this machine, started by
``tests/helpers/slurm_cluster.sh`` (Debian's slurm-wlm and munge, installed if missing and root).
A 2-node x 1-task job of tiny speech pre-training is one DDP job of world size 2 whose result
equals the same run under ``torchrun --nnodes 2``; a job signalled as timed out (USR2) while it trains is requeued and resumes from
``checkpoint_last.pt`` and ends where the uninterrupted run ends. A corpus job array gives the
one-process transcripts and hubert shards; a shard task signalled the same way is requeued, skips
what it wrote and the array ends with every recording once."""

import glob
import os
import re
import subprocess
import time

import pytest
import torch

from .conftest import REPO, VENV_BIN

pytestmark = pytest.mark.slow  # a cluster and several trainings

SCRIPT = os.path.join(REPO, "tests", "helpers", "slurm_cluster.sh")
PRETRAIN = os.path.join(REPO, "d2v_fairseq", "configs", "audio", "pretraining")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """SLURM_CONF of a running two-node cluster; the daemons it started are stopped after."""
    state = tmp_path_factory.mktemp("slurm")
    proc = subprocess.run(["bash", SCRIPT, "start", str(state)], capture_output=True, text=True, timeout=600)
    if proc.returncode == 3:
        pytest.skip(f"no local SLURM cluster: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield os.path.join(state, "slurm.conf")
    subprocess.run(["bash", SCRIPT, "stop", str(state)], capture_output=True, timeout=60)


def env_with(slurm_conf):
    return dict(os.environ, SLURM_CONF=slurm_conf, OMP_NUM_THREADS="1")


def training_args(corpus, save_dir, updates):
    return ["--config-dir", PRETRAIN, "--config-name", "tiny_cpu", f"task.data={corpus}",
            f"checkpoint.save_dir={save_dir}", f"optimization.max_update={updates}",
            "checkpoint.save_interval_updates=10", "common.log_interval=5", f"hydra.run.dir={save_dir}/hydra"]


def torchrun_two_nodes(corpus, save_dir, updates, port):
    """The same training under torchrun --nnodes 2 (two launches on this machine)."""
    procs = [subprocess.Popen([os.path.join(VENV_BIN, "torchrun"), "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                               "-m", "d2v_fairseq", "train", *training_args(corpus, save_dir, updates)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1")) for rank in (0, 1)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs[0][-3000:] + outputs[1][-3000:]


def saved_updates(save_dir) -> int:
    """The update count of the last checkpoint rank 0 says it saved (0 before any)."""
    logs = glob.glob(os.path.join(save_dir, "slurm", "*_0_log.out"))
    found = re.findall(r"Saved checkpoint .* @ (\d+) updates", open(logs[0]).read()) if logs else []
    return int(found[-1]) if found else 0


def max_difference(a_path, b_path):
    a, b = (torch.load(p, weights_only=False) for p in (a_path, b_path))
    assert a["optimizer_history"][-1]["num_updates"] == b["optimizer_history"][-1]["num_updates"]
    tensors = [k for k in a["model"] if torch.is_tensor(a["model"][k])]
    assert "_ema" in " ".join(a["model"]) or tensors  # the teacher travels in the state too
    return max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in tensors)


@pytest.fixture(scope="module")
def slurm_run(cluster, demo_corpus, tmp_path_factory):
    """A 2-node x 1-task SLURM job of 40 updates: (its save dir, the command's output)."""
    save_dir = tmp_path_factory.mktemp("slurm-job")
    proc = subprocess.run([os.path.join(VENV_BIN, "d2v"), "train", "--slurm", "--partition", "local", "--nodes", "2",
                           "--tasks-per-node", "1", "--time", "20", *training_args(demo_corpus, save_dir, 40)],
                          env=env_with(cluster), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return save_dir, proc.stdout


def test_two_nodes_train_one_job_that_equals_torchrun(slurm_run, demo_corpus, tmp_path):
    save_dir, out = slurm_run
    assert "submitted SLURM job" in out and "finished; logs:" in out
    assert "num_updates=40" in out.replace(" ", "")  # rank 0's log, streamed
    logs = sorted(glob.glob(os.path.join(save_dir, "slurm", "*_log.out")))
    assert len(logs) == 2  # one task per node
    joined = [open(p).read() for p in logs]
    assert "distributed init (rank 0)" in joined[0] and "distributed init (rank 1)" in joined[1]
    assert "'distributed_world_size': 2" in joined[0]
    assert os.path.isfile(os.path.join(save_dir, "checkpoint_last.pt"))  # rank 0 saved
    torchrun_two_nodes(demo_corpus, tmp_path / "torchrun", 40, port=29661)
    assert max_difference(os.path.join(save_dir, "checkpoint_last.pt"),
                          tmp_path / "torchrun" / "checkpoint_last.pt") < 1e-5


def test_a_requeued_job_resumes_and_ends_where_the_uninterrupted_one_does(cluster, slurm_run, demo_corpus, tmp_path):
    save_dir = tmp_path / "requeued"
    env = env_with(cluster)
    proc = subprocess.Popen([os.path.join(VENV_BIN, "d2v"), "train", "--slurm", "--partition", "local", "--nodes",
                             "2", *training_args(demo_corpus, save_dir, 40)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while saved_updates(save_dir) < 4:  # the job has saved a checkpoint (it saves every epoch of 2 updates)
        assert time.time() < deadline and proc.poll() is None, "the job never saved a checkpoint"
        time.sleep(0.2)
    job = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True).stdout.split()[0]
    # what SLURM sends before a time limit or a preemption: submitit's handler calls
    # TrainTask.checkpoint, which requeues the same task
    subprocess.run(["scancel", "--signal=USR2", job], env=env, check=True)
    while "PENDING" not in subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True,
                                          text=True).stdout:
        assert time.time() < deadline, "the job was not requeued"
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)  # no requeue delay
    out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out[-3000:]
    log = open(save_dir / "slurm" / f"{job}_0_log.out").read()
    assert "Calling checkpoint method" in log and "Requeued job" in log
    assert log.count("Loaded checkpoint") == 1  # the first start found none, the second resumed
    resumed_at = int(re.search(r"Loaded checkpoint .* \(epoch \d+ @ (\d+) updates\)", log).group(1))
    assert 4 <= resumed_at < 40
    assert max_difference(save_dir / "checkpoint_last.pt", slurm_run[0] / "checkpoint_last.pt") < 1e-5


def test_no_wait_returns_after_submitting(cluster, demo_corpus, tmp_path):
    start = time.time()
    proc = subprocess.run([os.path.join(VENV_BIN, "d2v"), "train", "--slurm", "--no-wait", "--partition", "local",
                           *training_args(demo_corpus, tmp_path / "nw", 2)],
                          env=env_with(cluster), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "submitted SLURM job" in proc.stdout
    job = proc.stdout.split("submitted SLURM job ")[1].split(":")[0]
    subprocess.run(["scancel", job], env=env_with(cluster))
    assert time.time() - start < 60


def test_a_corpus_job_array_gives_the_one_process_transcripts_and_hubert_shards(cluster, demo_corpus, finetuned,
                                                                                tmp_path):
    checkpoint = str(finetuned / "ft" / "checkpoint_best.pt")
    manifest = os.path.join(demo_corpus, "valid.tsv")
    d2v = os.path.join(VENV_BIN, "d2v")
    one = subprocess.run([d2v, "transcribe", checkpoint, manifest, "--output", str(tmp_path / "one.tsv")],
                         env=env_with(cluster), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    array = subprocess.run([d2v, "transcribe", checkpoint, manifest, "--output", str(tmp_path / "two.tsv"), "--slurm",
                            "--shards", "2", "--partition", "local", "--time", "10"],
                           env=env_with(cluster), capture_output=True, text=True, timeout=900)
    assert array.returncode == 0, array.stdout[-2000:] + array.stderr[-2000:]
    assert "submitted SLURM job array" in array.stdout and "2/2 shards finished" in array.stdout
    assert "8 recordings transcribed, 0 already in" in array.stdout
    lines = {name: (tmp_path / name).read_text().splitlines() for name in ("one.tsv", "two.tsv")}
    assert len(lines["two.tsv"]) == 8 and sorted(lines["two.tsv"]) == sorted(lines["one.tsv"])  # each recording once
    features = subprocess.run([d2v, "features", checkpoint, manifest, str(tmp_path / "dump"), "--format", "hubert",
                               "--layers", "1", "--split", "valid", "--slurm", "--shards", "2", "--partition", "local"],
                              env=env_with(cluster), capture_output=True, text=True, timeout=900)
    assert features.returncode == 0, features.stdout[-2000:] + features.stderr[-2000:]
    lengths = [(tmp_path / "dump" / f"valid_{r}_2.len").read_text().split() for r in range(2)]
    assert [len(n) for n in lengths] == [4, 4]  # fairseq's get_shard_range of 8 lines


def test_a_requeued_shard_task_resumes_and_the_array_gives_every_recording_once(cluster, demo_corpus, finetuned,
                                                                               tmp_path):
    from d2v_fairseq.transcription import shard_output

    corpus = tmp_path / "corpus"
    wavs = sorted(glob.glob(os.path.join(demo_corpus, "wav", "*.wav")))
    for i in range(480):  # 12 folders of the same 40 names
        (corpus / f"d{i // 40:02d}").mkdir(parents=True, exist_ok=True)
        os.link(wavs[i % len(wavs)], corpus / f"d{i // 40:02d}" / f"r{i % 40:02d}.wav")
    checkpoint = str(finetuned / "ft" / "checkpoint_best.pt")
    d2v, env = os.path.join(VENV_BIN, "d2v"), env_with(cluster)
    one = subprocess.run([d2v, "transcribe", checkpoint, str(corpus), "--output", str(tmp_path / "one.tsv")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    output = tmp_path / "array.tsv"
    proc = subprocess.Popen([d2v, "transcribe", checkpoint, str(corpus), "--output", str(output), "--batch-size", "4",
                             "--slurm", "--shards", "2", "--partition", "local", "--time", "10"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = tmp_path / shard_output("array.tsv", 0, 2)
    deadline = time.time() + 600
    while not first.exists() or not first.read_text():  # shard 0 is transcribing
        assert time.time() < deadline and proc.poll() is None, "shard 0 never wrote a line"
        time.sleep(0.05)
    task = next(line.split()[0] for line in subprocess.run(["squeue", "-h", "-o", "%i %T"], env=env,
                                                            capture_output=True, text=True).stdout.splitlines()
                if line.split()[0].endswith("_0"))
    subprocess.run(["scancel", "--signal=USR2", task], env=env, check=True)  # as before a time limit
    while "PENDING" not in subprocess.run(["squeue", "-h", "-j", task, "-o", "%T"], env=env, capture_output=True,
                                          text=True).stdout:
        assert time.time() < deadline, "the shard task was not requeued"
        time.sleep(0.1)
    done_before_requeue = len(first.read_text().splitlines())
    subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], env=env, check=True)
    out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out[-3000:]
    log = open(glob.glob(str(tmp_path / "array.tsv.slurm" / f"{task}_0_log.out"))[0]).read()
    assert "Calling checkpoint method" in log and "Requeued job" in log
    assert 0 < done_before_requeue < 240
    # the requeued task skipped what it had written before the signal, and transcribed the rest
    assert f"{480 - done_before_requeue} recordings transcribed, {done_before_requeue} already in" in out, out[-2000:]
    lines = {name: (tmp_path / name).read_text().splitlines() for name in ("one.tsv", "array.tsv")}
    assert len(lines["array.tsv"]) == 480 and sorted(lines["array.tsv"]) == sorted(lines["one.tsv"])
