"""``d2v_audio_classification``: multi-label audio tagging data (AudioSet-style).

``task.data`` holds ``SPLIT.tsv`` manifests (checked like ``d2v_audio_pretraining``'s),
``SPLIT.lbl`` label files (class indices per clip, space separated; see
``data/audioset.py``) and ``classes.txt``. A batch adds ``target``: multi-hot (B, classes).
"""

import logging
import os
from dataclasses import dataclass, field

import torch
from fairseq.data import BaseWrapperDataset
from fairseq.tasks import register_task
from omegaconf import open_dict

from ..models.pretrained import keep_resolved_config
from ..data.audioset import read_label_file
from ..data.classes import count_classes
from .audio_pretraining import CheckedAudioPretrainingConfig, CheckedAudioPretrainingTask

logger = logging.getLogger(__name__)


class MultiHotTargets(BaseWrapperDataset):
    """Adds each clip's multi-hot target (classes,) to the wrapped audio dataset's batches."""

    def __init__(self, dataset, labels, num_classes: int):
        super().__init__(dataset)
        self.labels = labels
        self.num_classes = num_classes

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if not batch:
            return batch
        target = torch.zeros(len(batch["id"]), self.num_classes)
        for row, index in enumerate(batch["id"].tolist()):
            target[row, self.labels[index]] = 1.0
        batch["target"] = target
        return batch


@dataclass
class AudioTaggingTaskConfig(CheckedAudioPretrainingConfig):
    labels: str = field(default="lbl", metadata={"help": "label file extension: SPLIT.lbl"})
    num_classes: int = field(default=0, metadata={"help": "classes (0: the lines of DATA/classes.txt)"})


@register_task("d2v_audio_classification", dataclass=AudioTaggingTaskConfig)
class AudioTaggingTask(CheckedAudioPretrainingTask):
    """Audio clips with multi-hot targets; see the module docstring."""

    cfg: AudioTaggingTaskConfig

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        if cfg.num_classes <= 0:
            with open_dict(cfg):
                cfg.num_classes = count_classes(cfg.data, "d2v prepare audioset")
        return cls(cfg)

    def num_classes(self) -> int:
        return self.cfg.num_classes

    def load_dataset(self, split: str, task_cfg=None, **kwargs):
        """The checked audio manifest plus SPLIT.lbl (checked line by line)."""
        super().load_dataset(split, task_cfg, **kwargs)
        dataset = self.datasets[split]
        skipped = getattr(dataset, "skipped_indices", set()) or getattr(dataset.dataset, "skipped_indices", set())
        if skipped:
            raise ValueError(f"{split}: {len(skipped)} clips fall outside min/max_sample_size; the label lines "
                             "would lose their clips: crop instead (task.max_sample_size) or drop them from the manifest")
        manifest = os.path.join(self.cfg.data, f"{split}.tsv")
        labels = read_label_file(os.path.join(self.cfg.data, f"{split}.{self.cfg.labels}"), len(dataset),
                                 self.num_classes(), manifest)
        self.datasets[split] = MultiHotTargets(dataset, labels, self.num_classes())

    def build_model(self, cfg, from_checkpoint=False):
        """Builds the model; fine-tuned checkpoints keep the pre-trained config (see keep_resolved_config)."""
        model = super().build_model(cfg, from_checkpoint)
        keep_resolved_config(cfg, model)
        return model
