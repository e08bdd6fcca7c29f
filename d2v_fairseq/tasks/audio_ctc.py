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
import time
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.audio_finetuning import AudioFinetuningConfig, AudioFinetuningTask

from ..data.labels import check_labels, dictionary_symbols
from ..data.manifest import read_manifest
from ..decoding.ctc import (
    DecoderOptions,
    LexiconBeamDecoder,
    LexiconFreeBeamDecoder,
    ViterbiDecoder,
)

logger = logging.getLogger(__name__)

DECODERS = ChoiceEnum(["viterbi", "lexicon_beam", "lexicon_free_beam"])


@dataclass
class AudioCtcConfig(AudioFinetuningConfig):
    """fairseq's audio_finetuning config plus input checks and the CTC decoder's options."""
    check_audio_files: bool = field(
        default=True, metadata={"help": "read every audio file's header before training"}
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


def build_decoder(cfg: AudioCtcConfig, tgt_dict):
    """The decoder named by ``cfg.decoder`` for targets in ``tgt_dict`` (blank = index 0)."""
    symbols = list(tgt_dict.symbols)
    blank, silence = tgt_dict.bos(), tgt_dict.index("|")
    if cfg.decoder == "viterbi":
        return ViterbiDecoder(blank, silence, symbols)
    options = DecoderOptions(cfg.ctc_beam, cfg.ctc_beam_threshold, cfg.ctc_beam_size_token, cfg.kenlm_weight,
                             cfg.word_score, cfg.sil_score, cfg.unk_score)
    if cfg.decoder == "lexicon_beam":
        return LexiconBeamDecoder(symbols, blank, silence, cfg.lexicon, cfg.kenlm_model, options)
    return LexiconFreeBeamDecoder(symbols, blank, silence, cfg.kenlm_model, options)


@torch.no_grad()
def ctc_emissions(model, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
    """Log-probabilities per utterance, each (T_b, V), of a CTC model on waveforms (B, S)."""
    net_output = model(source=source, padding_mask=padding_mask)
    logprobs = model.get_normalized_probs(net_output, log_probs=True).transpose(0, 1)  # (T, B, V) -> (B, T, V)
    frames = net_output.get("padding_mask")
    lengths = (~frames).sum(-1).tolist() if frames is not None else [logprobs.size(1)] * logprobs.size(0)
    return [logprobs[b, :n] for b, n in enumerate(lengths)]


class CtcGenerator:
    """What ``fairseq-generate`` calls: emissions from the model, then the decoder; logs the
    real-time factor (decoding wall time / audio duration) as it goes."""

    def __init__(self, decoder, sample_rate: int, tgt_dict):
        self.decoder = decoder
        # fairseq-generate strips these from hypotheses and references before scoring
        self.symbols_to_strip_from_output = {tgt_dict.bos(), tgt_dict.eos(), tgt_dict.pad()}
        self.sample_rate = sample_rate
        self.audio_seconds = 0.0
        self.decode_seconds = 0.0

    @torch.no_grad()
    def generate(self, models, sample, **unused):
        """Decodes a batch: [[{tokens, score, words, positional_scores, alignment}] per utterance]."""
        start = time.perf_counter()
        source = sample["net_input"]["source"]
        source_padding = sample["net_input"].get("padding_mask")
        hypos = []
        for emissions in ctc_emissions(models[0], source, source_padding):
            hypo = self.decoder.decode(emissions)
            hypo["positional_scores"] = torch.zeros(len(hypo["tokens"]))
            hypo["alignment"] = None
            hypos.append([hypo])
        self.decode_seconds += time.perf_counter() - start
        samples = (~source_padding).sum() if source_padding is not None else source.numel()
        self.audio_seconds += float(samples) / self.sample_rate
        logger.info(f"real-time factor so far: {self.rtf():.4f} "
                    f"({self.decode_seconds:.2f} s to decode {self.audio_seconds:.1f} s of audio)")
        return hypos

    def rtf(self) -> float:
        """Decoding time over audio duration so far."""
        return self.decode_seconds / max(self.audio_seconds, 1e-9)


@register_task("d2v_audio_ctc", dataclass=AudioCtcConfig)
class AudioCtcTask(AudioFinetuningTask):
    """audio_finetuning with checked inputs and CTC decoders; see the module docstring."""

    def load_dataset(self, split: str, task_cfg=None, **kwargs):
        """Checks manifest, transcripts and dictionary, then loads as audio_finetuning does."""
        task_cfg = task_cfg or self.cfg
        # fairseq-generate passes the checkpoint's task config, which for checkpoints from
        # fairseq's own audio_finetuning lacks this task's fields
        check_files = getattr(task_cfg, "check_audio_files", self.cfg.check_audio_files)
        dict_path = os.path.join(task_cfg.data, f"dict.{task_cfg.labels}.txt")
        symbols = dictionary_symbols(dict_path)
        for name in split.split(","):
            manifest = os.path.join(task_cfg.data, f"{name.strip()}.tsv")
            _, entries = read_manifest(manifest, check_files, task_cfg.sample_rate)
            labels = os.path.join(task_cfg.data, f"{name.strip()}.{task_cfg.labels}")
            check_labels(labels, manifest, len(entries), symbols)
        return super().load_dataset(split, task_cfg, **kwargs)

    def build_generator(self, models, args, **unused):
        """The CTC decoder named by ``--decoder``, wrapped for fairseq-generate."""
        return CtcGenerator(build_decoder(self.cfg, self.target_dictionary), self.cfg.sample_rate, self.target_dictionary)
