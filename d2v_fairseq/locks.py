"""Directory locks that say who holds them: one training per save_dir, one study per work dir.

A lock is ``flock`` on a small file in the directory, held for the life of the holder, whose
text names the holder (``host H pid P since T``). ``flock`` is released by the kernel when the
holder dies, however it dies, so a killed run never blocks the next one; a normal exit empties
the file, so a record left behind means the previous holder was killed (said in one line).

Only ``EWOULDBLOCK`` / ``EAGAIN`` mean "held by another process". A filesystem without ``flock``
(NFS mounted with ``nolock``, Lustre without ``-o flock``: ``ENOLCK``, ``EOPNOTSUPP``) cannot
keep a second writer out: the lock says so in one WARNING line and the holder goes on, its record
written all the same (docs/scale.md).
"""

import errno
import fcntl
import os
import socket
import time
from typing import Optional

from .modules.errors import InputError

BUSY_ERRNOS = (errno.EWOULDBLOCK, errno.EAGAIN)


class LockBusy(InputError):
    """Another live process holds the lock; the message names its host and pid."""


def holder_record() -> str:
    """This process as a lock's text: ``host H pid P since YYYY-MM-DDTHH:MM:SSZ``."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"host {socket.gethostname()} pid {os.getpid()} since {since}"


def describe_holder(text: str) -> str:
    """A lock file's text as the holder it names; a garbled or empty file as such (never an error)."""
    words = text.split()
    if len(words) >= 4 and words[0] == "host" and words[2] == "pid" and words[3].isdigit():
        return " ".join(words[:4]) + (f" (since {words[5]})" if len(words) >= 6 and words[4] == "since" else "")
    if text.strip().isdigit():  # an older study lock: the pid alone
        return f"pid {text.strip()}"
    return "a holder the lock file does not name" if not text.strip() else f"unreadable lock record {text[:60]!r}"


class DirectoryLock:
    """``flock`` on ``directory/name`` for as long as this object holds it.

    ``what`` names the holder's kind in messages ("training", "study"); ``hint`` says what to do
    when it is busy. Use as a context manager, or :meth:`acquire` / :meth:`release`."""

    def __init__(self, directory: str, name: str, what: str, hint: str):
        self.directory, self.what, self.hint = directory, what, hint
        self.path = os.path.join(directory, name)
        self._file = None

    def acquire(self) -> Optional[str]:
        """Takes the lock. Raises LockBusy when another live process holds it; returns a WARNING
        line when it takes over a killed holder's record or the filesystem has no flock."""
        os.makedirs(self.directory, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")
        f.seek(0)
        previous = f.read().strip()
        warning = None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in BUSY_ERRNOS:
                f.close()
                raise LockBusy(f"another {self.what} holds {os.path.basename(self.path)} ({describe_holder(previous)}); "
                               f"{self.hint}", path=self.directory) from None
            warning = (f"{self.path}: this filesystem has no flock ({errno.errorcode.get(error.errno, error.errno)}: "
                       f"NFS mounted with nolock, Lustre without -o flock?): nothing keeps a second {self.what} out "
                       "of this directory; make sure only one runs (docs/scale.md)")
        me = holder_record()
        if warning is None and previous and previous.split(" since ")[0] != me.split(" since ")[0]:
            warning = f"{self.path}: taking over the lock of {describe_holder(previous)} (that process is gone)"
        f.seek(0)
        f.truncate()
        f.write(me + "\n")
        f.flush()
        self.release()
        self._file = f
        return warning

    def release(self) -> None:
        """Empties the record (a normal end) and releases the lock; no-op when not held."""
        if self._file is not None:
            try:
                self._file.truncate(0)
            finally:
                self._file.close()  # closing the descriptor releases the flock
                self._file = None

    def __enter__(self) -> "DirectoryLock":
        warning = self.acquire()
        if warning:
            print(f"WARNING: {warning}", flush=True)
        return self

    def __exit__(self, *exc) -> None:
        self.release()
