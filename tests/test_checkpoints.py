"""Whole-or-absent checkpoint writes, linked extra names, recovery from an unreadable
checkpoint_last.pt, the save_dir lock and the room estimate (d2v_fairseq.checkpoints)."""

import errno
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from d2v_fairseq.checkpoints import (DiskFullError, SaveDirBusy, acquire_lock, kept_checkpoints, link_atomic,
                                     readable, recover_last, release_lock, updates_in, write_atomic,
                                     write_atomic_json)
from d2v_fairseq.modules.errors import InputError


def state(updates, size=1000):
    return {"model": {"w": torch.full((size,), float(updates))},
            "optimizer_history": [{"num_updates": updates}]}


def test_write_is_whole_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "checkpoint_1_2.pt")
    write_atomic(state(2), path)
    assert readable(path) and updates_in(path) == 2
    assert os.listdir(tmp_path) == ["checkpoint_1_2.pt"]


def test_a_json_write_that_fails_midway_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "run.json")
    write_atomic_json(path, {"seed": 1, "path": tmp_path}, default=str)
    with pytest.raises(TypeError):
        write_atomic_json(path, {"seed": 2, "path": tmp_path})  # a Path is not JSON without default
    with open(path) as f:
        assert json.load(f) == {"seed": 1, "path": str(tmp_path)}
    assert os.listdir(tmp_path) == ["run.json"]


def test_extra_names_are_links_of_one_write(tmp_path):
    first = str(tmp_path / "checkpoint_1_2.pt")
    write_atomic(state(2, size=100_000), first)
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        link_atomic(first, str(tmp_path / name))
    assert os.stat(first).st_ino == os.stat(tmp_path / "checkpoint_last.pt").st_ino == os.stat(
        tmp_path / "checkpoint_best.pt").st_ino
    assert os.stat(first).st_nlink == 3  # one file on disk, three names
    # the next save replaces checkpoint_last.pt; the older per-update name keeps its own data
    second = str(tmp_path / "checkpoint_1_4.pt")
    write_atomic(state(4), second)
    link_atomic(second, str(tmp_path / "checkpoint_last.pt"))
    assert updates_in(str(tmp_path / "checkpoint_last.pt")) == 4 and updates_in(first) == 2
    os.remove(first)  # keep_interval_updates pruning: the best name still reads
    assert updates_in(str(tmp_path / "checkpoint_best.pt")) == 2


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint_last.pt")
    write_atomic(state(2), path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(DiskFullError) as err:
        write_atomic(state(4), path)
    monkeypatch.undo()
    message = str(err.value)
    assert str(tmp_path) in message and "needs about" in message and "free" in message
    assert "checkpoint_last.pt (update 2) is whole" in message
    assert updates_in(path) == 2 and sorted(os.listdir(tmp_path)) == ["checkpoint_last.pt"]


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="mounting a small tmpfs needs root on Linux")
def test_a_full_disk_is_one_error_and_the_last_checkpoint_stays_whole(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        first = str(disk / "checkpoint_1_2.pt")
        write_atomic(state(2, size=200_000), first)  # 0.8 MB
        link_atomic(first, str(disk / "checkpoint_last.pt"))  # a link: no second 0.8 MB
        with pytest.raises(DiskFullError):
            write_atomic(state(4, size=400_000), str(disk / "checkpoint_1_4.pt"))  # 1.6 MB: does not fit
        assert updates_in(str(disk / "checkpoint_last.pt")) == 2
        assert sorted(os.listdir(disk)) == ["checkpoint_1_2.pt", "checkpoint_last.pt"]
    finally:
        subprocess.run(["umount", str(disk)])


def test_an_unreadable_last_checkpoint_gives_way_to_the_newest_readable(tmp_path):
    for updates in (2, 4):
        write_atomic(state(updates), str(tmp_path / f"checkpoint_1_{updates}.pt"))
    last = tmp_path / "checkpoint_last.pt"
    whole = open(tmp_path / "checkpoint_1_4.pt", "rb").read()
    last.write_bytes(whole[: len(whole) // 2])  # a copy cut short by a kill
    assert not readable(str(last))
    line = recover_last(str(tmp_path))
    assert "resuming from checkpoint_1_4.pt (update 4)" in line
    assert updates_in(str(last)) == 4 and os.path.isfile(str(last) + ".unreadable")
    assert recover_last(str(tmp_path)) is None  # nothing wrong any more


def test_no_readable_checkpoint_is_an_error_that_keeps_the_file(tmp_path):
    (tmp_path / "checkpoint_last.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot be read"):
        recover_last(str(tmp_path))
    assert (tmp_path / "checkpoint_last.pt").read_bytes() == b"garbage"


def test_the_save_dir_lock_stops_a_second_live_process_and_takes_over_a_dead_ones(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from d2v_fairseq.checkpoints import acquire_lock; acquire_lock(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(60)"), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SaveDirBusy, match=f"pid {holder.pid}"):
            acquire_lock(str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    line = acquire_lock(str(tmp_path))
    try:
        assert line is not None and f"pid {holder.pid}" in line and "gone" in line
    finally:
        release_lock()


def test_a_normal_exit_leaves_the_lock_free_without_a_takeover_line(tmp_path):
    subprocess.run([sys.executable, "-c", "import sys; from d2v_fairseq.checkpoints import acquire_lock; "
                    "acquire_lock(sys.argv[1])", str(tmp_path)], check=True)
    try:
        assert acquire_lock(str(tmp_path)) is None
    finally:
        release_lock()


def test_kept_checkpoints_follow_fairseqs_pruning_options():
    def cfg(interval=0, keep=0, max_update=0, epochs=0, keep_epochs=0, best=0):
        return SimpleNamespace(
            checkpoint=SimpleNamespace(save_interval_updates=interval, keep_interval_updates=keep,
                                       keep_last_epochs=keep_epochs, keep_best_checkpoints=best),
            optimization=SimpleNamespace(max_update=max_update, max_epoch=epochs))

    assert kept_checkpoints(cfg(interval=100, max_update=1000)) == 11
    assert kept_checkpoints(cfg(interval=100, keep=2, max_update=1000)) == 3
    assert kept_checkpoints(cfg(interval=100, keep=2, max_update=1000, best=3)) == 6
    assert kept_checkpoints(cfg(epochs=5)) == 6 and kept_checkpoints(cfg(epochs=5, keep_epochs=1)) == 2



def test_a_killed_writers_temporaries_are_removed_and_nothing_else(tmp_path):
    from d2v_fairseq.checkpoints import remove_stale_temporaries

    write_atomic(state(2), str(tmp_path / "checkpoint_last.pt"))
    (tmp_path / "checkpoint_1_4.pt.tmp").write_bytes(b"half")
    (tmp_path / "notes.tmp").write_text("not ours")
    assert remove_stale_temporaries(str(tmp_path)) == ["checkpoint_1_4.pt.tmp"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_last.pt", "notes.tmp"]


def test_recovery_never_leaves_the_save_dir_without_checkpoint_last(tmp_path, monkeypatch):
    for updates in (2, 4):
        write_atomic(state(updates), str(tmp_path / f"checkpoint_1_{updates}.pt"))
    last = tmp_path / "checkpoint_last.pt"
    last.write_bytes(b"cut short")
    seen = []

    def checked(operation):
        def call(*args, **kwargs):
            seen.append(operation.__name__)
            assert last.exists(), f"checkpoint_last.pt absent before {operation.__name__}{args}"
            return operation(*args, **kwargs)
        return call

    # a kill may land between any two file operations: before each, the name must be there
    monkeypatch.setattr(os, "replace", checked(os.replace))
    monkeypatch.setattr(os, "link", checked(os.link))
    monkeypatch.setattr(os, "remove", checked(os.remove))
    line = recover_last(str(tmp_path))
    monkeypatch.undo()
    assert seen and "resuming from checkpoint_1_4.pt (update 4)" in line
    assert updates_in(str(last)) == 4 and (tmp_path / "checkpoint_last.pt.unreadable").read_bytes() == b"cut short"


def test_a_missing_last_checkpoint_resumes_from_the_newest_readable(tmp_path):
    assert recover_last(str(tmp_path)) is None  # a new run: nothing to say
    for updates in (2, 4):
        write_atomic(state(updates), str(tmp_path / f"checkpoint_1_{updates}.pt"))
    line = recover_last(str(tmp_path))
    assert "checkpoint_last.pt is missing: resuming from checkpoint_1_4.pt (update 4)" in line
    assert os.stat(tmp_path / "checkpoint_last.pt").st_ino == os.stat(tmp_path / "checkpoint_1_4.pt").st_ino


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_filesystem_without_flock_warns_once_and_the_run_goes_on(tmp_path, monkeypatch, code):
    import fcntl

    def no_flock(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    line = acquire_lock(str(tmp_path))
    try:
        assert line is not None and "no flock" in line and errno.errorcode[code] in line and "docs/scale.md" in line
        assert f"pid {os.getpid()}" in (tmp_path / ".d2v-train.lock").read_text()  # the record is written all the same
    finally:
        release_lock()


def test_only_ewouldblock_means_busy_and_names_the_holder(tmp_path, monkeypatch):
    import fcntl

    (tmp_path / ".d2v-train.lock").write_text("host n7 pid 4242 since 2026-12-01T10:00:00Z\n")

    def busy(fd, operation):
        raise OSError(errno.EWOULDBLOCK, "Resource temporarily unavailable")

    monkeypatch.setattr(fcntl, "flock", busy)
    with pytest.raises(SaveDirBusy) as error:
        acquire_lock(str(tmp_path))
    assert "host n7 pid 4242 (since 2026-12-01T10:00:00Z)" in str(error.value) and str(tmp_path) in str(error.value)


def test_a_garbled_lock_record_is_named_not_a_traceback(tmp_path):
    from d2v_fairseq.locks import DirectoryLock, LockBusy

    (tmp_path / ".lock").write_bytes(b"\x00\x01 not a record")
    holder = DirectoryLock(str(tmp_path), ".lock", "study", "wait")
    assert "unreadable lock record" in holder.acquire()  # taken over: nobody holds the flock
    try:
        with pytest.raises(LockBusy, match=f"host \\S+ pid {os.getpid()}"):
            DirectoryLock(str(tmp_path), ".lock", "study", "wait").acquire()
    finally:
        holder.release()
