"""LibriSpeech's language-model resources from a local copy -> what our decoders load.

    d2v prepare librispeech-lm OUT_DIR --vocab librispeech-vocab.txt \
        [--arpa 4-gram.arpa.gz] [--lm-text librispeech-lm-norm.txt.gz --order 4 --max-sentences 2000000] \
        [--letter-lm-order 6]

writes OUT_DIR/lexicon.txt (every vocabulary word spelled in letters, then ``|``) and
OUT_DIR/lm.arpa: the official 4-gram when ``--arpa`` is given (decompressed), otherwise one
estimated with this package's modified Kneser-Ney estimator from the first
``--max-sentences`` lines of the LM text (a pure-Python estimator: the full 800M-word text
needs KenLM's lmplz). With ``--letter-lm-order``, also OUT_DIR/letters.arpa for lexicon-free
decoding.
"""

import gzip
import itertools
import os
import shutil
from typing import List, Optional

from ..decoding.lm import KneserNeyLM, write_lexicon
from ..modules.errors import InputError


def open_text(path: str):
    """Opens a text file, gzipped or not."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found")
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def read_vocab(path: str):
    """Upper-cased words of a vocabulary file; other characters than letters and ' are an error."""
    words = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            word = line.strip().upper()
            if not word:
                continue
            if not all(c.isalpha() or c == "'" for c in word):
                raise ValueError(f"{path}:{lineno}: {word!r} has characters other than letters and apostrophes")
            words.append(word)
    return words


def prepare(out_dir: str, vocab: str, arpa: Optional[str] = None, lm_text: Optional[str] = None, order: int = 4,
            max_sentences: int = 2_000_000, letter_lm_order: int = 0) -> List[str]:
    """Writes OUT_DIR/lexicon.txt and OUT_DIR/lm.arpa (and letters.arpa with ``letter_lm_order``),
    see the module docstring; returns the paths written."""
    if not arpa and not lm_text:
        raise InputError("give --arpa (the official LM) or --lm-text (to estimate one)", path=out_dir)
    if letter_lm_order and not lm_text:
        raise InputError("--letter-lm-order needs --lm-text", path=out_dir)
    os.makedirs(out_dir, exist_ok=True)
    written = [os.path.join(out_dir, "lexicon.txt"), os.path.join(out_dir, "lm.arpa")]
    write_lexicon(read_vocab(vocab), written[0])
    if arpa:
        with open_text(arpa) as src, open(written[1], "w", encoding="utf-8") as dst:
            shutil.copyfileobj(src, dst)
    else:
        with open_text(lm_text) as f:
            sentences = [line.upper().split() for line in itertools.islice(f, max_sentences) if line.strip()]
        KneserNeyLM(sentences, order).write_arpa(written[1])
    if letter_lm_order:
        with open_text(lm_text) as f:
            letters = [list("|".join(line.upper().split())) + ["|"]
                       for line in itertools.islice(f, max_sentences) if line.strip()]
        written.append(os.path.join(out_dir, "letters.arpa"))
        KneserNeyLM(letters, letter_lm_order).write_arpa(written[-1])
    return written
