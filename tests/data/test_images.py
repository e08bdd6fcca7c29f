"""Image folders: manifests, decoding to RGB, bad input, augmentation that repeats, mixup/cutmix."""

import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from d2v_fairseq.data.images import (
    ImageDataError,
    ImageFolderDataset,
    mixup_cutmix,
    one_hot,
    open_rgb,
    prepare,
    read_manifest,
)


def write_folder(root, split="train", classes=("cat", "dog"), per_class=3, size=(40, 30)):
    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(root / split / c, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / c / f"{i}.png")


def test_manifests_list_every_image_with_its_class_and_size(tmp_path):
    write_folder(tmp_path / "img", "train")
    write_folder(tmp_path / "img", "val", classes=("dog",), per_class=2, size=(20, 50))
    counts = prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train", "val"))
    assert counts == {"train": 6, "val": 2}
    assert (tmp_path / "m" / "classes.txt").read_text().split() == ["cat", "dog"]
    root, entries = read_manifest(str(tmp_path / "m" / "val.tsv"))
    assert root == str(tmp_path / "img" / "val")
    assert [(e.path, e.label, e.width, e.height) for e in entries] == [("dog/0.png", 1, 20, 50), ("dog/1.png", 1, 20, 50)]


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_other_colour_modes_become_rgb(tmp_path, mode):
    path = str(tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png"))
    Image.new(mode, (5, 4)).save(path)
    image = open_rgb(path)
    assert image.mode == "RGB" and image.size == (5, 4)


def test_corrupt_truncated_and_non_image_files_are_named(tmp_path):
    write_folder(tmp_path / "img", per_class=1)
    png = tmp_path / "img" / "train" / "cat" / "0.png"
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ImageDataError, match=r"0\.png: corrupt or truncated image"):
        prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train",), verify=True)
    # header-only manifests pass; the dataset leaves the image out of its batch when it does not
    # decode, naming the file and the manifest line
    from d2v_fairseq.data.images import UNDECODABLE

    prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train",))
    dataset = ImageFolderDataset(str(tmp_path / "m" / "train.tsv"), 16, train=False)
    assert dataset[0]["image"] is None
    assert re.search(r"cat/0\.png \(.*train\.tsv:2\): corrupt or truncated", UNDECODABLE[-1])
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert 0 not in batch["id"].tolist() and len(batch["id"]) == len(dataset) - 1
    (tmp_path / "img" / "train" / "dog" / "notes.txt").write_text("not a picture")
    with pytest.raises(ImageDataError, match=r"dog/notes\.txt: not an image"):
        prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train",))


def test_empty_class_folder_and_unknown_validation_class(tmp_path):
    write_folder(tmp_path / "img", per_class=1)
    os.makedirs(tmp_path / "img" / "train" / "emu")
    with pytest.raises(ImageDataError, match=r"emu: empty class folder"):
        prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train",))
    os.rmdir(tmp_path / "img" / "train" / "emu")
    write_folder(tmp_path / "img", "val", classes=("owl",), per_class=1)
    with pytest.raises(ImageDataError, match=r"class folders not in the training classes: \['owl'\]"):
        prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train", "val"))


def test_bad_manifest_lines_are_named(tmp_path):
    manifest = tmp_path / "train.tsv"
    manifest.write_text("/root\na.png\t0\t5\t5\nb.png\t1\t5\n")
    with pytest.raises(ImageDataError, match=r"train\.tsv:3: expected 4 tab-separated fields"):
        read_manifest(str(manifest))
    manifest.write_text("/root\na.png\t0\t5\t5\nb.png\t7\t5\t5\n")
    with pytest.raises(ImageDataError, match=r"train\.tsv:3: label 7 outside \[0, 2\)"):
        read_manifest(str(manifest), num_classes=2)


def test_images_smaller_than_the_crop_are_upscaled(tmp_path):
    write_folder(tmp_path / "img", per_class=1, size=(6, 5))
    prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train",))
    for train in (True, False):
        dataset = ImageFolderDataset(str(tmp_path / "m" / "train.tsv"), 32, train=train)
        batch = dataset.collater([dataset[0], dataset[1]])
        assert batch["net_input"]["source"].shape == (2, 3, 32, 32)


def test_augmentation_repeats_for_the_same_seed_epoch_and_ids(tmp_path):
    write_folder(tmp_path / "img", per_class=4)
    prepare(str(tmp_path / "img"), str(tmp_path / "m"), ("train",))
    make = lambda: ImageFolderDataset(str(tmp_path / "m" / "train.tsv"), 16, train=True, num_classes=2,  # noqa: E731
                                      mixup=0.8, cutmix=1.0, label_smoothing=0.1)
    a, b = make(), make()
    batch_a = a.collater([a[i] for i in (0, 3, 5)])
    batch_b = b.collater([b[i] for i in (0, 3, 5)])
    assert torch.equal(batch_a["net_input"]["source"], batch_b["net_input"]["source"])
    assert torch.equal(batch_a["target"], batch_b["target"])
    b.set_epoch(2)
    assert not torch.equal(batch_a["net_input"]["source"], b.collater([b[i] for i in (0, 3, 5)])["net_input"]["source"])


def test_mixup_and_cutmix_mix_targets_with_the_images_weight():
    images = torch.stack([torch.full((3, 10, 10), float(i)) for i in range(4)])  # image i is all i
    labels = torch.tensor([0, 1, 2, 1])
    smooth = one_hot(labels, 3, 0.1)
    for seed in range(20):
        for mixup, cutmix in ((0.8, 0.0), (0.0, 1.0), (0.8, 1.0)):
            mixed, targets, lam = mixup_cutmix(images, labels, 3, np.random.default_rng(seed), mixup, cutmix,
                                               smoothing=0.1)
            torch.testing.assert_close(targets.sum(-1), torch.ones(4))
            torch.testing.assert_close(targets, lam * smooth + (1 - lam) * smooth.flip(0))
            if cutmix == 0:  # mixup: pixel blend with the reversed batch
                torch.testing.assert_close(mixed[0], lam * images[0] + (1 - lam) * images[3])
            elif mixup == 0:  # cutmix: lam is the share of the image's own pixels
                assert abs((mixed[0] == 0).float().mean().item() - lam) < 1e-6


def test_every_bad_image_of_a_split_is_named_at_once(tmp_path):
    from PIL import Image

    from d2v_fairseq.data.images import ImageDataError, scan_split

    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / cls / "ok.png")
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "b" / "empty.png").write_bytes(b"")
    with pytest.raises(ImageDataError) as err:
        scan_split(str(tmp_path / "train"))
    text = str(err.value)
    assert text.splitlines()[0].startswith(f"{tmp_path / 'train'}: 2 images or folders cannot be used")
    assert "notes.txt" in text and "empty.png" in text

