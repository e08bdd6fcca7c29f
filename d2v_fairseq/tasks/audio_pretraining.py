"""``d2v_audio_pretraining``: fairseq's ``audio_pretraining`` that checks its manifests first.

fairseq's ``FileAudioDataset`` fails on a bad manifest line with a bare assertion, and on a
missing or corrupt file only when a batch reaches it, hours into training. This task reads
every manifest before training and names the manifest, line and file of the first problem.
"""

import logging
import os
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.audio_pretraining import AudioPretrainingConfig, AudioPretrainingTask

from ..data.manifest import read_manifest

logger = logging.getLogger(__name__)


@dataclass
class CheckedAudioPretrainingConfig(AudioPretrainingConfig):
    check_audio_files: bool = field(
        default=True,
        metadata={"help": "read every audio file's header before training (rate, channels, length)"},
    )


@register_task("d2v_audio_pretraining", dataclass=CheckedAudioPretrainingConfig)
class CheckedAudioPretrainingTask(AudioPretrainingTask):
    """audio_pretraining with manifest validation; see the module docstring."""

    def load_dataset(self, split: str, task_cfg=None, **kwargs):
        task_cfg = task_cfg or self.cfg
        if not getattr(task_cfg, "binarized_dataset", False):
            for name in split.split(","):
                manifest = os.path.join(task_cfg.data, f"{name.strip()}.tsv")
                _, entries = read_manifest(
                    manifest, check_files=task_cfg.check_audio_files, sample_rate=task_cfg.sample_rate
                )
                logger.info(f"{manifest}: {len(entries)} utterances checked")
        return super().load_dataset(split, task_cfg, **kwargs)
