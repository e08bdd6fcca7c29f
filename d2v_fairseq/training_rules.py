"""The rules ``d2v train`` keeps, put into fairseq in every process of the run.

:func:`install` changes fairseq's checkpoint code and training entry point in the process that
calls it (see :mod:`.checkpoints` for the rules themselves):

* every checkpoint write whole or absent, extra names as links, asynchronous writes refused;
* before loading: rank 0 takes the save_dir's lock, removes a killed writer's temporaries and
  recovers ``checkpoint_last.pt``; every rank stops at once when the run is finished;
* the training entry point (:func:`train_main`) turns a user's error, a finished run and a NaN
  loss into one line (exit status 2, 0, 2) instead of a traceback.

A run may have several processes that ``d2v train`` never runs itself: fairseq spawns one worker
per device on a node started without torchrun (``torch.multiprocessing.spawn``: fresh
interpreters that pickle the entry point by name). ``d2v train`` therefore sets
:data:`RULES_ENV` before it starts fairseq; every process that inherits it installs the rules
when it imports this package (the workers unpickle :func:`train_main`, and fairseq imports the
user-dir). Under torchrun and SLURM each process is a ``d2v train`` of its own.
"""

import os
import sys
from typing import Callable

from .checkpoints import (EARLY_STOP_NAME, acquire_lock, link_atomic, recover_last, remove_stale_temporaries,
                          room_warning, stopped_early, whole_updates, write_atomic, write_atomic_json)
from .modules.errors import InputError, first_lines

# set by `d2v train` for the processes of its run (and inherited by fairseq's spawned workers)
RULES_ENV = "D2V_TRAINING_RULES"

ASYNC_WRITES = ("checkpoint.write_checkpoints_asynchronously=true writes each checkpoint in place from a "
                "background thread (a kill leaves a truncated file, and a name linked to an earlier save is "
                "truncated under every name it has); d2v train writes checkpoints whole or not at all, "
                "synchronously: leave it false")


class RunFinished(Exception):
    """The save_dir already holds ``max_update`` updates (or stopped early): nothing to train."""


class AsyncWritesRefused(InputError):
    """``checkpoint.write_checkpoints_asynchronously=true`` under ``d2v train``."""


class _LinkingPathManager:
    """fairseq's PathManager, except that ``copy`` between local files links atomically."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def copy(self, src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if "://" in src_path or "://" in dst_path:
            return self._inner.copy(src_path, dst_path, overwrite)
        if os.path.exists(dst_path) and not overwrite:
            return False
        link_atomic(src_path, dst_path)
        return True


def _persistent_save(original: Callable) -> Callable:
    def save(obj, filename, async_write: bool = False):
        if async_write:
            raise AsyncWritesRefused(ASYNC_WRITES, path=str(filename))
        if "://" in str(filename):
            return original(obj, filename, async_write=async_write)
        return write_atomic(obj, filename)
    return save


def _recording_early_stop(original: Callable) -> Callable:
    """fairseq's ``should_stop_early``, which also writes ``stopped_early.json`` when it stops."""
    def should_stop_early(cfg, valid_loss):
        stop = original(cfg, valid_loss)
        trainer = getattr(_guarded_load, "trainer", None)
        if stop and trainer is not None and rank() == 0:
            record = {"updates": trainer.get_num_updates(), "metric": cfg.checkpoint.best_checkpoint_metric,
                      "best": getattr(should_stop_early, "best", None), "patience": cfg.checkpoint.patience}
            write_atomic_json(os.path.join(cfg.checkpoint.save_dir, EARLY_STOP_NAME), record)
            print(f"stopped early at update {record['updates']}: valid {record['metric']} has not improved on "
                  f"{record['best']} for {record['patience']} validations", flush=True)
        return stop
    return should_stop_early


def rank() -> int:
    """This process's data-parallel rank (0 before the process group exists)."""
    from fairseq import distributed_utils

    try:
        return distributed_utils.get_data_parallel_rank()
    except Exception:  # no process group yet: a single process
        return 0


def _guarded_load(original: Callable) -> Callable:
    def load_checkpoint(cfg, trainer, **kwargs):
        _guarded_load.trainer = trainer
        default_restore = cfg.restore_file == "checkpoint_last.pt"
        suffix = trainer.checkpoint_suffix or ""
        last = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
        if rank() == 0:  # one lock per save_dir and run: rank 0's, never one rank blocking another
            lines = [acquire_lock(cfg.save_dir)]
            stale = remove_stale_temporaries(cfg.save_dir)  # a killed writer's, under the lock
            if stale:
                lines.append(f"{cfg.save_dir}: removed {len(stale)} unfinished write(s) of a killed run: "
                             f"{', '.join(stale)}")
            recover = default_restore and not cfg.no_last_checkpoints
            lines += [recover_last(cfg.save_dir, suffix) if recover else None, room_warning(trainer)]
            for line in filter(None, lines):  # on stderr, whatever hydra made of logging
                print(f"WARNING: {line}", file=sys.stderr, flush=True)
        _barrier()  # the other ranks read checkpoint_last.pt only once rank 0 has recovered it
        max_update = int(trainer.cfg.optimization.max_update or 0)
        done = None
        if default_restore and max_update > 0 and os.path.isfile(last):
            done = whole_updates(last)
            if done is not None and done >= max_update:
                raise RunFinished(f"{last} holds {done} updates (optimization.max_update={max_update}): the run "
                                  "is finished; nothing to train (raise max_update to train on)")
        early = stopped_early(cfg.save_dir, done) if default_restore and not suffix else None
        if early is not None:
            raise RunFinished(f"{cfg.save_dir} stopped early at update {early['updates']} (valid {early['metric']} "
                              f"did not improve on {early['best']} for {early['patience']} validations): the run is "
                              f"finished; remove {os.path.join(cfg.save_dir, EARLY_STOP_NAME)} to train on")
        return original(cfg, trainer, **kwargs)
    return load_checkpoint


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def train_main(cfg, **kwargs) -> None:
    """fairseq's training ``main`` with a user's error, a finished run and a NaN loss as one line
    (exit status 2, 0, 2). Module-level, so that fairseq's spawned workers can unpickle it."""
    import fairseq_cli.train as train_module

    try:
        return train_module.main(cfg, **kwargs)
    except RunFinished as done:
        if rank() == 0:
            print(str(done), flush=True)
        raise SystemExit(0) from None
    except InputError as error:  # hydra would print its traceback: one line, as every d2v command
        where = f"rank {rank()}: " if rank() else ""
        print(f"d2v: error: {where}{first_lines(error)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except FloatingPointError as error:
        trainer = getattr(_guarded_load, "trainer", None)
        update = trainer.get_num_updates() + 1 if trainer is not None else "?"
        last = os.path.join(cfg.checkpoint.save_dir, "checkpoint_last.pt")
        done = whole_updates(last)
        kept = f"{last} (update {done}) is the last good checkpoint" if done is not None else \
            "no checkpoint was saved yet"
        print(f"d2v: error: update {update}: the loss or its gradients are NaN/Inf ({error}); {kept}; try a "
              "lower optimization.lr, a longer warm-up, common.bf16 instead of fp16, or "
              "optimization.clip_norm", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _worker_exits(original: Callable) -> Callable:
    """fairseq's ``call_main``, whose spawned workers' exits end the launcher the same way: a
    worker that said its one line (exit status 2) ends it with that status, without the
    traceback of ``torch.multiprocessing``."""
    def call_main(cfg, main, **kwargs):
        from torch.multiprocessing import ProcessExitedException

        try:
            return original(cfg, main, **kwargs)
        except ProcessExitedException as error:
            if error.exit_code is not None and error.exit_code > 0:
                raise SystemExit(error.exit_code) from None
            print(f"d2v: error: training process {error.error_index} (pid {error.error_pid}) was killed by "
                  f"{error.signal_name or 'a signal'}; the same command resumes from the last checkpoint",
                  file=sys.stderr, flush=True)
            raise SystemExit(1) from None
    return call_main


def install() -> None:
    """Puts the rules above into fairseq's checkpoint code and training entry point in this
    process (idempotent)."""
    import fairseq_cli.hydra_train as hydra_train_module
    import fairseq_cli.train as train_module
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils

    if getattr(checkpoint_utils, "_d2v_installed", False):
        return
    checkpoint_utils.PathManager = _LinkingPathManager(checkpoint_utils.PathManager)
    checkpoint_utils.torch_persistent_save = _persistent_save(checkpoint_utils.torch_persistent_save)
    checkpoint_utils.load_checkpoint = _guarded_load(checkpoint_utils.load_checkpoint)
    distributed_utils.call_main = _worker_exits(distributed_utils.call_main)
    hydra_train_module.pre_main = train_main
    train_module.should_stop_early = _recording_early_stop(train_module.should_stop_early)
    checkpoint_utils._d2v_installed = True


def install_for_run() -> None:
    """Marks this process's children as processes of a ``d2v train`` run and installs the rules here."""
    os.environ[RULES_ENV] = "1"
    install()


def install_if_in_run() -> None:
    """Installs the rules when this process belongs to a run ``d2v train`` started (:data:`RULES_ENV`)."""
    if os.environ.get(RULES_ENV) == "1":
        install()
