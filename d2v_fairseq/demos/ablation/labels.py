"""HuBERT's first-iteration labels for a corpus: MFCC k-means clusters per 10-ms frame, made as
fairseq's ``examples/hubert/simple_kmeans`` makes them.

1. MFCCs with deltas (:mod:`...data.mfcc`; fairseq's ``dump_mfcc_feature.py`` needs torchaudio)
   of every recording of ``{split}.tsv``, dumped as that script dumps them: ``{split}_0_1.npy``
   (all frames) and ``{split}_0_1.len`` (frames per manifest line);
2. fairseq's ``learn_kmeans.py`` on the train dump (scikit-learn's mini-batch k-means);
3. fairseq's ``dump_km_label.py`` for each split, its ``{split}_0_1.km`` named ``{split}.km``;
   and ``dict.km.txt`` (every cluster, count 1).

The label folder is made once: a re-run finds ``done.json`` (the corpus fingerprint, the clusters)
and keeps it.
"""

import json
import os
import subprocess
import sys
from typing import Sequence

import numpy as np
import torch

from ...checkpoints import write_atomic_json, write_atomic_text
from ...data.audio import read_audio
from ...data.manifest import read_manifest
from ...data.mfcc import mfcc_with_deltas
from ...features import save_whole
from .recipes import StudyError

CLUSTERS = 100  # fairseq's first HuBERT iteration on LibriSpeech


def simple_kmeans_dir() -> str:
    """fairseq's ``examples/hubert/simple_kmeans`` as the wheel installs it."""
    import fairseq

    return os.path.join(os.path.dirname(fairseq.__file__), "examples", "hubert", "simple_kmeans")


def dump_mfcc(data: str, split: str, out: str) -> None:
    """``out/{split}_0_1.npy`` and ``.len`` of the MFCCs of ``data/{split}.tsv``'s recordings."""
    root, entries = read_manifest(os.path.join(data, f"{split}.tsv"))
    features = [mfcc_with_deltas(torch.from_numpy(read_audio(os.path.join(root, e.path)))).numpy()
                for e in entries]
    save_whole(np.concatenate(features).astype(np.float32), os.path.join(out, f"{split}_0_1.npy"))
    write_atomic_text(os.path.join(out, f"{split}_0_1.len"), "".join(f"{len(x)}\n" for x in features))


def _fairseq_script(name: str, args: Sequence[str], log: str) -> None:
    script = os.path.join(simple_kmeans_dir(), name)
    with open(log, "a") as out:
        proc = subprocess.run([sys.executable, script, *args], cwd=simple_kmeans_dir(), stdout=out,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise StudyError(f"fairseq's {name} failed (exit {proc.returncode}); its output is in {log}")


def make_labels(data: str, out: str, fingerprint: str, splits: Sequence[str] = ("train", "valid"),
                clusters: int = CLUSTERS, seed: int = 1) -> str:
    """The label folder ``out`` for the manifests in ``data`` (see the module docstring); returns it."""
    marker = os.path.join(out, "done.json")
    wanted = {"data_fingerprint": fingerprint, "clusters": clusters, "seed": seed, "splits": list(splits)}
    if os.path.isfile(marker):
        with open(marker) as f:
            if json.load(f) == wanted:
                return out
    features = os.path.join(out, "mfcc")
    os.makedirs(features, exist_ok=True)
    log = os.path.join(out, "simple_kmeans.log")
    for split in splits:
        dump_mfcc(data, split, features)
    model = os.path.join(out, "kmeans.model")
    _fairseq_script("learn_kmeans.py", [features, splits[0], "1", model, str(clusters), "--percent", "1.0",
                                        "--seed", str(seed)], log)
    for split in splits:
        _fairseq_script("dump_km_label.py", [features, split, model, "1", "0", out], log)
        os.replace(os.path.join(out, f"{split}_0_1.km"), os.path.join(out, f"{split}.km"))
    write_atomic_text(os.path.join(out, "dict.km.txt"), "".join(f"{i} 1\n" for i in range(clusters)))
    write_atomic_json(marker, wanted)
    return out
