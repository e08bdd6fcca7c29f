"""A word n-gram language model with interpolated modified Kneser-Ney smoothing, written as
ARPA (what KenLM and flashlight-text load), and the lexicon for lexicon-constrained decoding.

    d2v prepare lm TEXT OUT_DIR [--order 3]

writes OUT_DIR/lm.arpa and OUT_DIR/lexicon.txt. No maintained PyPI package estimates an ARPA
model (KenLM's ``lmplz`` is a C++ binary not shipped on PyPI), so this is a small estimator
following Chen & Goodman (1998) as KenLM's lmplz does: adjusted (continuation) counts for
lower orders, three discounts per order from the counts of counts, interpolation down to a
uniform distribution over the vocabulary.
"""

import math
import os
from collections import defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

from ..modules.errors import InputError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# used when an order's counts of counts are too few to estimate a discount (tiny corpora)
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)

Gram = Tuple[str, ...]


def read_sentences(path: str) -> List[List[str]]:
    """Whitespace-tokenized, upper-cased lines of ``path``; an empty line is an error."""
    if not os.path.isfile(path):
        raise InputError("no such text file", path=path)
    sentences = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            words = line.upper().split()
            if not words:
                raise InputError("empty line in the LM text", path=path, line=lineno)
            sentences.append(words)
    if not sentences:
        raise InputError("no text", path=path)
    return sentences


def discounts(counts: Dict[Gram, int]) -> Tuple[float, float, float]:
    """(D1, D2, D3+) from the counts of counts (Chen & Goodman, eq. 26)."""
    t = [0, 0, 0, 0, 0]
    for c in counts.values():
        if c <= 4:
            t[c] += 1
    if min(t[1:5]) == 0:
        return FALLBACK_DISCOUNTS
    y = t[1] / (t[1] + 2 * t[2])
    found = (1 - 2 * y * t[2] / t[1], 2 - 3 * y * t[3] / t[2], 3 - 4 * y * t[4] / t[3])
    if not (0 < found[0] < 1 and 0 < found[1] < 2 and 0 < found[2] < 3):
        return FALLBACK_DISCOUNTS
    return found


class KneserNeyLM:
    """Interpolated modified Kneser-Ney n-gram model estimated from ``sentences``."""

    def __init__(self, sentences: Iterable[Sequence[str]], order: int = 3):
        if order < 1:
            raise ValueError("order must be >= 1")
        self.order = order
        raw: Dict[Gram, int] = defaultdict(int)
        vocab = set()
        for words in sentences:
            tokens = [BOS] + list(words) + [EOS]
            vocab.update(words)
            for i in range(1, len(tokens)):  # every predicted token (not <s>) ...
                for n in range(1, min(order, i + 1) + 1):  # ... with each context length
                    raw[tuple(tokens[i - n + 1: i + 1])] += 1
        self.vocab = sorted(vocab) + [EOS]
        # adjusted counts: the highest order, and n-grams starting with <s> (which cannot be
        # extended to the left), keep raw counts; other lower-order n-grams count their
        # distinct left extensions (continuation counts, the Kneser-Ney idea)
        left_extensions: Dict[Gram, int] = defaultdict(int)
        for gram in raw:
            if len(gram) > 1:
                left_extensions[gram[1:]] += 1
        self.counts: List[Dict[Gram, int]] = [dict() for _ in range(order + 1)]
        for gram, c in raw.items():
            n = len(gram)
            keep_raw = n == order or gram[0] == BOS
            self.counts[n][gram] = c if keep_raw else left_extensions[gram]
        self.discount = [None] + [discounts(self.counts[n]) for n in range(1, order + 1)]
        self.prob: List[Dict[Gram, float]] = [dict() for _ in range(order + 1)]
        self.backoff: List[Dict[Gram, float]] = [dict() for _ in range(order + 1)]
        self._estimate()

    def _d(self, n: int, count: int) -> float:
        return 0.0 if count == 0 else self.discount[n][min(count, 3) - 1]

    def _estimate(self) -> None:
        for n in range(1, self.order + 1):
            totals: Dict[Gram, float] = defaultdict(float)
            kinds: Dict[Gram, List[int]] = defaultdict(lambda: [0, 0, 0])
            for gram, c in self.counts[n].items():
                totals[gram[:-1]] += c
                kinds[gram[:-1]][min(c, 3) - 1] += 1
            gamma = {
                ctx: sum(d * k for d, k in zip(self.discount[n], kinds[ctx], strict=False)) / totals[ctx] for ctx in totals
            }
            for gram, c in self.counts[n].items():
                ctx = gram[:-1]
                lower = self.prob[n - 1][gram[1:]] if n > 1 else 1.0 / (len(self.vocab) + 1)  # +1: <unk>
                self.prob[n][gram] = (c - self._d(n, c)) / totals[ctx] + gamma[ctx] * lower
            for ctx, g in gamma.items():
                if len(ctx) >= 1:
                    self.backoff[len(ctx)][ctx] = g
            if n == 1:
                self.unk_prob = gamma[()] / (len(self.vocab) + 1)

    def logprob(self, word: str, context: Sequence[str]) -> float:
        """log10 p(word | context) by ARPA back-off semantics."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        weight = 0.0
        while True:
            gram = context + (word,)
            if gram in self.prob[len(gram)]:
                return weight + math.log10(self.prob[len(gram)][gram])
            if not context:
                return weight + math.log10(self.unk_prob)
            weight += math.log10(self.backoff[len(context)].get(context, 1.0))
            context = context[1:]

    def write_arpa(self, path: str) -> None:
        """Writes the model in ARPA format (log10 probabilities and back-off weights)."""
        grams = [sorted(self.prob[n]) for n in range(self.order + 1)]
        unigrams = [(UNK,), (BOS,)] + grams[1]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            f.write(f"ngram 1={len(unigrams)}\n")
            for n in range(2, self.order + 1):
                f.write(f"ngram {n}={len(grams[n])}\n")
            for n in range(1, self.order + 1):
                f.write(f"\n\\{n}-grams:\n")
                for gram in unigrams if n == 1 else grams[n]:
                    if gram == (UNK,):
                        p = math.log10(self.unk_prob)
                    elif gram == (BOS,):
                        p = -99.0  # <s> is never predicted
                    else:
                        p = math.log10(self.prob[n][gram])
                    line = f"{p:.7f}\t{' '.join(gram)}"
                    if n < self.order and gram in self.backoff[n]:
                        line += f"\t{math.log10(self.backoff[n][gram]):.7f}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")


def write_lexicon(words: Iterable[str], path: str) -> None:
    """One line per word: the word, a tab, its letters and the word boundary: 'HI\\tH I |'."""
    with open(path, "w", encoding="utf-8") as f:
        for word in sorted(set(words)):
            f.write(f"{word}\t{' '.join(word)} |\n")


def build_lm(text: str, out_dir: str, order: int = 3) -> Tuple[str, str]:
    """OUT_DIR/lm.arpa (an ``order``-gram, modified Kneser-Ney) and OUT_DIR/lexicon.txt from a
    text file of one sentence per line; returns their paths."""
    sentences = read_sentences(text)
    os.makedirs(out_dir, exist_ok=True)
    arpa, lexicon = os.path.join(out_dir, "lm.arpa"), os.path.join(out_dir, "lexicon.txt")
    KneserNeyLM(sentences, order).write_arpa(arpa)
    write_lexicon((w for s in sentences for w in s), lexicon)
    return arpa, lexicon
