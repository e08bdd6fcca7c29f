"""A tiny image-classification folder the vision tests share."""

import os

import numpy as np


def write_square_images(root, per_split=(("train", 8), ("val", 4))):
    """Three classes of 32 x 32 images (a bright square in a class-specific corner) under
    ROOT/img/SPLIT/cN/, and their manifests in ROOT/manifests; returns the manifests folder."""
    from PIL import Image

    from d2v_fairseq.data.images import prepare

    rng = np.random.default_rng(0)
    for split, per_class in per_split:
        for label in range(3):
            folder = os.path.join(root, "img", split, f"c{label}")
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
                y, x = [(2, 2), (2, 18), (18, 10)][label]
                pixels[y:y + 12, x:x + 12] = 230
                Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))
    prepare(os.path.join(root, "img"), os.path.join(root, "manifests"), tuple(s for s, _ in per_split))
    return os.path.join(root, "manifests")
