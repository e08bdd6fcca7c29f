"""Image tasks: ``d2v_image_pretraining`` (unlabeled images for data2vec_vision),
``mae_image_pretraining`` (data2vec 2.0's, under the reference's name and fields) and
``d2v_image_classification`` (fine-tuning and evaluation with top-1/top-5 accuracy).

Both read the manifests of ``d2v prepare images`` in ``task.data``
(``SPLIT.tsv`` and ``classes.txt``); see ``data/images.py`` for decoding and augmentation.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Any, List, Optional

from fairseq.data import BaseWrapperDataset, SubsampleDataset
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from ..models.pretrained import keep_resolved_config
from ..data.classes import count_classes
from ..data.images import ImageDataError, ImageFolderDataset, folder_manifest

logger = logging.getLogger(__name__)


@dataclass
class ImagePretrainingConfig(FairseqDataclass):
    """Where the manifests are and how training images are augmented (BEiT's values)."""

    data: str = field(default="???", metadata={"help": "folder with SPLIT.tsv manifests (and classes.txt)"})
    image_size: int = field(default=224, metadata={"help": "crop size in pixels (the model's image_size)"})
    crop_scale: List[float] = field(default_factory=lambda: [0.08, 1.0],
                                    metadata={"help": "random resized crop: area share range"})
    hflip: float = field(default=0.5, metadata={"help": "probability of a horizontal flip"})
    color_jitter: float = field(default=0.4, metadata={"help": "brightness/contrast/saturation jitter"})
    train_subset: str = II("dataset.train_subset")
    seed: int = II("common.seed")


@register_task("d2v_image_pretraining", dataclass=ImagePretrainingConfig)
class ImagePretrainingTask(FairseqTask):
    """Unlabeled images for data2vec_vision pre-training."""

    cfg: ImagePretrainingConfig

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        return cls(cfg)

    def num_classes(self):
        """None: pre-training needs no labels."""
        return None

    def dataset_options(self, split: str) -> dict:
        train = split == self.cfg.train_subset
        return dict(image_size=self.cfg.image_size, train=train, seed=self.cfg.seed, crop_scale=self.cfg.crop_scale,
                    hflip=self.cfg.hflip, color_jitter=self.cfg.color_jitter)

    def load_dataset(self, split: str, combine=False, task_cfg=None, **kwargs):
        """Reads SPLIT.tsv (checking every line) into an ImageFolderDataset."""
        manifest = os.path.join(self.cfg.data, f"{split}.tsv")
        try:
            self.datasets[split] = ImageFolderDataset(manifest, num_classes=self.num_classes(),
                                                      **self.dataset_options(split))
        except ImageDataError as error:
            raise ImageDataError(f"task {split}: {error}") from None
        logger.info(f"{manifest}: {len(self.datasets[split])} images")

    def max_positions(self):
        return None

    @property
    def source_dictionary(self):
        return None

    @property
    def target_dictionary(self):
        return None


@dataclass
class ImageClassificationTaskConfig(ImagePretrainingConfig):
    """Pre-training's fields plus labels, mixup/cutmix and label smoothing (release values)."""

    num_classes: int = field(default=0, metadata={"help": "classes (0: the lines of DATA/classes.txt)"})
    mixup: float = field(default=0.8, metadata={"help": "mixup alpha (0: off)"})
    cutmix: float = field(default=1.0, metadata={"help": "cutmix alpha (0: off)"})
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the training targets"})


@register_task("d2v_image_classification", dataclass=ImageClassificationTaskConfig)
class ImageClassificationTask(ImagePretrainingTask):
    """Labeled images: soft (mixed, smoothed) targets in training, top-1/top-5 in validation."""

    cfg: ImageClassificationTaskConfig

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        if cfg.num_classes <= 0:
            cfg.num_classes = count_classes(cfg.data, "d2v prepare images", ImageDataError)
        return cls(cfg)

    def num_classes(self):
        return self.cfg.num_classes

    def build_model(self, cfg, from_checkpoint=False):
        """Builds the model; fine-tuned checkpoints keep the pre-trained config (see keep_resolved_config)."""
        model = super().build_model(cfg, from_checkpoint)
        keep_resolved_config(cfg, model)
        return model

    def dataset_options(self, split: str) -> dict:
        options = super().dataset_options(split)
        return dict(options, mixup=self.cfg.mixup, cutmix=self.cfg.cutmix, label_smoothing=self.cfg.label_smoothing)


@dataclass
class MaeImagePretrainingConfig(FairseqDataclass):
    """The fields of fairseq's ``mae_image_pretraining`` (data2vec 2.0's image task), so that its
    released checkpoints and v2 YAMLs read here. Images come from ``d2v prepare images``
    manifests (``data/SPLIT.tsv``); the cluster-only fields are accepted and unused."""

    data: str = field(default=MISSING, metadata={"help": "folder with SPLIT.tsv manifests (d2v prepare images)"})
    multi_data: Optional[List[str]] = field(default=None, metadata={"help": "unused here"})
    input_size: int = field(default=224, metadata={"help": "crop size in pixels"})
    local_cache_path: Optional[str] = field(default=None, metadata={"help": "unused here"})
    key: str = field(default="imgs", metadata={"help": "the net_input key of the images (source for data2vec_multi)"})
    beit_transforms: bool = field(default=False, metadata={"help": "unused here (MAE's crop + flip are used)"})
    target_transform: bool = field(default=False, metadata={"help": "unused here"})
    no_transform: bool = field(default=False, metadata={"help": "centre crops only, no augmentation"})
    rebuild_batches: bool = field(default=True, metadata={"help": "unused here"})
    precompute_mask_config: Optional[Any] = field(
        default=None, metadata={"help": "accepted; the model draws its masks (seeded by update and image id)"})
    subsample: float = field(default=1, metadata={"help": "share of the training images used"})
    seed: int = II("common.seed")
    dataset_type: str = field(default="imagefolder", metadata={"help": "imagefolder (the only kind read here)"})
    train_subset: str = II("dataset.train_subset")
    # this package's own (the reference hard-codes MAE's): the random resized crop and flip
    crop_scale: List[float] = field(default_factory=lambda: [0.2, 1.0],
                                    metadata={"help": "random resized crop: area share range (MAE: 0.2-1)"})
    hflip: float = field(default=0.5, metadata={"help": "probability of a horizontal flip"})


class KeyedImages(BaseWrapperDataset):
    """An ``ImageFolderDataset`` whose batches carry the images under ``key`` and the sample
    ids in ``net_input`` too (data2vec_multi seeds its masks with them)."""

    def __init__(self, dataset, key: str):
        super().__init__(dataset)
        self.key = key

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if batch:
            batch["net_input"] = {self.key: batch["net_input"]["source"], "id": batch["id"]}
        return batch


@register_task("mae_image_pretraining", dataclass=MaeImagePretrainingConfig)
class MaeImagePretrainingTask(ImagePretrainingTask):
    """Unlabeled images for data2vec 2.0 (``data2vec_multi`` with the IMAGE modality): MAE's
    augmentation (random resized crop, by default of 20-100% of the area, horizontal flip),
    ImageNet mean/std, no torchvision."""

    cfg: MaeImagePretrainingConfig

    def load_dataset(self, split: str, combine=False, task_cfg=None, **kwargs):
        manifest = os.path.join(self.cfg.data, f"{split}.tsv")
        if not os.path.isfile(manifest):
            if not os.path.isdir(os.path.join(self.cfg.data, split)):
                raise ImageDataError(f"task.data: neither {manifest} nor the image folder {self.cfg.data}/{split}/CLASS/* "
                                     "is there; give an image-folder root (train/, val/) or a folder written by "
                                     "`d2v prepare images`")
            # the reference's layout: task.data is an image-folder root (ImageNet's train/ and val/)
            manifest = folder_manifest(self.cfg.data, split)
            logger.info(f"{self.cfg.data}/{split}: an image folder, read through the manifest {manifest}")
        train = split == self.cfg.train_subset and not self.cfg.no_transform
        try:
            images = ImageFolderDataset(manifest, image_size=self.cfg.input_size, train=train, seed=self.cfg.seed,
                                        crop_scale=tuple(self.cfg.crop_scale), hflip=self.cfg.hflip,
                                        color_jitter=0.0)
        except ImageDataError as error:
            raise ImageDataError(f"task {split}: {error}") from None
        dataset = KeyedImages(images, self.cfg.key)
        if train and self.cfg.subsample < 1:
            dataset = SubsampleDataset(dataset, self.cfg.subsample, shuffle=True, seed=self.cfg.seed)
        self.datasets[split] = dataset
        logger.info(f"{manifest}: {len(dataset)} images")
