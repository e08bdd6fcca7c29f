"""Inference over a corpus, exactly once: one batched reader for transcription and features, and
the output files that make a kill cost at most the batch in flight.

* :func:`stream_batches` reads the items of a corpus in windows of a few batches (memory bounded
  by a window, never the corpus), sorts each window by length and cuts it into batches of at most
  ``max_tokens`` padded input units and ``max_items`` items; an item that cannot be read is
  handed to ``on_error`` (a WARNING naming it) and the rest go on.
* :class:`AppendLog` is a line-per-item output file: each batch's lines are appended in one write,
  flushed and fsynced; a re-run reads the keys already there (a line cut by a kill is dropped) and
  skips them.

fairseq's ``examples/hubert/simple_kmeans/dump_*_feature.py`` dump features the same way: per
rank, appended as they go.
"""

import os
import sys
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from .data.inputs import Item
from .modules.errors import InputError, first_lines


class AppendLog:
    """A text file of one line per finished item, appended per batch and synced (see the module
    docstring). ``key(line)`` reads an item's key back from its line."""

    def __init__(self, path: str, key: Callable[[str], str]):
        self.path, self.key = path, key
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.done: Set[str] = set()
        if os.path.isfile(path):
            self._recover()
        self._file = open(path, "a", encoding="utf-8")

    def _recover(self) -> None:
        """Reads the keys of the complete lines; drops a last line a kill cut short."""
        with open(self.path, "rb") as f:
            data = f.read()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(len(whole))
                f.flush()
                os.fsync(f.fileno())
        for line in whole.decode("utf-8").splitlines():
            if line.strip():
                self.done.add(self.key(line))

    def append(self, lines: Sequence[str]) -> None:
        """Appends ``lines`` (no newlines inside) in one write, then flushes and fsyncs."""
        if not lines:
            return
        self._file.write("".join(line + "\n" for line in lines))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Closes the file (what was appended is already on disk)."""
        self._file.close()


def stream_batches(items: Iterable[Item], load: Callable[[Item], object], size: Callable[[object], int],
                   max_tokens: int, max_items: int, window: Optional[int] = None,
                   on_error: Optional[Callable[[Item, str], None]] = None) -> Iterator[List[Tuple[Item, object]]]:
    """Batches of (item, value) from ``items``: ``load(item)`` reads a value (raising InputError
    when it cannot), ``size(value)`` its input units. Each window of ``window`` items (default four
    batches' worth) is read, sorted longest first and cut into batches whose padded size (items x
    the longest) stays within ``max_tokens``, at most ``max_items`` items (one item alone may be
    larger). Memory holds one window."""
    window = window or 4 * max_items
    chunk: List[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == window:
            yield from _window_batches(chunk, load, size, max_tokens, max_items, on_error)
            chunk = []
    if chunk:
        yield from _window_batches(chunk, load, size, max_tokens, max_items, on_error)


def _window_batches(chunk, load, size, max_tokens, max_items, on_error):
    loaded = []
    for item in chunk:
        try:
            loaded.append((item, load(item)))
        except (InputError, OSError, RuntimeError) as error:  # unreadable: named, the rest go on
            if on_error is None:
                raise
            on_error(item, first_lines(error))
    loaded.sort(key=lambda pair: -size(pair[1]))
    batch: List[Tuple[Item, object]] = []
    for pair in loaded:
        if batch and (len(batch) + 1 > max_items or (len(batch) + 1) * size(batch[0][1]) > max_tokens):
            yield batch
            batch = []
        batch.append(pair)
    if batch:
        yield batch


def warn_unreadable(failures: List[Tuple[str, str]]) -> Callable[[Item, str], None]:
    """An ``on_error`` for :func:`stream_batches` that prints a WARNING naming the item and keeps
    (source, reason) in ``failures``."""
    def on_error(item: Item, reason: str) -> None:
        print(f"WARNING: {item.source}: cannot be read, skipped: {reason}", file=sys.stderr, flush=True)
        failures.append((item.source, reason))
    return on_error


def write_failures(path: str, failures: Sequence[Tuple[str, str]]) -> None:
    """``path<TAB>reason`` of every item that could not be read, written whole (or removed when
    there is none)."""
    from .checkpoints import write_atomic_text

    if not failures:
        if os.path.isfile(path):
            os.remove(path)
        return
    write_atomic_text(path, "".join(f"{source}\t{reason}\n" for source, reason in failures))
