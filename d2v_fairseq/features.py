"""Representations out of any checkpoint, to files (``d2v features CKPT INPUT OUT``), streamed.

INPUT: speech, a fairseq manifest (``.tsv`` whose first line is the audio root), a corpus table
(``.tsv``/``.csv`` with a ``path`` column), a folder of audio files (searched recursively), a list
of audio paths (one per line) or one audio file, at any rate and channel count (read as 16 kHz
mono, normalized as the checkpoint's task says); text, a UTF-8 file of one item per line; images,
a folder of image files or an image manifest. Item ids are paths under the input's root
(:mod:`.data.inputs`): ``a/x.wav`` and ``b/x.wav`` never overwrite each other.

OUT: one ``ID.npy`` per item (``OUT/a/x.wav.npy``), shaped (layers, T, C) or, pooled, (layers, C),
and ``index.tsv`` (id, source, frames); or ``fmt="hubert"``: the dump fairseq's
``examples/hubert/simple_kmeans`` reads, ``{split}_{rank}_{nshard}.npy`` (all frames of one
layer, (N, C), in input order) and ``.len`` (frames per item). ``shard="I/N"`` takes the
contiguous share I of N of the inputs, as simple_kmeans splits a manifest (rank I, nshard N).

Streamed: items are read a window at a time and batched by length (:func:`.inference.stream_batches`),
so memory holds a window, not the corpus. Each batch's files are written whole (``.tmp``, fsync,
rename) before its ``index.tsv`` lines are appended and synced; the hubert dump grows by whole
windows, its ``.len`` last. The same command again skips what is complete. Features are fp32.
"""

import os
import struct
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .checkpoints import fsync_dir
from .data.inputs import Item, find_items, parse_shard, shard_range
from .hub import Representations, input_lengths, load
from .inference import AppendLog, stream_batches, warn_unreadable, write_failures
from .modules.errors import InputError

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


def load_value(reps: Representations, item: Item):
    """The raw input of ``item`` for ``reps.batch``: samples, a line of text, an image path."""
    if reps.modality == "speech":
        from .data.audio import read_audio

        return read_audio(item.source)
    if reps.modality == "text":
        return item.value
    return item.source


def value_size(reps: Representations, value) -> int:
    """A raw input's length in input units (samples, tokens; 1 for an image)."""
    return len(value) if reps.modality != "image" else 1


def batches(reps: Representations, items: Sequence[Item], max_tokens: int, max_items: int, on_error=None):
    """(items, raw values) in batches of similar length (at most ``max_tokens`` padded input units
    and ``max_items`` items), read a window at a time (:func:`.inference.stream_batches`)."""
    for batch in stream_batches(items, lambda item: load_value(reps, item), lambda v: value_size(reps, v),
                                max_tokens, max_items, on_error=on_error):
        yield [item for item, _ in batch], [value for _, value in batch]


NPY_HEADER = 128  # bytes: room for any (rows, dim) shape, so the header is rewritten in place as the dump grows


def _npy_header(rows: int, dim: int) -> bytes:
    """A .npy (version 1.0) header of a float32 (rows, dim) array, padded to NPY_HEADER bytes."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    text = text.ljust(NPY_HEADER - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


class HubertDump:
    """``{split}_{rank}_{nshard}.npy`` / ``.len`` of one shard, grown by whole windows in input
    order (see the module docstring); ``done``: the items already in it (a re-run skips them)."""

    def __init__(self, out_dir: str, split: str, rank: int, nshard: int):
        self.npy = os.path.join(out_dir, f"{split}_{rank}_{nshard}.npy")
        self.lengths = AppendLog(os.path.join(out_dir, f"{split}_{rank}_{nshard}.len"), key=str)
        self.dim: Optional[int] = None
        with open(self.lengths.path, encoding="utf-8") as f:
            counts = [int(line) for line in f if line.strip()]
        self.done, frames = len(counts), sum(counts)
        if self.done and os.path.isfile(self.npy):
            with open(self.npy, "rb") as f:
                np.lib.format.read_magic(f)
                self.dim = int(np.lib.format.read_array_header_1_0(f)[0][1])  # shape (rows, dim)
            with open(self.npy, "r+b") as f:  # what a kill left past the last whole window goes
                f.truncate(NPY_HEADER + frames * self.dim * 4)
                f.seek(0)
                f.write(_npy_header(frames, self.dim))
                f.flush()
                os.fsync(f.fileno())
        elif self.done:
            raise InputError(f"{self.lengths.path} lists {self.done} items but {self.npy} is missing: remove both "
                             "to dump this shard again")
        self.frames = frames

    def append(self, features: Sequence[np.ndarray]) -> None:
        """Appends the (T_i, C) features of the next items, in input order."""
        if not features:
            return
        if self.dim is None:
            self.dim = int(features[0].shape[1])
            with open(self.npy, "wb") as f:
                f.write(_npy_header(0, self.dim))
        with open(self.npy, "r+b") as f:
            f.seek(NPY_HEADER + self.frames * self.dim * 4)
            for feats in features:
                f.write(np.ascontiguousarray(feats, dtype="<f4").tobytes())
            f.flush()
            os.fsync(f.fileno())
            self.frames += sum(len(feats) for feats in features)
            f.seek(0)
            f.write(_npy_header(self.frames, self.dim))
            f.flush()
            os.fsync(f.fileno())
        self.lengths.append([str(len(feats)) for feats in features])  # last: the items are whole now
        self.done += len(features)

    def close(self) -> None:
        self.lengths.close()


def save_whole(array: np.ndarray, path: str) -> None:
    """``np.save`` to ``path`` whole or not at all (``.tmp``, fsync, rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def extract(checkpoint: str, source: str, out_dir: str, layers: str = "all", pool: str = "none",
            fmt: str = "npy", split: str = "train", max_tokens: int = 1_600_000, max_items: int = 64,
            device: str = "cpu", sp_model: Optional[str] = None, progress: bool = False,
            data_dir: Optional[str] = None, shard: Optional[str] = None, precision: str = "fp32") -> Dict:
    """Writes the features of every item of ``source`` (its ``shard``, ``I/N``; see the module
    docstring), the forward passes in ``precision`` (fp32, bf16; fp16 on CUDA; features stored
    fp32); returns {"items" (written now), "skipped" (complete before), "failed", "frames",
    "seconds", "items_per_s", "audio_s_per_s" (speech), "layers"}."""
    if pool not in ("none", "mean"):
        raise InputError(f"--pool {pool!r}: expected none or mean")
    if fmt not in ("npy", "hubert"):
        raise InputError(f"--format {fmt!r}: expected npy or hubert")
    rank, nshard = parse_shard(shard)
    reps = load(checkpoint, sp_model=sp_model, data_dir=data_dir, precision=precision)
    reps.encoder.to(device)
    chosen = parse_layers(layers, reps.num_layers)
    if fmt == "hubert" and (len(chosen) != 1 or pool != "none"):
        raise InputError("--format hubert takes one layer (--layers N) and no pooling")
    items = find_items([source], reps.modality)
    start, end = shard_range(len(items), rank, nshard)
    items = items[start:end]
    os.makedirs(out_dir, exist_ok=True)
    if fmt == "hubert":
        dump = HubertDump(out_dir, split, rank, nshard)
        todo, written = items[dump.done:], None
    else:
        name = "index.tsv" if nshard == 1 else f"index_{rank}_{nshard}.tsv"
        written = AppendLog(os.path.join(out_dir, name), key=lambda line: line.split("\t", 1)[0])
        if not written.done:
            written.append(["id\tsource\tframes"])
        todo = [item for item in items if not (item.id in written.done
                                               and os.path.isfile(os.path.join(out_dir, item.id + ".npy")))]
    failures: List = []
    on_error = None if fmt == "hubert" else warn_unreadable(failures)  # a hubert dump lines up with its input
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="item", desc="features", disable=not progress, file=sys.stderr)
    began, audio_samples, frames_total, done = time.perf_counter(), 0, 0, 0
    try:
        # hubert: whole windows in input order; npy: any order, a batch at a time
        window = 4 * max_items
        for first in range(0, len(todo), window):
            part = todo[first:first + window]
            found: Dict[str, np.ndarray] = {}
            for batch_items, values in batches(reps, part, max_tokens, max_items, on_error):
                inputs, padding = reps.batch(values)
                states, _ = reps.hidden_states(inputs.to(device), None if padding is None else padding.to(device))
                stacked = torch.stack([states[i] for i in chosen], 1).cpu()  # (B, layers, T, C)
                lengths = reps.output_lengths(input_lengths(inputs, padding))
                lines = []
                for item, value, feats, n in zip(batch_items, values, stacked, lengths, strict=True):
                    feats = feats[:, :n]  # (layers, T, C): this item's frames only
                    audio_samples += len(value) if reps.modality == "speech" else 0
                    frames_total += n
                    if fmt == "hubert":
                        found[item.id] = feats[0].numpy()
                        continue
                    out = feats.mean(1) if pool == "mean" else feats  # (layers, C) or (layers, T, C)
                    save_whole(out.numpy().astype(np.float32), os.path.join(out_dir, item.id + ".npy"))
                    lines.append(f"{item.id}\t{item.source}\t{n}")
                if written is not None:
                    fsync_dir(out_dir)
                    written.append(lines)
                done += len(batch_items)
                bar.update(len(batch_items))
            if fmt == "hubert":
                dump.append([found[item.id] for item in part])
    finally:
        bar.close()
        (dump if fmt == "hubert" else written).close()
    if fmt != "hubert":
        write_failures(os.path.join(out_dir, "failed.tsv"), failures)
    seconds = time.perf_counter() - began
    summary = {"items": done, "skipped": len(items) - len(todo), "failed": failures, "frames": frames_total,
               "seconds": seconds, "layers": chosen, "items_per_s": done / max(seconds, 1e-9),
               "modality": reps.modality}
    if reps.modality == "speech":
        summary["audio_s_per_s"] = audio_samples / 16000 / max(seconds, 1e-9)
    return summary
