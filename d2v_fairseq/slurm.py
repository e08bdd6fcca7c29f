"""``d2v train --slurm``: the same training, submitted to a SLURM cluster with submitit; and
``d2v transcribe|features --slurm --shards N``: a job array of N shard tasks over a corpus.

One SLURM task per training process (``--nodes`` x ``--tasks-per-node``); every task runs
``launch.hydra_train`` on the same arguments, and the ranks join one DDP job (see ``launch``:
fairseq's own SLURM initialization on GPUs, the process group spelled out with gloo on CPUs).
The job is submitted with ``--requeue``: a preempted or timed-out job is requeued (submitit
catches the signal and resubmits the same task) and fairseq resumes it from
``checkpoint_last.pt`` in ``checkpoint.save_dir``, which must be on storage every node sees.

The submitting command prints the job id and where the logs are (``SAVE_DIR/slurm/``), streams
rank 0's log and exits with the job's status; ``wait=False`` returns after submitting.

A corpus job (:func:`run_shards`) is one array task per shard (``--shard I/N`` of the one-process
command), each requeued when preempted or timed out: its outputs resume exactly once, as a
killed one-process run does.
"""

import importlib

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from .modules.errors import InputError

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE")


@dataclass
class SlurmOptions:
    """Where and how the job runs; None: SLURM's (or the partition's) default."""
    partition: Optional[str] = None
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: Optional[int] = None
    cpus_per_task: Optional[int] = None
    time: Optional[int] = None  # minutes
    mem: Optional[str] = None  # e.g. 64G
    account: Optional[str] = None
    constraint: Optional[str] = None
    job_name: str = "d2v-train"
    wait: bool = True
    logs: Optional[str] = None  # default SAVE_DIR/slurm


class TrainTask:
    """The callable each SLURM task runs: ``d2v train ARGV`` in that task's process.

    ``checkpoint`` is what submitit calls on preemption or timeout: the same task is requeued
    and fairseq resumes from ``checkpoint_last.pt``."""

    def __init__(self, argv: List[str], exact_world_size: bool = False):
        self.argv, self.exact_world_size = list(argv), exact_world_size

    def __call__(self) -> int:
        from .launch import hydra_train

        hydra_train(list(self.argv), self.exact_world_size)
        return 0

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(TrainTask(self.argv, self.exact_world_size))


def save_dir_of(argv: List[str]) -> str:
    """``checkpoint.save_dir`` from the overrides: a cluster job needs one every node sees."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "checkpoint.save_dir" and value:
            return os.path.abspath(value)
    raise InputError("d2v train --slurm needs checkpoint.save_dir=DIR on storage every node sees "
                     "(the checkpoints, and the job's logs under DIR/slurm)", path="checkpoint.save_dir")


def _absolute(argv: List[str]) -> List[str]:
    """``argv`` with the config dir and save dir made absolute (the job may start elsewhere)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            out += [arg, os.path.abspath(argv[i + 1])]
            i += 2
            continue
        key, eq, value = arg.partition("=")
        if eq and key in ("--config-dir", "-cd", "checkpoint.save_dir", "+checkpoint.save_dir"):
            arg = f"{key}={os.path.abspath(value)}"
        out.append(arg)
        i += 1
    return out


def _executor(options: SlurmOptions, logs: str, command: str = "d2v train"):
    """A submitit executor for ``options``, its logs in ``logs``; requeued on preemption."""
    try:
        import submitit
    except ImportError:
        raise InputError(f"{command} --slurm needs submitit: pip install submitit==1.5.4") from None
    if subprocess.run(["which", "sbatch"], capture_output=True).returncode != 0:
        raise InputError(f"{command} --slurm: no sbatch on this machine (run it on a SLURM login node)")
    executor = submitit.SlurmExecutor(folder=logs, max_num_timeout=10)
    params = dict(nodes=options.nodes, ntasks_per_node=options.tasks_per_node, job_name=options.job_name,
                  signal_delay_s=120, additional_parameters={"requeue": True})
    for key, value in (("partition", options.partition), ("gpus_per_node", options.gpus_per_node),
                       ("cpus_per_task", options.cpus_per_task), ("time", options.time), ("mem", options.mem),
                       ("account", options.account), ("constraint", options.constraint)):
        if value is not None:
            params[key] = value
    executor.update_parameters(**params)
    return executor


def submit(argv: List[str], options: SlurmOptions, exact_world_size: bool = False,
           report: Callable[[str], None] = print):
    """Submits ``d2v train ARGV`` as one SLURM job; returns the submitit job."""
    argv = _absolute(argv)
    save_dir = save_dir_of(argv)
    logs = os.path.abspath(options.logs or os.path.join(save_dir, "slurm"))
    os.makedirs(logs, exist_ok=True)
    executor = _executor(options, logs)
    job = executor.submit(TrainTask(argv, exact_world_size))
    report(f"submitted SLURM job {job.job_id}: {options.nodes} node(s) x {options.tasks_per_node} task(s); "
           f"logs: {logs}/{job.job_id}_<task>_log.out (rank 0: {rank0_log(logs, job.job_id)}); "
           f"checkpoints: {save_dir}")
    return job


def rank0_log(logs: str, job_id: str) -> str:
    """Rank 0's log file of a job submitted by ``submit``."""
    return os.path.join(logs, f"{job_id}_0_log.out")


def job_state(job_id: str) -> Optional[str]:
    """The job's state from squeue (PENDING, RUNNING, ...); None when it left the queue."""
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
    state = out.stdout.strip().splitlines()
    return state[0] if out.returncode == 0 and state else None


def wait(job, logs: str, stream: Callable[[str], None] = lambda line: print(line, end="", flush=True),
         poll_s: float = 2.0) -> int:
    """Streams rank 0's log until the job leaves the queue; returns 0 when every task finished
    its training, 1 otherwise (with the failing task's error printed)."""
    log_path = rank0_log(logs, job.job_id)
    position = 0
    while True:
        state = job_state(job.job_id)
        if os.path.isfile(log_path):
            with open(log_path, errors="replace") as f:
                f.seek(position)
                chunk = f.read()
                position = f.tell()
            for line in chunk.splitlines(keepends=True):
                stream(line)
        if state is None:
            break
        time.sleep(poll_s)
    failed = []
    for task in range(_task_count(job)):
        failure, _ = task_result(logs, job.job_id, task)
        if failure:
            failed.append(f"task {task}: {failure}")
    for line in failed:
        print(f"SLURM job {job.job_id} {line}", file=sys.stderr)
    return 1 if failed else 0


def task_result(logs: str, job_id: str, task: int):
    """(None, what task ``task`` of job ``job_id`` returned), or (why it failed, None): its
    submitit result file in ``logs`` is missing (killed, never started) or holds an error."""
    from submitit.core.utils import pickle_load

    path = os.path.join(logs, f"{job_id}_{task}_result.pkl")
    if not os.path.isfile(path):
        return f"no result (killed or never started; see {logs}/{job_id}_{task}_log.err)", None
    outcome, value = pickle_load(path)
    if outcome != "success":
        return str(value).strip().splitlines()[-1], None
    return None, value


def _task_count(job) -> int:
    return len(getattr(job, "_tasks", (0,)))  # submitit keeps the job's task ids there


def train_on_slurm(argv: List[str], options: SlurmOptions, exact_world_size: bool = False) -> int:
    """``d2v train --slurm``: submit, then (unless ``options.wait`` is false) stream rank 0's log
    and return the job's status."""
    job = submit(argv, options, exact_world_size)
    if not options.wait:
        return 0
    logs = os.path.dirname(rank0_log(os.path.abspath(options.logs or os.path.join(save_dir_of(_absolute(argv)), "slurm")),
                                     job.job_id))
    status = wait(job, logs)
    print(f"SLURM job {job.job_id} {'finished' if status == 0 else 'FAILED'}; logs: {logs}", flush=True)
    return status


class ShardTask:
    """What array task ``index`` of a corpus job runs: ``module.function(**kwargs, shard="I/N")``
    (named, so that it pickles by reference). ``checkpoint`` (called by submitit on preemption or
    timeout) requeues the same task; its outputs resume where it stopped."""

    def __init__(self, module: str, function: str, kwargs: Dict, index: int, count: int):
        self.module, self.function, self.kwargs, self.index, self.count = module, function, kwargs, index, count

    def __call__(self):
        function = getattr(importlib.import_module(self.module), self.function)
        return function(**self.kwargs, shard=f"{self.index}/{self.count}")

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(ShardTask(self.module, self.function, self.kwargs, self.index,
                                                            self.count))


def run_shards(module: str, function: str, kwargs: Dict, count: int, options: SlurmOptions, logs: str,
               command: str, report: Callable[[str], None] = print, poll_s: float = 2.0) -> Optional[List]:
    """Submits ``count`` shard tasks of ``module.function(**kwargs)`` as one job array and, unless
    ``options.wait`` is false, waits for them: returns each shard's result in shard order (None
    when not waiting). Raises InputError naming every shard that failed."""
    logs = os.path.abspath(logs)
    os.makedirs(logs, exist_ok=True)
    executor = _executor(options, logs, command)
    with executor.batch():
        jobs = [executor.submit(ShardTask(module, function, kwargs, i, count)) for i in range(count)]
    array = jobs[0].job_id.split("_")[0]
    report(f"submitted SLURM job array {array}: {count} shard task(s); logs: {logs}/{array}_<shard>_0_log.out")
    if not options.wait:
        return None
    finished = -1
    while True:
        queued = [job for job in jobs if job_state(job.job_id) is not None]
        if count - len(queued) != finished:
            finished = count - len(queued)
            report(f"SLURM job array {array}: {finished}/{count} shards finished")
        if not queued:
            break
        time.sleep(poll_s)
    results, failed = [], []
    for index, job in enumerate(jobs):
        failure, value = task_result(logs, job.job_id, 0)  # an array task: one SLURM task each
        if failure:
            failed.append(f"shard {index}: {failure}")
        results.append(value)
    if failed:
        raise InputError(f"SLURM job array {array}: {len(failed)} of {count} shards failed (the same command again "
                         "resumes them): " + "; ".join(failed))
    return results
