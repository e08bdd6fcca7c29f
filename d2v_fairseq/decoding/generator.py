"""What turns a CTC model's output into text, for fairseq-generate and for Python callers:
the decoder chosen by a config, the model's emissions per utterance, and the generator object
fairseq-generate drives."""

import logging
import time
from typing import Optional

import torch

from .ctc import DecoderOptions, LexiconBeamDecoder, LexiconFreeBeamDecoder, ViterbiDecoder

logger = logging.getLogger(__name__)


def build_decoder(cfg, tgt_dict):
    """The decoder named by ``cfg.decoder`` (a config with the fields of the ``d2v_audio_ctc``
    task: decoder, kenlm_model, lexicon, ctc_beam, ...) for targets in ``tgt_dict`` (blank = index 0)."""
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
