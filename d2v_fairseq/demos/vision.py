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

Every stage reuses what an earlier run built.
"""

import os
import time
from typing import Dict

import numpy as np

from ..data.images import ImageEntry, prepare, read_manifest, write_manifest
from ..evaluation import evaluate_images
from ..modules.seeding import seeded_rng
from .common import hydra_train, print_comparison, stage


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


def run_demo(work: str = "work/demo-vision", pretrain_updates: int = 600, finetune_updates: int = 300) -> Dict:
    """Runs the demo (see the module docstring) in ``work``; returns {starting point: scores}."""
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    stage("1/4 scikit-learn's handwritten digits -> 32 x 32 image folder and manifests")
    data = build_data(work)

    stage(f"2/4 data2vec_vision pre-training on every image (labels unused), {pretrain_updates} updates")
    pre_dir = os.path.join(work, "pretrain")
    hydra_train("pretraining", pre_dir, pretrain_updates,
                [f"task.data={data}", "dataset.train_subset=pretrain"],
                os.path.join(work, "pretrain.log"), modality="vision")
    pretrained = os.path.join(pre_dir, "checkpoint_last.pt")

    results = {}
    for name, random_init in (("pretrained", False), ("random init", True)):
        stage(f"3/4 fine-tuning from {name} on the labeled 10%, {finetune_updates} updates")
        tag = name.replace(" ", "_")
        ft_dir = os.path.join(work, f"finetune_{tag}")
        hydra_train("finetuning", ft_dir, finetune_updates,
                    [f"task.data={data}", f"model.model_path={pretrained}",
                     f"model.no_pretrained_weights={str(random_init).lower()}",
                     f"optimizer.groups.default.lr_scheduler.max_update={finetune_updates}",
                     "checkpoint.no_last_checkpoints=false"],
                    os.path.join(work, f"finetune_{tag}.log"), modality="vision")
        results[name] = evaluate_images(os.path.join(ft_dir, "checkpoint_best.pt"), data, "test")

    stage(f"4/4 held-out test digits (10 classes, chance 10%); {time.time() - start:.0f} s in all")
    print_comparison(results, [("top1", "top-1", True), ("top5", "top-5", True)], "top1",
                     f"{results['pretrained']['n']} test images")
    return results

