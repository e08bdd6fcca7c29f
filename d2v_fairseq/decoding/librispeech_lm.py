"""LibriSpeech's language-model resources from a local copy -> what our decoders load.

    python -m d2v_fairseq.decoding.librispeech_lm OUT_DIR --vocab librispeech-vocab.txt \
        [--arpa 4-gram.arpa.gz] [--lm-text librispeech-lm-norm.txt.gz --order 4 --max-sentences 2000000] \
        [--letter-lm-order 6]

writes OUT_DIR/lexicon.txt (every vocabulary word spelled in letters, then ``|``) and
OUT_DIR/lm.arpa: the official 4-gram when ``--arpa`` is given (decompressed), otherwise one
estimated with this package's modified Kneser-Ney estimator from the first
``--max-sentences`` lines of the LM text (a pure-Python estimator: the full 800M-word text
needs KenLM's lmplz). With ``--letter-lm-order``, also OUT_DIR/letters.arpa for lexicon-free
decoding.
"""

import argparse
import gzip
import itertools
import os
import shutil

from .lm import KneserNeyLM, write_lexicon


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


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--vocab", required=True, help="librispeech-vocab.txt")
    parser.add_argument("--arpa", help="the official 4-gram.arpa(.gz) to use as is")
    parser.add_argument("--lm-text", help="librispeech-lm-norm.txt(.gz), to estimate an LM when --arpa is absent")
    parser.add_argument("--order", type=int, default=4)
    parser.add_argument("--max-sentences", type=int, default=2_000_000)
    parser.add_argument("--letter-lm-order", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    write_lexicon(read_vocab(args.vocab), os.path.join(args.out_dir, "lexicon.txt"))
    arpa = os.path.join(args.out_dir, "lm.arpa")
    if args.arpa:
        with open_text(args.arpa) as src, open(arpa, "w", encoding="utf-8") as dst:
            shutil.copyfileobj(src, dst)
    elif args.lm_text:
        with open_text(args.lm_text) as f:
            sentences = [line.upper().split() for line in itertools.islice(f, args.max_sentences) if line.strip()]
        KneserNeyLM(sentences, args.order).write_arpa(arpa)
    else:
        parser.error("give --arpa (the official LM) or --lm-text (to estimate one)")
    if args.letter_lm_order:
        if not args.lm_text:
            parser.error("--letter-lm-order needs --lm-text")
        with open_text(args.lm_text) as f:
            letters = [list("|".join(line.upper().split())) + ["|"]
                       for line in itertools.islice(f, args.max_sentences) if line.strip()]
        KneserNeyLM(letters, args.letter_lm_order).write_arpa(os.path.join(args.out_dir, "letters.arpa"))
    print(f"wrote {args.out_dir}/lexicon.txt and {arpa}")


if __name__ == "__main__":
    main()
