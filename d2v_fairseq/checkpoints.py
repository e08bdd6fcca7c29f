"""Checkpoints that are whole or absent, and the rules ``d2v train`` keeps around them.

fairseq writes the first name of a save atomically (``.tmp`` then rename) and then makes every
other name (``checkpoint_last.pt``, ``checkpoint_best.pt``, ...) by a full, non-atomic copy:
each save costs two or three checkpoints of disk, and a kill or a full disk during a copy leaves
a truncated file under a name a resume reads. Nothing is synced. This module holds the pieces;
:mod:`.training_rules` puts them into fairseq in every process of a run ``d2v train`` starts:

* **Writes**: the state goes to ``NAME.tmp``, is flushed and fsynced, renamed over ``NAME``, and
  the directory is fsynced (:func:`write_atomic`). A failure removes the ``.tmp`` file; a full
  disk is :class:`DiskFullError` (one line: the save_dir, bytes needed, bytes free).
* **Extra names** are hard links of the one complete write, renamed into place
  (:func:`link_atomic`): free, and whole at every instant. Where the filesystem has no hard
  links, a copy to ``.tmp`` (fsynced) is renamed instead.
* **Resume**: an unreadable ``checkpoint_last.pt`` (truncated by a kill of an older writer, a
  bad copy) is kept as ``checkpoint_last.pt.unreadable`` (a link, so the name never goes
  missing) and the newest readable checkpoint of the save_dir replaces it atomically; a missing
  ``checkpoint_last.pt`` beside readable checkpoints is given the newest of them; each said in
  one line (:func:`recover_last`).
* **A finished run stays finished**: :func:`stopped_early` reads the record a run that fairseq
  stopped early (``checkpoint.patience``) leaves beside its checkpoints.
* **One run per save_dir**: :func:`acquire_lock` (a :class:`~.locks.DirectoryLock`).
* **Room on disk**: :func:`room_warning` before training.
"""

import errno
import os
import re
import shutil
from typing import Any, Callable, List, Optional, Tuple

from .locks import DirectoryLock, LockBusy
from .modules.errors import InputError

LOCK_NAME = ".d2v-train.lock"
EARLY_STOP_NAME = "stopped_early.json"
UNREADABLE_SUFFIX = ".unreadable"


class DiskFullError(InputError):
    """A checkpoint write that found no space; the message names save_dir, bytes needed and free."""


SaveDirBusy = LockBusy  # another live process trains into the same save_dir


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


def write_atomic_json(filename: str, obj: Any, default: Optional[Callable[[Any], Any]] = None) -> None:
    """``obj`` as JSON in ``filename``: whole or not there (:func:`write_atomic_text`); ``default``:
    as ``json.dump``'s, for values JSON cannot hold."""
    import json

    write_atomic_text(filename, json.dumps(obj, indent=1, default=default))


def write_atomic_text(filename: str, text: str) -> None:
    """``text`` (UTF-8) in ``filename``: whole or not there (``.tmp``, fsync, rename, fsync of the
    directory); a failure leaves the old file as it was."""
    tmp = filename + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
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
    """Makes ``checkpoint_last.pt`` the newest readable checkpoint when it cannot be read (the
    bad file kept as ``.unreadable``) or is missing beside readable checkpoints; returns the line
    that says so (None if nothing was wrong). ``checkpoint_last.pt`` is never absent on the way:
    the bad file gets its second name by a link, then the good one replaces it by a rename.
    Raises InputError when a checkpoint_last.pt is there and no checkpoint of the save_dir can be
    read."""
    last = os.path.join(save_dir, f"checkpoint_last{suffix}.pt")
    present = os.path.exists(last)
    if present and readable(last):
        return None
    found = newest_readable(save_dir, suffix, exclude=(last,))
    if found is None:
        if not present:
            return None  # a new run
        raise InputError("checkpoint_last.pt cannot be read (truncated or corrupt) and no other checkpoint "
                         "there can: move it away to start the run from scratch", path=save_dir)
    if not present:
        link_atomic(found[0], last)
        return (f"{last} is missing: resuming from {os.path.basename(found[0])} (update {found[1]}), the newest "
                "readable checkpoint there")
    link_atomic(last, last + UNREADABLE_SUFFIX)
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

_save_dir_lock: Optional[DirectoryLock] = None  # held for the life of the training process


def acquire_lock(save_dir: str) -> Optional[str]:
    """Takes the save_dir's lock for this process (kept until it exits or :func:`release_lock`).
    Raises SaveDirBusy naming the holder's host and pid when a live process holds it; returns a
    WARNING line when it takes over a killed process's record or the filesystem has no flock."""
    global _save_dir_lock
    lock = DirectoryLock(save_dir, LOCK_NAME, "training",
                         "wait for it, stop it, or give another checkpoint.save_dir")
    warning = lock.acquire()
    if _save_dir_lock is None:  # a normal exit empties the file: only a killed process leaves its record
        import atexit

        atexit.register(release_lock)
    else:
        _save_dir_lock.release()
    _save_dir_lock = lock
    return warning


def release_lock() -> None:
    """Empties and releases the lock taken by :func:`acquire_lock` (at exit, too)."""
    global _save_dir_lock
    if _save_dir_lock is not None:
        _save_dir_lock.release()
        _save_dir_lock = None


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
