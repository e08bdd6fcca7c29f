"""Faults for the end-to-end tests, loaded by every Python process (spawned workers too) whose
PYTHONPATH starts with this folder; inert unless one of these variables is set:

* ``D2V_TEST_DEVICES=N``: ``torch.cuda.device_count()`` reads N, so that fairseq takes the path of
  a one-node, N-device run started without torchrun (it spawns N workers), on CPU.
* ``D2V_TEST_KILL_BEFORE_REPLACE=GLOB:N``: SIGKILL at the N-th ``os.replace`` whose target's name
  matches GLOB: after the data of a write (or a link's temporary name) is complete, before it
  takes its name. ``checkpoint_*_*.pt`` lands inside a checkpoint write, ``checkpoint_last.pt``
  between the links of a save.
* ``D2V_TEST_KILL_AFTER_FSYNC=N``: SIGKILL right after the N-th ``os.fsync`` (an output file
  appended and synced per batch: the kill lands between two batches).
* ``D2V_TEST_NAN_AT_UPDATE=N``: the gradient norm of update N is NaN (fairseq then raises its
  ``FloatingPointError``, as it does for a diverging loss).

Python imports ``sitecustomize`` at start-up when it is on the path (the venv has none of its own).
"""

import fnmatch
import os
import signal


def _fake_devices(count: int) -> None:
    import torch

    torch.cuda.device_count = lambda: count


def _kill_before_replace(spec: str) -> None:
    pattern, _, nth = spec.rpartition(":")
    original, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), pattern):
            seen[0] += 1
            if seen[0] == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)
        return original(src, dst, *args, **kwargs)

    os.replace = replace


def _kill_after_fsync(nth: int) -> None:
    original, seen = os.fsync, [0]

    def fsync(fd):
        original(fd)
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    os.fsync = fsync


def _nan_at_update(update: int) -> None:
    import torch
    from fairseq.trainer import Trainer

    original = Trainer.clip_grad_norm

    def clip_grad_norm(self, clip_norm):
        norm = original(self, clip_norm)
        return torch.full_like(norm, float("nan")) if self.get_num_updates() + 1 == update else norm

    Trainer.clip_grad_norm = clip_grad_norm


if os.environ.get("D2V_TEST_DEVICES"):
    _fake_devices(int(os.environ["D2V_TEST_DEVICES"]))
if os.environ.get("D2V_TEST_KILL_BEFORE_REPLACE"):
    _kill_before_replace(os.environ["D2V_TEST_KILL_BEFORE_REPLACE"])
if os.environ.get("D2V_TEST_KILL_AFTER_FSYNC"):
    _kill_after_fsync(int(os.environ["D2V_TEST_KILL_AFTER_FSYNC"]))
if os.environ.get("D2V_TEST_NAN_AT_UPDATE"):
    _nan_at_update(int(os.environ["D2V_TEST_NAN_AT_UPDATE"]))
