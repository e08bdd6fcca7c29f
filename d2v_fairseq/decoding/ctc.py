"""CTC decoders over emissions (T, V) of log-probabilities:

* ``ViterbiDecoder``: greedy best path: argmax per frame, collapse repeats, drop blanks;
* ``LexiconBeamDecoder``: beam search constrained to a lexicon's spellings, scored with a
  word-level KenLM n-gram (flashlight-text's LexiconDecoder);
* ``LexiconFreeBeamDecoder``: beam search over letters with a letter-level KenLM n-gram.

Each returns, per utterance, {"tokens": LongTensor, "score": float, "words": [str], "frames":
the token of every frame (the alignment word timings are read from)}.
flashlight-text imports lazily, so viterbi decoding needs nothing beyond torch.
"""

import itertools
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from ..modules.errors import InputError


class DecodingInputError(InputError):
    """A bad LM, lexicon or dictionary file; the message names the file (and line)."""


def collapse(frame_tokens: Sequence[int], blank: int) -> List[int]:
    """Best-path tokens -> output tokens: merge repeats, then drop blanks."""
    return [t for t, _ in itertools.groupby(frame_tokens) if t != blank]


@dataclass(frozen=True)
class DecoderOptions:
    """Beam-search options (flashlight-text's names and meanings)."""
    beam: int = 50
    beam_threshold: float = 25.0
    beam_size_token: Optional[int] = None  # default: every token
    lm_weight: float = 2.0
    word_score: float = -1.0
    sil_score: float = 0.0
    unk_score: float = -math.inf


class ViterbiDecoder:
    """Greedy CTC decoding (see the module docstring)."""

    def __init__(self, blank: int, silence: Optional[int] = None, symbols: Optional[Sequence[str]] = None):
        self.blank = blank
        self.silence = silence
        self.symbols = symbols

    def decode(self, emissions: torch.Tensor) -> Dict:
        """``emissions`` (T, V) -> best path."""
        best = emissions.argmax(dim=-1)
        tokens = collapse(best.tolist(), self.blank)
        score = float(emissions.max(dim=-1).values.sum())
        return {"tokens": torch.tensor(tokens, dtype=torch.long), "score": score, "words": self._words(tokens),
                "frames": best.tolist()}

    def _words(self, tokens: List[int]) -> List[str]:
        if self.symbols is None or self.silence is None:
            return []
        text = "".join(self.symbols[t] if t != self.silence else " " for t in tokens)
        return text.split()


def _flashlight():
    try:
        from flashlight.lib.text import decoder, dictionary
    except ImportError as err:  # optional dependency
        raise ImportError("beam-search decoding needs flashlight-text: pip install flashlight-text") from err
    return decoder, dictionary


def kenlm_class():
    """flashlight-text's KenLM, from its own module (the decoder package's name for it is deprecated)."""
    from flashlight.lib.text.decoder.kenlm import KenLM

    return KenLM


def _need_file(path: Optional[str], what: str) -> str:
    if not path:
        raise DecodingInputError(f"{what} is required for this decoder")
    if not os.path.isfile(path):
        raise DecodingInputError(f"{what} not found: {path}")
    return path


def read_lexicon(path: str, symbols: Sequence[str]) -> Dict[str, List[List[str]]]:
    """``word<TAB>l e t t e r s |`` lines -> {word: [spelling, ...]}; a letter that the
    dictionary lacks, or a malformed line, raises DecodingInputError naming file and line."""
    known = set(symbols)
    lexicon: Dict[str, List[List[str]]] = {}
    with open(_need_file(path, "lexicon"), encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.strip().split(None, 1)
            if not parts:
                continue
            if len(parts) != 2:
                raise DecodingInputError(f"{path}:{lineno}: expected 'WORD<TAB>spelling', got {line.strip()!r}")
            word, spelling = parts[0], parts[1].split()
            unknown = [s for s in spelling if s not in known]
            if unknown:
                raise DecodingInputError(
                    f"{path}:{lineno}: {word!r} is spelled with {unknown} not in the target dictionary"
                )
            lexicon.setdefault(word, []).append(spelling)
    if not lexicon:
        raise DecodingInputError(f"{path}: empty lexicon")
    return lexicon


def _check_arpa(path: str) -> str:
    """KenLM aborts the process on a malformed file; check the ARPA header here first."""
    _need_file(path, "KenLM language model")
    with open(path, "rb") as f:
        head = f.read(4096)
    if path.endswith(".arpa") or not head.startswith(b"mmap"):
        text = head.decode("utf-8", errors="replace").lstrip()
        if not text.startswith("\\data\\") or "ngram 1=" not in text:
            raise DecodingInputError(f"{path}:1: not an ARPA language model (expected '\\data\\' and 'ngram 1=')")
    return path


class _FlashlightDecoder:
    def __init__(self, symbols: Sequence[str], blank: int, silence: int, options: DecoderOptions):
        self.fl, self.fl_dict = _flashlight()
        self.symbols = list(symbols)
        self.blank = blank
        self.silence = silence
        self.options = options
        self.criterion = self.fl.CriterionType.CTC

    def _options(self, options_class, **extra):
        """flashlight-text's decoder options from ours, plus the decoder-specific ``extra``."""
        o = self.options
        return options_class(
            beam_size=o.beam, beam_size_token=o.beam_size_token or len(self.symbols), beam_threshold=o.beam_threshold,
            lm_weight=o.lm_weight, sil_score=o.sil_score, log_add=False, criterion_type=self.criterion, **extra,
        )

    def _dictionary(self, entries: Sequence[str]):
        """A flashlight Dictionary of ``entries``; unknown entries map to ``<unk>`` if present."""
        dictionary = self.fl_dict.Dictionary()
        for entry in entries:
            if not dictionary.contains(entry):
                dictionary.add_entry(entry)
        if dictionary.contains("<unk>"):
            dictionary.set_default_index(dictionary.get_index("<unk>"))
        return dictionary

    def decode(self, emissions: torch.Tensor) -> Dict:
        """``emissions`` (T, V) -> best hypothesis of the beam search."""
        emissions = emissions.float().contiguous().cpu()
        T, V = emissions.shape
        result = self.decoder.decode(emissions.data_ptr(), T, V)[0]
        tokens = collapse(result.tokens, self.blank)
        tokens = [t for t in tokens if t >= 0]
        while tokens and tokens[0] == self.silence:  # the beam search starts in silence
            tokens.pop(0)
        frames = list(result.tokens)
        if len(frames) == T + 2:  # flashlight pads the path with a start and an end step
            frames = frames[1:-1]
        return {"tokens": torch.tensor(tokens, dtype=torch.long), "score": float(result.score),
                "words": self._words(result, tokens), "frames": frames if len(frames) == T else None}


class LexiconBeamDecoder(_FlashlightDecoder):
    """Lexicon-constrained CTC beam search with a word n-gram (see the module docstring)."""

    def __init__(self, symbols, blank, silence, lexicon_path, lm_path, options: DecoderOptions = DecoderOptions()):
        super().__init__(symbols, blank, silence, options)
        lexicon = read_lexicon(lexicon_path, self.symbols)
        self.word_dict = self._dictionary(list(lexicon) + ["<unk>"])
        self.lm = kenlm_class()(_check_arpa(lm_path), self.word_dict)
        index = {s: i for i, s in enumerate(self.symbols)}
        self.trie = self.fl.Trie(len(self.symbols), silence)
        start = self.lm.start(False)
        for word, spellings in lexicon.items():
            word_idx = self.word_dict.get_index(word)
            _, score = self.lm.score(start, word_idx)
            for spelling in spellings:
                self.trie.insert([index[s] for s in spelling], word_idx, score)
        self.trie.smear(self.fl.SmearingMode.MAX)
        opts = self._options(self.fl.LexiconDecoderOptions, word_score=options.word_score, unk_score=options.unk_score)
        unk_word = self.word_dict.get_index("<unk>")
        self.decoder = self.fl.LexiconDecoder(opts, self.trie, self.lm, silence, blank, unk_word, [], False)

    def _words(self, result, tokens) -> List[str]:
        return [self.word_dict.get_entry(w) for w in result.words if w >= 0]


class LexiconFreeBeamDecoder(_FlashlightDecoder):
    """CTC beam search over letters with a letter n-gram (see the module docstring)."""

    def __init__(self, symbols, blank, silence, lm_path, options: DecoderOptions = DecoderOptions()):
        super().__init__(symbols, blank, silence, options)
        self.token_dict = self._dictionary(self.symbols)
        self.lm = kenlm_class()(_check_arpa(lm_path), self.token_dict)
        opts = self._options(self.fl.LexiconFreeDecoderOptions)
        self.decoder = self.fl.LexiconFreeDecoder(opts, self.lm, silence, blank, [])

    def _words(self, result, tokens) -> List[str]:
        return "".join(self.symbols[t] if t != self.silence else " " for t in tokens).split()
