"""Representations out of any checkpoint, to files (``d2v features CKPT INPUT OUT``).

INPUT: speech, a fairseq manifest (``.tsv`` whose first line is the audio root), a corpus table
(``.tsv``/``.csv`` with a ``path`` column), a folder of audio files, a list of audio paths (one per
line) or one audio file, at any rate and channel count (read as 16 kHz mono, normalized as the
checkpoint's task says); text, a UTF-8 file of one item per line; images, a folder of image files
or an image manifest.

OUT: one ``ITEM.npy`` per item, shaped (layers, T, C) or, pooled, (layers, C), and ``index.tsv``
(item id, source, frames); or ``fmt="hubert"``: the dump fairseq's
``examples/hubert/simple_kmeans`` reads, ``{split}_0_1.npy`` (all frames of one layer, (N, C)) and
``{split}_0_1.len`` (frames per item). Items are batched by length; features are fp32.
"""

import csv
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from .data.corpus import AUDIO_EXTENSIONS
from .hub import Representations, input_lengths, load
from .modules.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class Item:
    """One input: its id (the output file's stem), where it came from and how to read it."""
    id: str
    source: str  # a path, or "FILE:LINE" for a line of text
    value: object = None  # the text of a line; None for files


def parse_layers(spec: str, num_layers: int) -> List[int]:
    """``all`` | ``last`` | ``N[,M...]`` -> layer indices (0: the blocks' input, i: block i)."""
    if spec == "all":
        return list(range(num_layers))
    if spec == "last":
        return [num_layers - 1]
    try:
        layers = [int(v) for v in spec.split(",")]
    except ValueError:
        raise InputError(f"--layers {spec!r}: expected all, last or comma-separated numbers") from None
    bad = [v for v in layers if not 0 <= v < num_layers]
    if bad:
        raise InputError(f"--layers {spec!r}: layer {bad[0]} does not exist (0 to {num_layers - 1})")
    return layers


def read_items(source: str, modality: str) -> List[Item]:
    """The items of INPUT for ``modality`` (see the module docstring), in input order."""
    if not os.path.exists(source):
        raise InputError("no such file or folder", path=source)
    if modality == "text":
        with open(source, encoding="utf-8") as f:
            return [Item(f"{n:06d}", f"{source}:{n}", line.rstrip("\n")) for n, line in enumerate(f, start=1)]
    extensions = AUDIO_EXTENSIONS if modality == "speech" else IMAGE_EXTENSIONS
    if os.path.isdir(source):
        paths = sorted(os.path.join(root, name) for root, _, files in os.walk(source) for name in files
                       if name.lower().endswith(extensions))
        if not paths:
            raise InputError(f"no {modality} files ({', '.join(extensions)})", path=source)
        return [Item(_stem(p, source), p) for p in paths]
    if source.lower().endswith(extensions):
        return [Item(_stem(source, os.path.dirname(source)), source)]
    with open(source, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        raise InputError("empty input list", path=source)
    first = lines[0]
    if os.path.isdir(first.split("\t")[0]):  # a manifest: root, then relative paths
        root = first.split("\t")[0]
        paths = [os.path.join(root, line.split("\t")[0]) for line in lines[1:] if line]
    elif "path" in re.split(r"[\t,]", first):  # a corpus table
        delimiter = "," if source.lower().endswith(".csv") else "\t"
        with open(source, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter=delimiter))
        base = os.path.dirname(os.path.abspath(source))
        paths = [os.path.join(base, r["path"]) for r in rows]
    else:  # a list of paths
        paths = [line.strip() for line in lines if line.strip()]
    common = os.path.commonpath([os.path.abspath(p) for p in paths]) if len(paths) > 1 else os.path.dirname(paths[0])
    return [Item(_stem(os.path.abspath(p), common), p) for p in paths]


def _stem(path: str, root: str) -> str:
    """A file-name-safe id for ``path`` (relative to ``root``, folders joined by ``__``)."""
    rel = os.path.relpath(path, root) if root else path
    return re.sub(r"[^\w.-]+", "_", os.path.splitext(rel)[0].replace(os.sep, "__")).strip("_")


def load_value(reps: Representations, item: Item):
    """The raw input of ``item`` for ``reps.batch``: samples, a line of text, an image path."""
    if reps.modality == "speech":
        from .data.audio import read_audio

        return read_audio(item.source)
    if reps.modality == "text":
        return item.value
    return item.source


def batches(reps: Representations, items: Sequence[Item], max_tokens: int, max_items: int):
    """(items, raw values) in batches of similar length: at most ``max_tokens`` padded input
    units (samples or tokens) and ``max_items`` items per batch."""
    values = [load_value(reps, item) for item in items]
    sizes = [len(v) if reps.modality != "image" else 1 for v in values]
    order = sorted(range(len(items)), key=lambda i: -sizes[i])
    batch: List[int] = []
    for i in order:
        if batch and (len(batch) + 1 > max_items or (len(batch) + 1) * sizes[batch[0]] > max_tokens):
            yield [items[j] for j in batch], [values[j] for j in batch]
            batch = []
        batch.append(i)
    if batch:
        yield [items[j] for j in batch], [values[j] for j in batch]


def extract(checkpoint: str, source: str, out_dir: str, layers: str = "all", pool: str = "none",
            fmt: str = "npy", split: str = "train", max_tokens: int = 1_600_000, max_items: int = 64,
            device: str = "cpu", sp_model: Optional[str] = None,
            progress: Optional[Callable[[int], None]] = None, data_dir: Optional[str] = None) -> Dict:
    """Writes the features of every item of ``source`` (see the module docstring); returns
    {"items", "frames", "seconds", "items_per_s", "audio_s_per_s" (speech), "layers"}."""
    if pool not in ("none", "mean"):
        raise InputError(f"--pool {pool!r}: expected none or mean")
    if fmt not in ("npy", "hubert"):
        raise InputError(f"--format {fmt!r}: expected npy or hubert")
    reps = load(checkpoint, sp_model=sp_model, data_dir=data_dir)
    reps.encoder.to(device)
    chosen = parse_layers(layers, reps.num_layers)
    if fmt == "hubert" and (len(chosen) != 1 or pool != "none"):
        raise InputError("--format hubert takes one layer (--layers N) and no pooling")
    items = read_items(source, reps.modality)
    os.makedirs(out_dir, exist_ok=True)
    start, audio_samples, frames_total = time.perf_counter(), 0, 0
    index, hubert_parts, hubert_lengths = {}, {}, {}
    for batch_items, values in batches(reps, items, max_tokens, max_items):
        inputs, padding = reps.batch(values)
        states, out_padding = reps.hidden_states(inputs.to(device), None if padding is None else padding.to(device))
        stacked = torch.stack([states[i] for i in chosen], 1).cpu()  # (B, layers, T, C)
        lengths = reps.output_lengths(input_lengths(inputs, padding))
        for item, value, feats, n in zip(batch_items, values, stacked, lengths, strict=True):
            feats = feats[:, :n]  # (layers, T, C): this item's frames only
            if reps.modality == "speech":
                audio_samples += len(value)
            frames_total += n
            if fmt == "hubert":
                hubert_parts[item.id], hubert_lengths[item.id] = feats[0].numpy(), n
            else:
                out = feats.mean(1) if pool == "mean" else feats  # (layers, C) or (layers, T, C)
                np.save(os.path.join(out_dir, f"{item.id}.npy"), out.numpy().astype(np.float32))
            index[item.id] = (item.source, n)
        if progress:
            progress(len(batch_items))
    seconds = time.perf_counter() - start
    if fmt == "hubert":  # input order, as simple_kmeans pairs them with its manifest
        np.save(os.path.join(out_dir, f"{split}_0_1.npy"),
                np.concatenate([hubert_parts[item.id] for item in items]).astype(np.float32))
        with open(os.path.join(out_dir, f"{split}_0_1.len"), "w") as f:
            f.write("".join(f"{hubert_lengths[item.id]}\n" for item in items))
    with open(os.path.join(out_dir, "index.tsv"), "w", encoding="utf-8") as f:
        f.write("id\tsource\tframes\n" + "".join(f"{item.id}\t{index[item.id][0]}\t{index[item.id][1]}\n"
                                                 for item in items))
    summary = {"items": len(items), "frames": frames_total, "seconds": seconds, "layers": chosen,
               "items_per_s": len(items) / max(seconds, 1e-9), "modality": reps.modality}
    if reps.modality == "speech":
        summary["audio_s_per_s"] = audio_samples / 16000 / max(seconds, 1e-9)
    return summary
