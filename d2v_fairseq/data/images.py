"""Image folders in the ImageNet layout, their manifests, decoding and augmentation.

Layout: ``ROOT/SPLIT/CLASS/*`` (e.g. ``train/n01440764/x.JPEG``). A manifest per split is
written once (``SPLIT.tsv``: the split's folder on the first line, then ``relative path, class,
width, height``), plus ``classes.txt`` (one class per line, its index is the label):

    d2v prepare images ROOT OUT_DIR [--splits train val] [--verify]

Decoding is Pillow's; grayscale, palette, CMYK and alpha images are converted to RGB. Every
file in a class folder must be an image (a stray file is an error naming it, never skipped;
every such file of a split is named at once); an image whose header reads but whose body does
not decode when a batch reads it is left out of that batch with a WARNING naming it and its
manifest line. Images
smaller than the crop are upscaled: the random resized crop (training) and the resize before
the centre crop (evaluation) resample every image to ``image_size``.

Augmentation (BEiT / data2vec): random resized crop (scale 0.08-1, ratio 3/4-4/3) on each
image with Pillow, then horizontal flip, colour jitter 0.4 and ImageNet mean/std on the
batch's tensor in plain torch; mixup/cutmix with label smoothing for fine-tuning. Random draws
come from (seed, epoch, sample ids), so runs repeat and resume exactly.
"""

import logging
import math
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq.data import FairseqDataset

from ..modules.errors import InputError, InputErrors, raise_all
from ..modules.seeding import seeded_rng
from .classes import read_classes  # noqa: F401  (the evaluation and the tasks read it from here)

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDataError(InputError):
    """A bad image folder, manifest or image file; the message names the file (and line)."""


class ImageDataErrors(InputErrors, ImageDataError):
    """Every bad image or manifest line of a split, reported together."""


UNDECODABLE: List[str] = []  # images whose body failed to decode in a batch of this process


class ImageEntry(NamedTuple):
    path: str  # relative to the manifest's root
    label: int
    width: int
    height: int


# --- decoding -------------------------------------------------------------------------------
def open_rgb(path: str, where: str = ""):
    """The image at ``path`` fully decoded as an RGB ``PIL.Image``; ImageDataError names the
    file (and ``where``, e.g. the manifest line) when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # decodes now: truncated or corrupt data fails here, not later
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image)  # alpha over white
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise ImageDataError(f"{path}{where}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDataError(f"{path}{where}: corrupt or truncated image ({error})") from None


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) from the header of the image at ``path`` (ImageDataError if not an image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except UnidentifiedImageError:
        raise ImageDataError(f"{path}: not an image Pillow can read") from None
    except OSError as error:
        raise ImageDataError(f"{path}: cannot read ({error})") from None


# --- manifests ------------------------------------------------------------------------------
def scan_split(split_dir: str, classes: Optional[List[str]] = None, verify: bool = False):
    """(classes, entries) of an ImageNet-layout split folder. ``classes`` (from the training
    split) fixes the label order; otherwise it is the sorted class folders. ``verify`` decodes
    every image (slow) instead of reading headers."""
    if not os.path.isdir(split_dir):
        raise ImageDataError(f"{split_dir}: no such folder")
    found = sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))
    if not found:
        raise ImageDataError(f"{split_dir}: no class folders (expected {split_dir}/CLASS/IMAGE)")
    if classes is None:
        classes = found
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise ImageDataError(f"{split_dir}: class folders not in the training classes: {unknown[:5]}")
    index = {c: i for i, c in enumerate(classes)}
    entries: List[ImageEntry] = []
    problems: List[str] = []
    for name in found:
        folder = os.path.join(split_dir, name)
        files = sorted(f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f)))
        if not files:
            problems.append(f"{folder}: empty class folder")
        for file in files:
            path = os.path.join(folder, file)
            try:
                width, height = open_rgb(path).size if verify else image_size(path)
            except ImageDataError as error:
                problems.append(str(error))
                continue
            entries.append(ImageEntry(os.path.join(name, file), index[name], width, height))
    raise_all(problems, ImageDataError, ImageDataErrors, f"{split_dir}: {len(problems)} images or folders",
              "remove or replace them; --verify decodes every image")
    return classes, entries


def write_manifest(path: str, root: str, entries: Sequence[ImageEntry]) -> None:
    """Writes ``entries`` under ``root`` as a manifest at ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(os.path.abspath(root) + "\n")
        for e in entries:
            f.write(f"{e.path}\t{e.label}\t{e.width}\t{e.height}\n")


def read_manifest(path: str, num_classes: Optional[int] = None) -> Tuple[str, List[ImageEntry]]:
    """(root, entries) of a manifest; ImageDataError names the file and line of a bad entry."""
    if not os.path.isfile(path):
        raise ImageDataError(f"{path}: no such manifest (write it with d2v prepare images)")
    problems: List[str] = []
    with open(path, encoding="utf-8") as f:
        root = f.readline().rstrip("\n")
        entries = []
        for line_no, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            try:
                if len(fields) != 4:
                    raise ValueError(f"expected 4 tab-separated fields (path, label, width, height), got {len(fields)}")
                entry = ImageEntry(fields[0], int(fields[1]), int(fields[2]), int(fields[3]))
            except ValueError as error:
                problems.append(f"{path}:{line_no}: {error}")
                continue
            if num_classes is not None and not 0 <= entry.label < num_classes:
                problems.append(f"{path}:{line_no}: label {entry.label} outside [0, {num_classes})")
                continue
            entries.append(entry)
    raise_all(problems, ImageDataError, ImageDataErrors, f"{path}: {len(problems)} lines")
    if not entries:
        raise ImageDataError(f"{path}: no images")
    return root, entries


def folder_manifest(root: str, split: str, cache: Optional[str] = None) -> str:
    """A manifest for the image folder ``ROOT/SPLIT/CLASS/*`` (the layout fairseq's
    ``mae_image_pretraining`` reads as ``task.data``), written once under ``cache`` (default
    ``$D2V_CACHE`` or ``~/.cache/d2v_fairseq``, then ``image_manifests/HASH``) and rewritten when a
    class folder changes. Classes come from ``ROOT/train`` when it exists. Returns its path."""
    import hashlib

    root = os.path.abspath(root)
    cache = cache or os.environ.get("D2V_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "d2v_fairseq")
    out_dir = os.path.join(cache, "image_manifests", hashlib.sha1(root.encode()).hexdigest()[:16])
    path = os.path.join(out_dir, f"{split}.tsv")
    split_dir = os.path.join(root, split)
    folders = [split_dir] + [os.path.join(split_dir, d) for d in os.listdir(split_dir)]
    newest = max(os.path.getmtime(f) for f in folders if os.path.isdir(f))
    if os.path.isfile(path) and os.path.getmtime(path) >= newest:
        return path
    classes = None
    if split != "train" and os.path.isdir(os.path.join(root, "train")):
        classes, _ = scan_split(os.path.join(root, "train"), None)
    classes, entries = scan_split(split_dir, classes)
    os.makedirs(out_dir, exist_ok=True)
    write_manifest(path + ".tmp", split_dir, entries)
    os.replace(path + ".tmp", path)
    return path


def prepare(root: str, out_dir: str, splits: Sequence[str] = ("train", "val"), verify: bool = False) -> Dict[str, int]:
    """Writes OUT_DIR/SPLIT.tsv for each split of ``root`` and OUT_DIR/classes.txt; returns
    {split: images}. The first split fixes the classes."""
    os.makedirs(out_dir, exist_ok=True)
    classes = None
    counts = {}
    for split in splits:
        classes, entries = scan_split(os.path.join(root, split), classes, verify)
        write_manifest(os.path.join(out_dir, f"{split}.tsv"), os.path.join(root, split), entries)
        counts[split] = len(entries)
    with open(os.path.join(out_dir, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(classes) + "\n")
    return counts


# --- augmentation ---------------------------------------------------------------------------
def random_resized_crop_box(width: int, height: int, rng: np.random.Generator, scale=(0.08, 1.0),
                            ratio=(3 / 4, 4 / 3)) -> Tuple[int, int, int, int]:
    """(left, top, crop width, crop height) covering a random area share in ``scale`` with
    aspect ratio in ``ratio``; after 10 failed draws, the largest centred crop within ``ratio``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def centre_crop_box(width: int, height: int, crop_ratio: float = 0.875) -> Tuple[int, int, int, int]:
    """The evaluation crop: the centred square of side crop_ratio * the short side."""
    side = max(1, int(round(min(width, height) * crop_ratio)))
    return (width - side) // 2, (height - side) // 2, side, side


def to_tensor(image) -> torch.Tensor:
    """A PIL RGB image -> uint8 tensor (3, H, W)."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Smoothed one-hot targets (B, classes): 1 - smoothing + smoothing / classes on the label."""
    off = smoothing / num_classes
    targets = torch.full((labels.numel(), num_classes), off)
    return targets.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def mixup_cutmix(images: torch.Tensor, labels: torch.Tensor, num_classes: int, rng: np.random.Generator,
                 mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, switch_prob: float = 0.5,
                 smoothing: float = 0.1) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Mixes each image with the batch's reversed order: mixup (lam ~ Beta(mixup_alpha)) or, with
    ``switch_prob``, cutmix (a box of 1 - lam of the area, lam ~ Beta(cutmix_alpha), then lam
    set to the box's exact share). Targets mix the smoothed one-hot labels with the same lam, so
    each row sums to 1. Returns (images (B, C, H, W), targets (B, classes), lam)."""
    targets = one_hot(labels, num_classes, smoothing)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    if not use_cutmix and mixup_alpha <= 0:
        return images, targets, 1.0
    flipped = images.flip(0)
    if use_cutmix:
        lam = float(rng.beta(cutmix_alpha, cutmix_alpha))
        H, W = images.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(H * cut), int(W * cut)
        cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))
        top, bottom = max(cy - ch // 2, 0), min(cy + ch // 2, H)
        left, right = max(cx - cw // 2, 0), min(cx + cw // 2, W)
        images = images.clone()
        images[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / float(H * W)
    else:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        images = images * lam + flipped * (1.0 - lam)
    return images, targets * lam + targets.flip(0) * (1.0 - lam), lam


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (B, 1, H, W) of RGB ``images`` (B, 3, H, W)."""
    r, g, b = images.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def color_jitter(images: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation jitter of a batch (B, 3, H, W) in [0, 1], each factor
    drawn per image from U[1 - strength, 1 + strength], the three applied in a random order.

    Written on the batch's tensor with numpy-drawn factors rather than with kornia or torch's
    global RNG: fairseq collates in a background thread, and drawing from (or reseeding) the
    global torch RNG there races with dropout and drop path in the training thread, so a
    resumed run would no longer repeat an uninterrupted one."""
    B = images.size(0)
    factors = torch.from_numpy(rng.uniform(1 - strength, 1 + strength, (3, B)).astype(np.float32))
    for op in rng.permutation(3):
        f = factors[op].view(B, 1, 1, 1)
        if op == 0:  # brightness
            images = images * f
        elif op == 1:  # contrast: blend with the image's mean gray level
            mean = grayscale(images).mean(dim=(2, 3), keepdim=True)
            images = (images - mean) * f + mean
        else:  # saturation: blend with the grayscale image
            gray = grayscale(images)
            images = (images - gray) * f + gray
        images = images.clamp(0.0, 1.0)
    return images


class ImageFolderDataset(FairseqDataset):
    """The images of a manifest, cropped per image and augmented per batch (see the module
    docstring). A batch: {"id", "net_input": {"source": (B, 3, S, S) float}, "label": (B,),
    and "target": (B, classes) soft targets when ``num_classes`` is set}."""

    def __init__(self, manifest: str, image_size: int, train: bool, seed: int = 1,
                 num_classes: Optional[int] = None, crop_scale=(0.08, 1.0), hflip: float = 0.5,
                 color_jitter: float = 0.4, mixup: float = 0.0, cutmix: float = 0.0,
                 label_smoothing: float = 0.0, shuffle: Optional[bool] = None):
        super().__init__()
        self.manifest = manifest
        self.root, self.entries = read_manifest(manifest, num_classes)
        self.image_size, self.train, self.seed = image_size, train, seed
        self.num_classes = num_classes
        self.crop_scale, self.hflip, self.color_jitter = tuple(crop_scale), hflip, color_jitter
        self.mixup, self.cutmix, self.label_smoothing = mixup, cutmix, label_smoothing
        self.shuffle = train if shuffle is None else shuffle
        self.epoch = 1

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def num_tokens(self, index: int) -> int:
        return 1

    def size(self, index: int) -> int:
        return 1

    @property
    def can_reuse_epoch_itr_across_epochs(self) -> bool:
        """False: fairseq then draws each epoch's batches from (seed + epoch). Reusing the first
        epoch's batches would tie every epoch's batches to the epoch a run started in, so a
        resumed run would batch differently from an uninterrupted one."""
        return False

    def ordered_indices(self):
        if self.shuffle:
            return np.random.permutation(len(self))
        return np.arange(len(self))

    def _rng(self, stream: int, ids: Sequence[int]) -> np.random.Generator:
        """A generator of (seed, epoch, stream: 0 crop, 1 flip/jitter, 2 mixup, sample ids)."""
        return seeded_rng(self.seed, self.epoch, stream, *ids)

    def __getitem__(self, index: int) -> Dict:
        from PIL import Image

        entry = self.entries[index]
        try:
            image = open_rgb(os.path.join(self.root, entry.path), f" ({self.manifest}:{index + 2})")
        except ImageDataError as error:  # a body that does not decode: the batch goes on without it
            logger.warning(f"left out of its batch: {error}")
            UNDECODABLE.append(str(error))
            return {"id": index, "image": None, "label": entry.label}
        if self.train:
            box = random_resized_crop_box(*image.size, self._rng(0, [index]), scale=self.crop_scale)
        else:
            box = centre_crop_box(*image.size)
        left, top, w, h = box
        image = image.resize((self.image_size, self.image_size), Image.BICUBIC, box=(left, top, left + w, top + h))
        return {"id": index, "image": to_tensor(image), "label": entry.label}

    def augment(self, images: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        """Flip and colour jitter on a float batch (B, 3, S, S) in [0, 1], drawn from the ids."""
        rng = self._rng(1, ids)
        if self.hflip > 0:
            flip = torch.from_numpy(rng.random(images.size(0)) < self.hflip)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        if self.color_jitter > 0:
            images = color_jitter(images, self.color_jitter, rng)
        return images

    def collater(self, samples: List[Dict]) -> Dict:
        samples = [s for s in samples if s["image"] is not None]
        if not samples:
            return {}
        ids = [s["id"] for s in samples]
        images = torch.stack([s["image"] for s in samples]).float().div_(255.0)
        if self.train:
            images = self.augment(images, ids)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        images = (images - mean) / std
        labels = torch.tensor([s["label"] for s in samples], dtype=torch.long)
        batch = {"id": torch.tensor(ids), "nsentences": len(ids), "ntokens": len(ids),
                 "net_input": {"source": images}, "label": labels}
        if self.num_classes is not None:
            if self.train and (self.mixup > 0 or self.cutmix > 0):
                images, targets, _ = mixup_cutmix(images, labels, self.num_classes, self._rng(2, ids),
                                                  self.mixup, self.cutmix, smoothing=self.label_smoothing)
                batch["net_input"]["source"] = images
            else:
                targets = one_hot(labels, self.num_classes, self.label_smoothing if self.train else 0.0)
            batch["target"] = targets
        return batch


def load_eval_image(path: str, image_size: int) -> torch.Tensor:
    """One image as evaluation sees it: RGB, centre crop (0.875), resized to ``image_size``,
    ImageNet mean/std: (3, S, S) float."""
    from PIL import Image

    image = open_rgb(path)
    left, top, w, h = centre_crop_box(*image.size)
    image = image.resize((image_size, image_size), Image.BICUBIC, box=(left, top, left + w, top + h))
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (to_tensor(image).float().div_(255.0) - mean) / std
