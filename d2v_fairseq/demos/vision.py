"""The vision demo (``make demo-vision``): data2vec_vision on real handwritten digits.

1. scikit-learn's 1,797 handwritten digits (8 x 8 scans, shipped with the package) written
   as an image folder, upscaled to 32 x 32; a labeled 10% for fine-tuning, a validation
   split and a held-out test split;
2. pre-train a tiny data2vec_vision on all the images without labels
   (configs/vision/pretraining/tiny_cpu.yaml, 4 x 4 patches);
3. fine-tune (configs/vision/finetuning/tiny_cpu.yaml) from the pre-trained model and, at the
   same budget, from random initialization;
4. print top-1 / top-5 of both on the test split.

    d2v demo vision --work work/demo-vision

``--method data2vec2`` pre-trains data2vec 2.0 (configs/vision/pretraining/v2_tiny_cpu.yaml, the
same 4 blocks of 64 dims) beside v1, each timed, fine-tunes each (2.0 with
finetuning/v2_tiny_cpu.yaml) and random init, and prints one table: rows data2vec 2.0,
data2vec (v1), random init; columns top-1, top-5 and the seconds of pre-training.

Every stage reuses what an earlier run built.
"""

import os
import time
from typing import Dict

import numpy as np

from ..data.images import ImageEntry, prepare, read_manifest, write_manifest
from ..evaluation import evaluate_images
from ..modules.seeding import seeded_rng
from .common import hydra_train, print_comparison, stage, timed_pretraining


def build_data(work: str, label_share: float = 0.1, test_share: float = 0.3, seed: int = 1) -> str:
    """Image folder + manifests under ``work``: train (``label_share`` of the digits), val, test
    and ``pretrain`` (every image, labels unused). Returns the manifest dir."""
    from PIL import Image
    from sklearn.datasets import load_digits

    manifests = os.path.join(work, "manifests")
    if os.path.isfile(os.path.join(manifests, "pretrain.tsv")):
        print(f"  reusing {manifests}")
        return manifests
    digits = load_digits()
    rng = seeded_rng(seed)
    order = rng.permutation(len(digits.target))
    n_train, n_test = int(label_share * len(order)), int(test_share * len(order))
    splits = {"train": order[:n_train], "test": order[n_train:n_train + n_test], "val": order[n_train + n_test:]}
    images = os.path.join(work, "images")
    for split, indices in splits.items():
        for i in indices:
            folder = os.path.join(images, split, str(digits.target[i]))
            os.makedirs(folder, exist_ok=True)
            pixels = (digits.images[i] * (255.0 / 16.0)).astype(np.uint8)  # 0..16 ink -> 0..255
            Image.fromarray(pixels, mode="L").resize((32, 32), Image.BICUBIC).save(os.path.join(folder, f"{i:04d}.png"))
    counts = prepare(images, manifests, splits=("train", "val", "test"))
    everything = []
    for split in ("train", "val", "test"):
        _, entries = read_manifest(os.path.join(manifests, f"{split}.tsv"))
        everything += [ImageEntry(os.path.join(split, e.path), e.label, e.width, e.height) for e in entries]
    write_manifest(os.path.join(manifests, "pretrain.tsv"), images, everything)
    print("  " + ", ".join(f"{s} {n}" for s, n in counts.items()) + f"; pre-training on all {len(everything)}")
    return manifests


def run_demo(work: str = "work/demo-vision", pretrain_updates: int = 600, finetune_updates: int = 300,
             method: str = "data2vec", v2_pretrain_updates: int = 200) -> Dict:
    """Runs the demo (see the module docstring) in ``work``; returns {starting point: scores}."""
    if method not in ("data2vec", "data2vec2"):
        raise ValueError(f"--method {method}: data2vec or data2vec2")
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    stage("1/4 scikit-learn's handwritten digits -> 32 x 32 image folder and manifests")
    data = build_data(work)

    # (row, pre-training config, updates, save dir, fine-tuning config)
    methods = [("pretrained", "tiny_cpu", pretrain_updates, "pretrain", "tiny_cpu")]
    if method == "data2vec2":
        # one folder per 2.0 budget: another budget is another cosine schedule, not a continuation
        methods = [("data2vec 2.0", "v2_tiny_cpu", v2_pretrain_updates, f"pretrain_v2_{v2_pretrain_updates}", "v2_tiny_cpu"),
                   ("data2vec (v1)", "tiny_cpu", pretrain_updates, "pretrain", "tiny_cpu")]
    seconds = {}
    for name, config, updates, folder, _ in methods:
        label = "data2vec 2.0" if config.startswith("v2") else "data2vec_vision"
        stage(f"2/4 {label} pre-training on every image (labels unused), {updates} updates")
        seconds[name] = timed_pretraining(os.path.join(work, folder), updates,
                                          [f"task.data={data}", "dataset.train_subset=pretrain"],
                                          os.path.join(work, f"{folder}.log"), "vision", config)

    results = {}
    starts = [(name, os.path.join(work, folder, "checkpoint_last.pt"), ft_config, False)
              for name, _, _, folder, ft_config in methods]
    starts.append(("random init", starts[-1][1], "tiny_cpu", True))
    for name, pretrained, ft_config, random_init in starts:
        stage(f"3/4 fine-tuning from {name} on the labeled 10%, {finetune_updates} updates")
        tag = {"data2vec 2.0": f"v2_{v2_pretrain_updates}", "data2vec (v1)": "pretrained"}.get(name, name.replace(" ", "_"))
        ft_dir = os.path.join(work, f"finetune_{tag}")
        hydra_train("finetuning", ft_dir, finetune_updates,
                    [f"task.data={data}", f"model.model_path={pretrained}",
                     f"model.no_pretrained_weights={str(random_init).lower()}",
                     f"optimizer.groups.default.lr_scheduler.max_update={finetune_updates}",
                     "checkpoint.no_last_checkpoints=false"],
                    os.path.join(work, f"finetune_{tag}.log"), modality="vision", config_name=ft_config)
        results[name] = dict(evaluate_images(os.path.join(ft_dir, "checkpoint_best.pt"), data, "test"),
                             pretrain_s=seconds.get(name, 0.0))

    stage(f"4/4 held-out test digits (10 classes, chance 10%); {time.time() - start:.0f} s in all")
    columns = [("top1", "top-1", True), ("top5", "top-5", True)]
    if method == "data2vec2":
        columns.append(("pretrain_s", "pre-train s", ".0f"))
    print_comparison(results, columns, "top1", f"{results['random init']['n']} test images")
    if method == "data2vec2":
        v1, v2 = results["data2vec (v1)"], results["data2vec 2.0"]
        print(f"data2vec 2.0: top-1 {v2['top1']:.1f}% after {v2['pretrain_s']:.0f} s of pre-training "
              f"({v2_pretrain_updates} updates); v1: {v1['top1']:.1f}% after {v1['pretrain_s']:.0f} s "
              f"({pretrain_updates} updates): {v1['pretrain_s'] / max(v2['pretrain_s'], 1e-9):.1f}x less "
              f"pre-training time, {v2['top1'] - v1['top1']:+.1f} top-1 points")
    return results
