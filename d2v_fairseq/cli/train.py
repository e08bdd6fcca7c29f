"""``d2v train ARGS`` (fairseq-hydra-train; also under torchrun without GPUs, and submitted to
SLURM with ``--slurm``) and ``d2v configs``."""

import argparse
import os
from typing import List, Tuple

SLURM_HELP = {
    "--partition": "SLURM partition", "--nodes": "nodes (default 1)",
    "--tasks-per-node": "tasks per node, one training process each (default 1)",
    "--gpus-per-node": "GPUs per node", "--cpus-per-task": "CPUs per task", "--time": "time limit in minutes",
    "--mem": "memory per node, e.g. 64G", "--account": "SLURM account", "--constraint": "node constraint",
    "--job-name": "job name (default d2v-train)", "--slurm-logs": "where the job's logs go (default SAVE_DIR/slurm)",
}


ARRAY_OPTIONS = ("--partition", "--gpus-per-node", "--cpus-per-task", "--time", "--mem", "--account", "--constraint",
                 "--job-name", "--slurm-logs")


def add_array_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--slurm --shards N`` and the SLURM options of a corpus job (``d2v transcribe``, ``d2v features``)."""
    p.add_argument("--slurm", action="store_true", help=f"{what} as a SLURM job array of --shards tasks (submitit), "
                   "each task a --shard I/N of this command, requeued when preempted; waits for them")
    p.add_argument("--shards", type=int, help="--slurm: how many shard tasks")
    p.add_argument("--no-wait", action="store_true", help="--slurm: return after submitting")
    for flag in ARRAY_OPTIONS:
        kind = int if flag in ("--gpus-per-node", "--cpus-per-task", "--time") else str
        text = {"--job-name": "job name", "--slurm-logs": "where the job's logs go (default: beside the output)"}.get(
            flag, SLURM_HELP[flag])
        p.add_argument(flag, type=kind, help=f"--slurm: {text}")


def array_options(args: argparse.Namespace, default_name: str, logs: str):
    """(SlurmOptions, logs folder) of a corpus job's parsed ``add_array_options`` arguments."""
    from ..modules.errors import InputError
    from ..slurm import SlurmOptions

    given = [flag for flag in ARRAY_OPTIONS if getattr(args, flag[2:].replace("-", "_")) is not None]
    if not args.slurm:
        if given or args.no_wait or args.shards:
            raise InputError(f"{(given or ['--no-wait' if args.no_wait else '--shards'])[0]} is a --slurm option")
        return None, None
    if not args.shards or args.shards < 1:
        raise InputError("--slurm needs --shards N (how many array tasks)")
    if getattr(args, "shard", None):
        raise InputError("--slurm runs every shard itself: leave out --shard")
    options = SlurmOptions(partition=args.partition, gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task,
                           time=args.time, mem=args.mem, account=args.account, constraint=args.constraint,
                           job_name=args.job_name or default_name, wait=not args.no_wait)
    return options, os.path.abspath(args.slurm_logs or logs)


def own_options() -> argparse.ArgumentParser:
    """The options ``d2v train`` takes itself; the rest of its arguments are fairseq-hydra-train's."""
    p = argparse.ArgumentParser(prog="d2v train", add_help=False, allow_abbrev=False)
    p.add_argument("--exact-world-size", action="store_true",
                   help="keep the recipe's distributed_world_size even when fewer processes are here (fairseq's "
                   "behaviour: it stops); default: keep the recipe's effective batch with update_freq")
    p.add_argument("--slurm", action="store_true", help="submit the training to SLURM (submitit) and wait for it")
    p.add_argument("--no-wait", action="store_true", help="--slurm: return after submitting")
    for flag, text in SLURM_HELP.items():
        kind = int if flag in ("--nodes", "--tasks-per-node", "--gpus-per-node", "--cpus-per-task", "--time") else str
        p.add_argument(flag, type=kind, help=f"--slurm: {text}")
    return p


def register(sub) -> None:
    """Adds ``train`` and ``configs`` to the ``d2v`` subparsers ``sub``."""
    p = sub.add_parser("train", help="fairseq-hydra-train with this package (multi-process on CPUs, SLURM)",
                       description="Everything after `train` that is not one of the options below goes to "
                       "fairseq-hydra-train: --config-dir, --config-name and key=value overrides; common.user_dir "
                       "is set to this package unless given. A recipe naming more processes than there are keeps "
                       "its effective batch through update_freq (said in one line). Under torchrun without GPUs it "
                       "sets what fairseq's launcher needs; --slurm submits the same training to a SLURM cluster.",
                       parents=[own_options()])
    p.add_argument("hydra_args", nargs=argparse.REMAINDER, help="fairseq-hydra-train's arguments")

    p = sub.add_parser("configs", help="print where the example configs are installed",
                       description="Prints the root of the installed hydra configs, e.g. for "
                       "fairseq-hydra-train --config-dir $(d2v configs)/audio/pretraining --config-name tiny_cpu")
    p.add_argument("group", nargs="?", help="a folder under the root, e.g. audio/pretraining (checked to exist)")
    p.add_argument("--user-dir", action="store_true",
                   help="print the package's folder instead: the value of fairseq's common.user_dir / --user-dir")
    p.set_defaults(func=_configs, needs_fairseq=False)


def split_arguments(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """(``d2v train``'s own options, fairseq-hydra-train's arguments) of ``argv``."""
    return own_options().parse_known_args(argv)


def run_train(argv: List[str]) -> int:
    """Runs fairseq-hydra-train on ``argv`` with the package as its user dir, or submits it to SLURM."""
    options, hydra_args = split_arguments(argv)
    if options.slurm:
        from ..slurm import SlurmOptions, train_on_slurm

        slurm = SlurmOptions(partition=options.partition, nodes=options.nodes or 1,
                             tasks_per_node=options.tasks_per_node or 1, gpus_per_node=options.gpus_per_node,
                             cpus_per_task=options.cpus_per_task, time=options.time, mem=options.mem,
                             account=options.account, constraint=options.constraint,
                             job_name=options.job_name or "d2v-train", wait=not options.no_wait,
                             logs=options.slurm_logs)
        return train_on_slurm(hydra_args, slurm, options.exact_world_size)
    from ..modules.errors import InputError

    given = [flag for flag in SLURM_HELP if getattr(options, flag[2:].replace("-", "_")) is not None]
    if given or options.no_wait:
        raise InputError(f"{(given or ['--no-wait'])[0]} is a --slurm option; add --slurm to submit the training")
    from ..launch import hydra_train

    hydra_train(hydra_args, options.exact_world_size)
    return 0


def _configs(args: argparse.Namespace) -> None:
    from ..environment import config_root, package_dir
    from ..modules.errors import InputError

    if args.user_dir:
        print(package_dir())
        return
    path = config_root() if not args.group else os.path.join(config_root(), args.group)
    if not os.path.isdir(path):
        raise InputError("no such config folder; `d2v configs` lists the root", path=path)
    print(path)
