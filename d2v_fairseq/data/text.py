"""Raw text -> sentencepiece BPE -> fairseq's binarized ``masked_lm`` input (``dict.txt``,
``train.bin/.idx``, ``valid.bin/.idx``), the data of ``data2vec_text`` pre-training.

    d2v prepare text data-bin/mytext --train corpus.txt --valid valid.txt [--vocab-size 50000]

Input files are UTF-8, one sentence or paragraph per line; a blank line ends a document
(fairseq's ``sample_break_mode: complete_doc``). A file that is empty, or has a line that is
not UTF-8, stops the recipe with the file and line named.
"""

import logging
import os
import subprocess
import sys
from typing import List, Optional, Sequence

from ..modules.errors import InputError, InputErrors, raise_all

logger = logging.getLogger(__name__)


class TextInputError(InputError):
    """Bad text input; the message names the file (and line)."""


class TextInputErrors(InputErrors, TextInputError):
    """Every bad line of a text file, reported together."""


def raise_bad_lines(path: str, total: int, problems: List[str]) -> None:
    """Raises the error for ``problems`` (lines of ``path``): one as one line, several together."""
    raise_all(problems, TextInputError, TextInputErrors, f"{path}: {len(problems)} of {total} lines")


def read_lines(path: str) -> List[str]:
    """The lines of a UTF-8 text file (without newlines); errors name the file and line."""
    if not os.path.isfile(path):
        raise TextInputError(f"{path}: no such file")
    lines = []
    problems = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as e:
                problems.append(f"{path}:{number}: not UTF-8 ({e.reason} at byte {e.start})")
    raise_bad_lines(path, len(lines) + len(problems), problems)
    if not any(line.strip() for line in lines):
        raise TextInputError(f"{path}: empty (no non-blank line)")
    return lines


def train_bpe(files: Sequence[str], model_prefix: str, vocab_size: int = 50000) -> str:
    """A sentencepiece BPE model on ``files``; returns the ``.model`` path. On a corpus too
    small for ``vocab_size`` the vocabulary is smaller (sentencepiece's soft limit)."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        input=",".join(files), model_prefix=model_prefix, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=2,
        # fairseq's dictionary adds its own <s>, <pad>, </s>, <unk>; sentencepiece keeps only unk
        bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2,
    )
    return model_prefix + ".model"


def encode_file(sp_model: str, src: str, dst: str) -> int:
    """Writes ``src``'s lines as space-separated BPE pieces to ``dst`` (blank lines kept:
    they separate documents). Returns the number of non-blank lines."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=sp_model)
    lines = read_lines(src)
    encoded = [sp.encode(line, out_type=str) if line.strip() else None for line in lines]
    raise_bad_lines(src, len(lines), [f"{src}:{n}: encodes to no piece: {line!r}" for n, (line, pieces)
                                      in enumerate(zip(lines, encoded, strict=True), start=1)
                                      if pieces is not None and not pieces])
    with open(dst, "w", encoding="utf-8") as out:
        for pieces in encoded:
            out.write(" ".join(pieces) + "\n" if pieces is not None else "\n")
    return sum(1 for pieces in encoded if pieces is not None)


def binarize(destdir: str, trainpref: str, validpref: Optional[str] = None, srcdict: Optional[str] = None,
             workers: int = 2) -> None:
    """``fairseq-preprocess --only-source`` on BPE'd text: writes ``dict.txt`` and the splits."""
    args = [sys.executable, "-m", "fairseq_cli.preprocess", "--only-source", "--trainpref", trainpref,
            "--destdir", destdir, "--workers", str(workers), "--dataset-impl", "mmap"]
    if validpref:
        args += ["--validpref", validpref]
    if srcdict:
        args += ["--srcdict", srcdict]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed:\n{proc.stderr[-3000:]}")


def prepare(train: str, valid: str, out: str, vocab_size: int = 50000, sp_model: Optional[str] = None) -> str:
    """The whole recipe; returns ``out``. ``sp_model`` reuses a trained sentencepiece model."""
    os.makedirs(out, exist_ok=True)
    for path in (train, valid):
        read_lines(path)  # check both before the slow steps
    if sp_model is None:
        sp_model = train_bpe([train], os.path.join(out, "sentencepiece.bpe"), vocab_size)
    for split, path in (("train", train), ("valid", valid)):
        count = encode_file(sp_model, path, os.path.join(out, f"{split}.bpe"))
        logger.info(f"{path}: {count} lines encoded")
    binarize(out, os.path.join(out, "train.bpe"), os.path.join(out, "valid.bpe"))
    return out


def find_sp_model(data_dir: str) -> Optional[str]:
    """The sentencepiece model ``d2v prepare text`` wrote for binarized data in ``data_dir``
    (beside its dict.txt, or one folder up, as GLUE's input0/ sits); None when there is none."""
    data_dir = str(data_dir).split(":")[0]
    candidates = [os.path.join(data_dir, "sentencepiece.bpe.model"), os.path.join(data_dir, "..", "sentencepiece.bpe.model"),
                  os.path.join(data_dir, "input0", "..", "..", "sentencepiece.bpe.model")]
    return next((c for c in candidates if os.path.isfile(c)), None)
