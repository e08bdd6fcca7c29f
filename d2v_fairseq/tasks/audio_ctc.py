"""``d2v_audio_ctc``: fairseq's ``audio_finetuning`` (CTC on letters) with checked inputs and
CTC decoding for ``fairseq-generate``.

Fine-tuning: manifests, transcripts and the dictionary are checked before training (errors
name file and line). Decoding: ``fairseq-generate DATA --user-dir d2v_fairseq --task
d2v_audio_ctc --path checkpoint.pt --gen-subset test --scoring wer --post-process letter
--decoder viterbi|lexicon_beam|lexicon_free_beam [--kenlm-model lm.arpa --lexicon lexicon.txt
--kenlm-weight 2 --word-score -1 --ctc-beam 50 ...]``. (fairseq-generate's own ``--lm-path``,
``--lm-weight`` and ``--beam`` belong to its sequence generator, hence the distinct names.)
"""

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.audio_finetuning import AudioFinetuningConfig, AudioFinetuningTask
from omegaconf import DictConfig

from ..models.pretrained import complete_config
from ..data.labels import check_labels, dictionary_symbols
from ..data.manifest import check_split, report_at_exit
from ..decoding.generator import CtcGenerator, build_decoder

logger = logging.getLogger(__name__)

DECODERS = ChoiceEnum(["viterbi", "lexicon_beam", "lexicon_free_beam"])


@dataclass
class AudioCtcConfig(AudioFinetuningConfig):
    """fairseq's audio_finetuning config plus input checks and the CTC decoder's options."""
    check_audio_files: bool = field(
        default=True, metadata={"help": "read every audio file's header before training"}
    )
    skip_bad: bool = field(
        default=False,
        metadata={"help": "leave recordings with a bad header out (listed in SPLIT.bad.tsv) instead of stopping"},
    )
    decoder: DECODERS = field(  # type: ignore[valid-type]
        default="viterbi", metadata={"help": "CTC decoder used by fairseq-generate"}
    )
    kenlm_model: Optional[str] = field(
        default=None, metadata={"help": "KenLM model (ARPA or binary): words for lexicon_beam, letters for lexicon_free_beam"}
    )
    lexicon: Optional[str] = field(default=None, metadata={"help": "lexicon: WORD<TAB>letters |"})
    ctc_beam: int = field(default=50, metadata={"help": "beam size of the CTC beam search"})
    ctc_beam_threshold: float = field(default=25.0, metadata={"help": "beam score threshold"})
    ctc_beam_size_token: Optional[int] = field(default=None, metadata={"help": "tokens per frame; default all"})
    kenlm_weight: float = field(default=2.0, metadata={"help": "language model weight"})
    word_score: float = field(default=-1.0, metadata={"help": "score added per word"})
    sil_score: float = field(default=0.0, metadata={"help": "score added per silence token"})
    unk_score: float = field(default=-math.inf, metadata={"help": "score of an unknown word"})


@register_task("d2v_audio_ctc", dataclass=AudioCtcConfig)
class AudioCtcTask(AudioFinetuningTask):
    """audio_finetuning with checked inputs and CTC decoders; see the module docstring."""

    def load_dataset(self, split: str, task_cfg=None, **kwargs):
        """Checks manifest, transcripts and dictionary, then loads as audio_finetuning does."""
        task_cfg = task_cfg or self.cfg
        # fairseq-generate passes the checkpoint's saved task config: one from fairseq's own
        # audio_finetuning lacks this task's fields, one from an older fairseq lacks some of
        # audio_finetuning's too
        check_files = getattr(task_cfg, "check_audio_files", self.cfg.check_audio_files)
        if isinstance(task_cfg, DictConfig):
            complete_config(task_cfg, AudioCtcConfig, "task config of the checkpoint")
        dict_path = os.path.join(task_cfg.data, f"dict.{task_cfg.labels}.txt")
        symbols = dictionary_symbols(dict_path)
        manifest = os.path.join(task_cfg.data, f"{split}.tsv")
        checked = check_split(manifest, check_files, task_cfg.sample_rate, getattr(task_cfg, "skip_bad", False))
        labels = os.path.join(task_cfg.data, f"{split}.{task_cfg.labels}")
        check_labels(labels, manifest, len(checked.names), symbols)
        report_at_exit()
        result = super().load_dataset(split, task_cfg, **kwargs)
        with_labels = self.datasets[split]  # AddTargetDataset around the FileAudioDataset
        with_labels.dataset = checked.lenient(with_labels.dataset)
        return result

    def build_generator(self, models, args, **unused):
        """The CTC decoder named by ``--decoder``, wrapped for fairseq-generate."""
        return CtcGenerator(build_decoder(self.cfg, self.target_dictionary), self.cfg.sample_rate, self.target_dictionary)
