"""Image tasks: ``d2v_image_pretraining`` (unlabeled images for data2vec_vision) and
``d2v_image_classification`` (fine-tuning and evaluation with top-1/top-5 accuracy).

Both read the manifests of ``d2v prepare images`` in ``task.data``
(``SPLIT.tsv`` and ``classes.txt``); see ``data/images.py`` for decoding and augmentation.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import List

from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from ..models.pretrained import keep_resolved_config
from ..data.classes import count_classes
from ..data.images import ImageDataError, ImageFolderDataset

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
