"""``d2v_audio_pretraining``: fairseq's ``audio_pretraining`` that checks its manifests first.

fairseq's ``FileAudioDataset`` fails on a bad manifest line with a bare assertion, and on a
missing or corrupt file only when a batch reaches it, hours into training. This task reads
every manifest before training (headers in parallel, cached) and names the manifest, line and
file of every problem at once; ``task.skip_bad=true`` leaves those recordings out instead. A
recording whose body fails to decode when a batch reads it is left out of that batch with a
WARNING, and listed again at the run's end.

It also makes the random crops repeat: fairseq's ``RawAudioDataset`` crops the longer
utterances of a batch at a start drawn from the global numpy RNG, so a resumed run (which
reseeds that RNG) crops differently from an uninterrupted one. Here each batch is collated
under a numpy seed made of (seed, epoch, the batch's sample ids).
"""

import logging
import os
from dataclasses import dataclass, field

from fairseq.data import BaseWrapperDataset
from fairseq.data.data_utils import numpy_seed
from fairseq.tasks import register_task
from fairseq.tasks.audio_pretraining import AudioPretrainingConfig, AudioPretrainingTask

from ..data.manifest import check_split, report_at_exit
from ..modules.seeding import seeded_int

logger = logging.getLogger(__name__)


class SeededCollater(BaseWrapperDataset):
    """Collates each batch with numpy's global generator seeded from (seed, epoch, the batch's ids)."""

    def __init__(self, dataset, seed: int):
        super().__init__(dataset)
        self.seed = seed
        self.epoch = 1

    def set_epoch(self, epoch):
        """Remembers the epoch: it is part of the crop seed."""
        self.epoch = epoch
        super().set_epoch(epoch)

    def collater(self, samples):
        """Collates ``samples`` under a seed of (seed, epoch, their ids)."""
        ids = tuple(int(s["id"]) for s in samples)
        # fairseq's RawAudioDataset crops with numpy's global generator: seed it for this batch
        with numpy_seed(seeded_int(self.seed, self.epoch, "crop", *ids)):
            return self.dataset.collater(samples)


@dataclass
class CheckedAudioPretrainingConfig(AudioPretrainingConfig):
    """fairseq's audio_pretraining config plus the manifest check switch."""
    check_audio_files: bool = field(
        default=True,
        metadata={"help": "read every audio file's header before training (rate, channels, length)"},
    )
    skip_bad: bool = field(
        default=False,
        metadata={"help": "leave recordings with a bad header out (listed in SPLIT.bad.tsv) instead of stopping"},
    )


@register_task("d2v_audio_pretraining", dataclass=CheckedAudioPretrainingConfig)
class CheckedAudioPretrainingTask(AudioPretrainingTask):
    """audio_pretraining with manifest validation; see the module docstring."""

    def load_dataset(self, split: str, task_cfg=None, **kwargs):
        """Checks the split's manifest(s), then loads them as audio_pretraining does."""
        task_cfg = task_cfg or self.cfg
        checked = None
        if not getattr(task_cfg, "binarized_dataset", False):
            manifest = os.path.join(task_cfg.data, f"{split}.tsv")
            checked = check_split(manifest, getattr(task_cfg, "check_audio_files", self.cfg.check_audio_files),
                                  task_cfg.sample_rate, getattr(task_cfg, "skip_bad", self.cfg.skip_bad))
            logger.info(f"{manifest}: {len(checked.names) - len(checked.left_out)} utterances checked")
            report_at_exit()
        super().load_dataset(split, task_cfg, **kwargs)
        dataset = self.datasets[split] if checked is None else checked.lenient(self.datasets[split])
        self.datasets[split] = SeededCollater(dataset, task_cfg.seed)
