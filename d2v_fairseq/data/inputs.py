"""The inputs of inference over a corpus: which items, in which order, under which ids, and which
contiguous share of them one shard takes.

Speech inputs are audio files, folders (searched recursively for audio), fairseq manifests (the
audio root, then ``relative/path<TAB>samples``), corpus tables (``.tsv``/``.csv`` with a ``path``
column) and lists of paths (one per line), in any mix; text, a UTF-8 file of one item per line;
images, image files, folders and manifests. Items keep the input's order (folders sorted).

An item's id is its path under its input's root (``a/x.wav``: the manifest's relative path, a
folder's relative path, a list's path under the paths' common folder), so ``a/x.wav``, ``b/x.wav``
and ``x.flac`` never share one; a text line's id is its line number. Two items of the same id
(a path listed twice) are an error naming both.
"""

import csv
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..modules.errors import InputError
from .corpus import AUDIO_EXTENSIONS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class Item:
    """One input: ``id`` (unique in the run; see the module docstring), ``source`` (a path, or
    ``FILE:LINE`` for a line of text), ``value`` (the text of a line; None for files) and ``where``
    (the input that named it, ``FILE:LINE`` where it has lines)."""
    id: str
    source: str
    value: object = None
    where: str = ""


def extensions_of(modality: str) -> Tuple[str, ...]:
    """The file extensions a folder search takes for ``modality`` (speech or image)."""
    return AUDIO_EXTENSIONS if modality == "speech" else IMAGE_EXTENSIONS


def find_items(sources: Sequence[str], modality: str) -> List[Item]:
    """Every item of ``sources`` (see the module docstring), in order. Raises InputError naming a
    missing input, an input without items, or two items of one id."""
    items: List[Item] = []
    for source in sources:
        items += _items_of(source, modality)
    seen = {}
    clashes = []
    for item in items:
        if item.id in seen:
            clashes.append(f"{item.where or item.source}: {item.source} has the id {item.id!r} of "
                           f"{seen[item.id].where or seen[item.id].source}")
        else:
            seen[item.id] = item
    if clashes:
        raise InputError(f"{len(clashes)} item(s) named twice (their outputs would overwrite each other): "
                         + "; ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else ""))
    return items


def _items_of(source: str, modality: str) -> List[Item]:
    if not os.path.exists(source):
        raise InputError("no such file or folder", path=source)
    if modality == "text":
        with open(source, encoding="utf-8") as f:
            return [Item(f"{n:06d}", f"{source}:{n}", line.rstrip("\n"), f"{source}:{n}")
                    for n, line in enumerate(f, start=1)]
    extensions = extensions_of(modality)
    if os.path.isdir(source):
        paths = sorted(os.path.join(root, name) for root, _, files in os.walk(source) for name in files
                       if name.lower().endswith(extensions))
        if not paths:
            raise InputError(f"no {modality} files ({', '.join(extensions)})", path=source)
        return [Item(_relative(p, source), p, where=source) for p in paths]
    if source.lower().endswith(extensions):
        return [Item(os.path.basename(source), source, where=source)]
    with open(source, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        raise InputError("empty input list", path=source)
    first = lines[0]
    if os.path.isdir(first.split("\t")[0]):  # a manifest: root, then relative paths
        root = first.split("\t")[0]
        return [Item(line.split("\t")[0], os.path.join(root, line.split("\t")[0]), where=f"{source}:{n}")
                for n, line in enumerate(lines[1:], start=2) if line.strip()]
    if "path" in re.split(r"[\t,]", first):  # a corpus table
        delimiter = "," if source.lower().endswith(".csv") else "\t"
        with open(source, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter=delimiter))
        base = os.path.dirname(os.path.abspath(source))
        paths = [(os.path.join(base, r["path"]), f"{source}:{n}") for n, r in enumerate(rows, start=2)]
    else:  # a list of paths
        paths = [(line.strip(), f"{source}:{n}") for n, line in enumerate(lines, start=1) if line.strip()]
    absolute = [os.path.abspath(p) for p, _ in paths]
    common = os.path.commonpath(absolute) if len(paths) > 1 else os.path.dirname(absolute[0])
    if len(paths) > 1 and common in absolute:  # one path is the common part itself (a repeated path)
        common = os.path.dirname(common)
    return [Item(_relative(a, common), p, where=w) for a, (p, w) in zip(absolute, paths, strict=True)]


def _relative(path: str, root: str) -> str:
    """``path`` under ``root``, with ``/`` between folders (the id of an item)."""
    return os.path.relpath(path, root).replace(os.sep, "/")


def parse_shard(spec: Optional[str]) -> Tuple[int, int]:
    """``--shard I/N`` -> (I, N): shard I (0 to N-1) of N; None -> (0, 1)."""
    if not spec:
        return 0, 1
    try:
        index, count = (int(v) for v in spec.split("/"))
    except ValueError:
        raise InputError(f"--shard {spec!r}: expected I/N, e.g. 0/4 (shard I of N, counted from 0)") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {spec!r}: I must be 0 to N-1 and N at least 1")
    return index, count


def shard_range(total: int, index: int, count: int) -> Tuple[int, int]:
    """[start, end) of shard ``index`` of ``count`` over ``total`` items: contiguous ranges, split as
    fairseq's ``examples/hubert/simple_kmeans`` splits a manifest (``round(total / count * i)``)."""
    return round(total / count * index), round(total / count * (index + 1))
