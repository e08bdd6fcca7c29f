"""Decoding from Python and LM-weight tuning, on top of a fine-tuned CTC checkpoint.

    from d2v_fairseq.decoding.transcribe import Transcriber
    asr = Transcriber("checkpoint_best.pt", decoder="lexicon_beam", lm_path="lm.arpa", lexicon="lexicon.txt")
    print(asr.transcribe(waveform_16k))          # one utterance, a 1-D float array

    python -m d2v_fairseq.decoding.transcribe tune CHECKPOINT DATA --subset valid \
        --lm-path lm.arpa --lexicon lexicon.txt --lm-weights 0 0.5 1 2 3 --word-scores -2 -1 0 1

``tune`` computes the emissions of the subset once, then decodes them with every
(lm_weight, word_score) pair and reports the WER of each and the best pair.
"""

import argparse
import itertools
import logging
import time
from typing import Dict, List, Optional, Sequence

import editdistance
import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_pretrained
from .generator import build_decoder, ctc_emissions

logger = logging.getLogger(__name__)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER in percent: word edits / reference words."""
    edits = sum(editdistance.eval(r.split(), h.split()) for r, h in zip(references, hypotheses))
    return 100.0 * edits / max(sum(len(r.split()) for r in references), 1)


class Transcriber:
    """A fine-tuned CTC model plus a decoder; see the module docstring."""

    def __init__(self, checkpoint: str, decoder: str = "viterbi", data_dir: Optional[str] = None, **decoder_args):
        overrides = {"data": data_dir} if data_dir else None
        # the decoders' options are fields of d2v_audio_ctc, whichever task fine-tuned the model
        self.model, cfg, self.task = load_pretrained(checkpoint, arg_overrides=overrides, task="d2v_audio_ctc")
        self.model.eval()
        self.normalize = cfg.task.normalize
        self.configure(decoder=decoder, **decoder_args)

    # Python names -> the task's config fields (named apart from fairseq-generate's own)
    FIELDS = {"lm_path": "kenlm_model", "lm_weight": "kenlm_weight", "beam": "ctc_beam",
              "beam_threshold": "ctc_beam_threshold", "beam_size_token": "ctc_beam_size_token"}

    def configure(self, **decoder_args) -> None:
        """Switches decoder or its options: decoder, lm_path, lexicon, lm_weight, word_score,
        sil_score, unk_score, beam, beam_threshold, beam_size_token."""
        for key, value in decoder_args.items():
            setattr(self.task.cfg, self.FIELDS.get(key, key), value)
        self.decoder = build_decoder(self.task.cfg, self.task.target_dictionary)

    def emissions(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """Log-probabilities per utterance, each (T_b, V), from waveforms (B, S)."""
        return ctc_emissions(self.model, source, padding_mask)

    def text(self, hypo: Dict) -> str:
        """A hypothesis as words: the decoder's words, else its letters post-processed."""
        if hypo["words"]:
            return " ".join(hypo["words"])
        return self.task.target_dictionary.string(hypo["tokens"], "letter")

    def transcribe(self, waveform) -> str:
        """One 16 kHz mono utterance (1-D array or tensor) -> text."""
        source = torch.as_tensor(np.asarray(waveform), dtype=torch.float32).flatten()
        if self.normalize:
            source = F.layer_norm(source, source.shape)
        return self.text(self.decoder.decode(self.emissions(source[None])[0]))

    def subset_emissions(self, subset: str, max_tokens: int = 1_000_000):
        """(emissions per utterance, reference texts) for a subset of the task's data."""
        self.task.load_dataset(subset)
        dataset = self.task.dataset(subset)
        batches = self.task.get_batch_iterator(dataset, max_tokens=max_tokens).next_epoch_itr(shuffle=False)
        emissions, references = [], []
        for sample in batches:
            emissions += self.emissions(sample["net_input"]["source"], sample["net_input"].get("padding_mask"))
            for target in sample["target"]:
                tokens = target[target != self.task.target_dictionary.pad()]
                references.append(self.task.target_dictionary.string(tokens, "letter"))
        return emissions, references


def tune(args) -> None:
    """Grid search of lm_weight and word_score on a subset; prints each WER and the best pair."""
    asr = Transcriber(args.checkpoint, data_dir=args.data, decoder="lexicon_beam", lm_path=args.lm_path,
                      lexicon=args.lexicon, beam=args.beam)
    emissions, references = asr.subset_emissions(args.subset)
    print(f"{len(emissions)} utterances of {args.subset}; grid of "
          f"{len(args.lm_weights) * len(args.word_scores)} (lm_weight, word_score) pairs", flush=True)
    results = []
    for lm_weight, word_score in itertools.product(args.lm_weights, args.word_scores):
        asr.configure(lm_weight=lm_weight, word_score=word_score)
        start = time.perf_counter()
        hypotheses = [asr.text(asr.decoder.decode(e)) for e in emissions]
        wer = word_error_rate(references, hypotheses)
        results.append((wer, lm_weight, word_score))
        print(f"  lm_weight {lm_weight:6.2f}  word_score {word_score:6.2f}  WER {wer:6.2f}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    wer, lm_weight, word_score = min(results)
    print(f"best: lm_weight {lm_weight} word_score {word_score}: WER {wer:.2f} on {args.subset}")


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tune", help="grid search of lm_weight and word_score on a dev subset")
    t.add_argument("checkpoint")
    t.add_argument("data", help="directory with SUBSET.tsv/.ltr and dict.ltr.txt")
    t.add_argument("--subset", default="valid")
    t.add_argument("--lm-path", required=True)
    t.add_argument("--lexicon", required=True)
    t.add_argument("--beam", type=int, default=50)
    t.add_argument("--lm-weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 3.0])
    t.add_argument("--word-scores", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tune(args)


if __name__ == "__main__":
    main()
