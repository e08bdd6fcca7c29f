"""Checkpoints that are whole or absent, and the rules ``d2v train`` keeps around them.

fairseq writes the first name of a save atomically (``.tmp`` then rename) and then makes every
other name (``checkpoint_last.pt``, ``checkpoint_best.pt``, ...) by a full, non-atomic copy:
each save costs two or three checkpoints of disk, and a kill or a full disk during a copy leaves
a truncated file under a name a resume reads. Nothing is synced. :func:`install` changes that
for the training process ``d2v train`` runs:

* **Writes**: the state goes to ``NAME.tmp``, is flushed and fsynced, renamed over ``NAME``, and
  the directory is fsynced (:func:`write_atomic`). A failure removes the ``.tmp`` file; a full
  disk is :class:`DiskFullError` (one line: the save_dir, bytes needed, bytes free).
* **Extra names** are hard links of the one complete write, renamed into place
  (:func:`link_atomic`): free, and whole at every instant. Where the filesystem has no hard
  links, a copy to ``.tmp`` (fsynced) is renamed instead.
* **Resume**: an unreadable ``checkpoint_last.pt`` (truncated by a kill of an older writer, a
  bad copy) is kept as ``checkpoint_last.pt.unreadable`` and the newest readable checkpoint of
  the save_dir takes its name, said in one line (:func:`recover_last`).
* **A finished run stays finished**: a save_dir whose ``checkpoint_last.pt`` holds
  ``max_update`` updates ends the command at once with one line and exit status 0 (fairseq's
  loop would take one more update and save it). A run that fairseq stopped early
  (``checkpoint.patience``) leaves ``stopped_early.json`` (update, metric, best value) beside its
  checkpoints, and a re-run finds it finished too (:func:`stopped_early`).
* **One run per save_dir**: a lock file (host and pid) held with ``flock`` while training; a
  second run stops in one line; the file of a process that is gone is taken over, said in a line.
* **Room on disk**: before training, a WARNING when the save_dir cannot hold the checkpoints the
  run keeps (estimated from the model and optimizer sizes).
* **Divergence**: fairseq's ``FloatingPointError`` (NaN/Inf loss or gradients) becomes one line
  with the update number, the last complete checkpoint and what to try.

fairseq's options keep working: ``keep_interval_updates`` removes names (a link's removal frees
the data only with its last name), ``no_last_checkpoints``, ``keep_best_checkpoints``;
``write_checkpoints_asynchronously`` keeps fairseq's own writer.
"""

import errno
import fcntl
import os
import re
import shutil
import socket
import sys
from typing import Any, Callable, List, Optional, Tuple

from .modules.errors import InputError, first_lines

LOCK_NAME = ".d2v-train.lock"
EARLY_STOP_NAME = "stopped_early.json"
UNREADABLE_SUFFIX = ".unreadable"
# fault injection for the tests: D2V_FAULT=kill-after-write:N kills the process (SIGKILL) after
# the N-th complete checkpoint write of this process, before its extra names are linked
FAULT_ENV = "D2V_FAULT"


class DiskFullError(InputError):
    """A checkpoint write that found no space; the message names save_dir, bytes needed and free."""


class RunFinished(Exception):
    """The save_dir already holds ``max_update`` updates: nothing to train."""


class SaveDirBusy(InputError):
    """Another live process trains into the same save_dir."""


# ------------------------------------------------------------------ writing


def fsync_dir(path: str) -> None:
    """Makes a rename or link inside directory ``path`` durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def state_bytes(obj: Any) -> int:
    """Bytes of the tensors inside a (nested) checkpoint state: about the size torch.save writes."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def free_bytes(path: str) -> int:
    """Bytes free to an unprivileged writer on the filesystem of ``path``."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _mb(n: float) -> str:
    return f"{n / 2 ** 20:.0f} MB"


def _disk_full(filename: str, needed: int) -> DiskFullError:
    save_dir = os.path.dirname(os.path.abspath(filename))
    last = os.path.join(save_dir, "checkpoint_last.pt")
    done = whole_updates(last)
    kept = (f"{os.path.basename(last)} (update {done}) is whole: free space and run the same "
            "command to resume from it") if done is not None else "no earlier checkpoint is there"
    return DiskFullError(f"no space left to write {os.path.basename(filename)}: needs about {_mb(needed)}, "
                         f"{_mb(free_bytes(save_dir))} free; {kept}", path=save_dir)


def _out_of_space(error: BaseException) -> bool:
    """Whether ``error`` or one it was raised from is ENOSPC/EDQUOT (torch.save's zip writer
    raises a RuntimeError while handling the OSError of a full disk)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def write_atomic(obj: Any, filename: str) -> None:
    """``torch.save(obj)`` to ``filename``: whole or not there (``.tmp``, fsync, rename, fsync
    of the directory). Raises DiskFullError when the disk is full; the old file stays."""
    import torch

    tmp = filename + ".tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException as error:
        _remove_quietly(tmp)
        if _out_of_space(error):
            raise _disk_full(filename, state_bytes(obj)) from None
        raise
    fsync_dir(os.path.dirname(os.path.abspath(filename)))
    _inject_fault()


def write_atomic_json(filename: str, obj: Any, default: Optional[Callable[[Any], Any]] = None) -> None:
    """``obj`` as JSON in ``filename``: whole or not there (``.tmp``, fsync, rename, fsync of the
    directory); ``default``: as ``json.dump``'s, for values JSON cannot hold."""
    import json

    tmp = filename + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, default=default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(filename)))


def link_atomic(source: str, target: str) -> None:
    """Gives the complete file ``source`` the name ``target`` too, atomically: a hard link
    renamed into place (free), or a synced copy where the filesystem has no hard links."""
    if os.path.abspath(source) == os.path.abspath(target):
        return
    tmp = target + ".tmp"
    _remove_quietly(tmp)
    try:
        os.link(source, tmp)
    except OSError:
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 16 * 2 ** 20)
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException as error:
            _remove_quietly(tmp)
            if _out_of_space(error):
                raise _disk_full(target, os.path.getsize(source)) from None
            raise
    os.replace(tmp, target)
    fsync_dir(os.path.dirname(os.path.abspath(target)))


_writes = 0


def _inject_fault() -> None:
    global _writes
    _writes += 1
    spec = os.environ.get(FAULT_ENV, "")
    if spec.startswith("kill-after-write:") and _writes == int(spec.split(":")[1]):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------ reading


def read_state(path: str) -> Optional[dict]:
    """The checkpoint at ``path`` memory-mapped (tensors read lazily), or None if it is not
    a whole, readable checkpoint."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # a truncated or garbled file fails in torch's zip reader or the unpickler
        return None
    return state if isinstance(state, dict) else None


def readable(path: str) -> bool:
    """Whether ``path`` is a checkpoint torch can read (cheap: tensors are not read)."""
    return os.path.isfile(path) and read_state(path) is not None


def _updates(state: dict) -> int:
    history = state.get("optimizer_history") or [{}]
    return int(history[-1].get("num_updates", 0))


def updates_in(path: str) -> int:
    """The number of updates a checkpoint holds (0 when absent, unreadable or without history)."""
    return whole_updates(path) or 0


def whole_updates(path: str) -> Optional[int]:
    """The number of updates of a whole, readable checkpoint at ``path``; None when it is absent
    or cannot be read (one read answers both)."""
    state = read_state(path) if os.path.isfile(path) else None
    return None if state is None else _updates(state)


def checkpoint_files(save_dir: str, suffix: str = "") -> List[str]:
    """The checkpoint files of a save_dir (``checkpoint*{suffix}.pt``), temporaries excluded."""
    if not os.path.isdir(save_dir):
        return []
    pattern = re.compile(r"checkpoint.*" + re.escape(suffix) + r"\.pt$")
    return [os.path.join(save_dir, n) for n in sorted(os.listdir(save_dir)) if pattern.match(n)]


def newest_readable(save_dir: str, suffix: str = "", exclude: Tuple[str, ...] = ()) -> Optional[Tuple[str, int]]:
    """(path, updates) of the readable checkpoint with the most updates (the newest file on a tie)."""
    best = None
    for path in checkpoint_files(save_dir, suffix):
        updates = None if path in exclude else whole_updates(path)
        if updates is None:
            continue
        key = (updates, os.path.getmtime(path))
        if best is None or key > best[0]:
            best = (key, path)
    return None if best is None else (best[1], best[0][0])


def recover_last(save_dir: str, suffix: str = "") -> Optional[str]:
    """If ``checkpoint_last.pt`` exists but cannot be read, keeps it as ``.unreadable`` and links
    the newest readable checkpoint in its place; returns the line that says so (None if nothing
    was wrong). Raises InputError when no checkpoint of the save_dir can be read."""
    last = os.path.join(save_dir, f"checkpoint_last{suffix}.pt")
    if not os.path.exists(last) or readable(last):
        return None
    found = newest_readable(save_dir, suffix, exclude=(last,))
    if found is None:
        raise InputError("checkpoint_last.pt cannot be read (truncated or corrupt) and no other checkpoint "
                         "there can: move it away to start the run from scratch", path=save_dir)
    os.replace(last, last + UNREADABLE_SUFFIX)
    link_atomic(found[0], last)
    return (f"{last} could not be read (kept as {os.path.basename(last)}{UNREADABLE_SUFFIX}): resuming from "
            f"{os.path.basename(found[0])} (update {found[1]})")


def remove_stale_temporaries(save_dir: str) -> List[str]:
    """Removes the ``checkpoint*.pt.tmp`` files a killed writer left in ``save_dir`` (never a
    name a resume reads); returns their names. Call it holding the save_dir's lock."""
    if not os.path.isdir(save_dir):
        return []
    stale = [n for n in os.listdir(save_dir) if n.startswith("checkpoint") and n.endswith(".pt.tmp")]
    for name in stale:
        _remove_quietly(os.path.join(save_dir, name))
    return stale


# ------------------------------------------------------------------ one run per save_dir

_lock_file = None  # held open (and flock'ed) for the life of the training process


def acquire_lock(save_dir: str) -> Optional[str]:
    """Takes the save_dir's lock for this process (kept until it exits). Raises SaveDirBusy when
    a live process holds it; returns a line when it takes over the lock of a process that is gone."""
    global _lock_file
    os.makedirs(save_dir, exist_ok=True)
    path = os.path.join(save_dir, LOCK_NAME)
    f = open(path, "a+")
    f.seek(0)
    previous = f.read().strip()
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise SaveDirBusy(f"another training writes here ({previous or 'pid unknown'}); wait for it, stop it, "
                          "or give another checkpoint.save_dir", path=save_dir) from None
    f.seek(0)
    f.truncate()
    f.write(f"host {socket.gethostname()} pid {os.getpid()}\n")
    f.flush()
    if _lock_file is not None:
        _lock_file.close()
    else:  # a normal exit empties the file: only a killed process leaves its pid behind
        import atexit

        atexit.register(release_lock)
    _lock_file = f
    if previous and previous != f"host {socket.gethostname()} pid {os.getpid()}":
        return f"{path}: taking over the lock of {previous} (that process is gone)"
    return None


def release_lock() -> None:
    """Empties and releases the lock taken by :func:`acquire_lock` (at exit, too)."""
    global _lock_file
    if _lock_file is not None:
        _lock_file.truncate(0)
        _lock_file.close()
        _lock_file = None


# ------------------------------------------------------------------ room on disk


def kept_checkpoints(cfg) -> int:
    """How many distinct checkpoint files a run with fairseq's checkpoint ``cfg`` (and
    ``max_update``) keeps at most, counting links of one write once."""
    checkpoint, optimization = cfg.checkpoint, cfg.optimization
    interval = int(checkpoint.save_interval_updates or 0)
    max_update = int(optimization.max_update or 0)
    if interval > 0:
        keep = int(checkpoint.keep_interval_updates or 0)
        saves = max_update // interval if max_update else 1
        count = min(keep, saves) if keep > 0 else saves
    else:
        keep = int(checkpoint.keep_last_epochs or 0)
        epochs = int(optimization.max_epoch or 0)
        count = keep if keep > 0 else (epochs or 1)
    count += 1  # the last one (or the best) outlives the pruning of its per-update name
    return max(1, count + int(checkpoint.keep_best_checkpoints or 0))


def room_warning(trainer) -> Optional[str]:
    """A WARNING line when the save_dir's filesystem cannot hold the checkpoints ``trainer``'s run
    keeps; None when it can. A checkpoint is about the model's state (teacher included) plus
    Adam's two moments of every trainable parameter."""
    cfg, model = trainer.cfg, trainer.model
    trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    size = state_bytes(model.state_dict()) + 2 * trainable
    count = kept_checkpoints(cfg)
    save_dir = cfg.checkpoint.save_dir
    free = free_bytes(save_dir)
    if free >= size * count + size:  # + one write in flight
        return None
    return (f"{save_dir}: this run keeps up to {count} checkpoints of about {_mb(size)} each "
            f"(checkpoint.keep_interval_updates / save_interval_updates), {_mb(free)} free: it will run out of "
            "space; free some or keep fewer")


# ------------------------------------------------------------------ into fairseq


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
        if async_write or "://" in str(filename):
            return original(obj, filename, async_write=async_write)
        return write_atomic(obj, filename)
    return save


def stopped_early(save_dir: str, last_updates: Optional[int] = None) -> Optional[dict]:
    """The record a run that stopped early (``checkpoint.patience``) left in ``save_dir``
    ({"updates", "metric", "best", "patience"}), when ``checkpoint_last.pt`` is still the
    checkpoint it saved; else None. ``last_updates``: that checkpoint's update count when the
    caller has read it already (else it is read here, only when a record exists)."""
    import json

    try:
        with open(os.path.join(save_dir, EARLY_STOP_NAME), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if last_updates is None:
        last_updates = whole_updates(os.path.join(save_dir, "checkpoint_last.pt"))
    return record if last_updates is not None and last_updates == record.get("updates") else None


def _recording_early_stop(original: Callable) -> Callable:
    """fairseq's ``should_stop_early``, which also writes ``stopped_early.json`` when it stops."""
    def should_stop_early(cfg, valid_loss):
        stop = original(cfg, valid_loss)
        trainer = getattr(_guarded_load, "trainer", None)
        if stop and trainer is not None and _rank() == 0:
            record = {"updates": trainer.get_num_updates(), "metric": cfg.checkpoint.best_checkpoint_metric,
                      "best": getattr(should_stop_early, "best", None), "patience": cfg.checkpoint.patience}
            write_atomic_json(os.path.join(cfg.checkpoint.save_dir, EARLY_STOP_NAME), record)
            print(f"stopped early at update {record['updates']}: valid {record['metric']} has not improved on "
                  f"{record['best']} for {record['patience']} validations", flush=True)
        return stop
    return should_stop_early


def _rank() -> int:
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
        if _rank() == 0:
            lines = [acquire_lock(cfg.save_dir)]
            stale = remove_stale_temporaries(cfg.save_dir)  # a killed writer's, under the lock
            if stale:
                lines.append(f"{cfg.save_dir}: removed {len(stale)} unfinished write(s) of a killed run: "
                             f"{', '.join(stale)}")
            lines += [recover_last(cfg.save_dir, suffix) if default_restore else None,
                      room_warning(trainer)]
            for line in filter(None, lines):  # on stderr, whatever hydra made of logging
                print(f"WARNING: {line}", file=sys.stderr, flush=True)
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


def _guarded_main(original: Callable) -> Callable:
    def main(cfg, **kwargs):
        try:
            return original(cfg, **kwargs)
        except RunFinished as done:
            print(str(done), flush=True)
            raise SystemExit(0) from None
        except InputError as error:  # hydra would print its traceback: one line, as every d2v command
            print(f"d2v: error: {first_lines(error)}", file=sys.stderr, flush=True)
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
    return main


def install() -> None:
    """Puts the rules above into fairseq's checkpoint code and training entry point (for the
    training process of ``d2v train``; idempotent)."""
    from fairseq import checkpoint_utils
    import fairseq_cli.hydra_train as hydra_train_module
    import fairseq_cli.train as train_module

    if getattr(checkpoint_utils, "_d2v_installed", False):
        return
    checkpoint_utils.PathManager = _LinkingPathManager(checkpoint_utils.PathManager)
    checkpoint_utils.torch_persistent_save = _persistent_save(checkpoint_utils.torch_persistent_save)
    checkpoint_utils.load_checkpoint = _guarded_load(checkpoint_utils.load_checkpoint)
    hydra_train_module.pre_main = _guarded_main(hydra_train_module.pre_main)
    train_module.should_stop_early = _recording_early_stop(train_module.should_stop_early)
    checkpoint_utils._d2v_installed = True
