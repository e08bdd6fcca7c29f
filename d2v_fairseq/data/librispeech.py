"""LibriSpeech from a local copy -> fairseq wav2vec manifests and letter labels.

    d2v prepare librispeech /data/LibriSpeech OUT_DIR \
        [--subsets train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other]

For each subset directory found under the LibriSpeech root, writes OUT_DIR/SUBSET.tsv,
.wrd and .ltr (utterances sorted by id), and dict.ltr.txt from the training subsets. For
pre-training on all of 960h, also writes train.tsv (all train-* subsets) and valid.tsv
(dev-other). Each audio header is read (sample count, rate, channels); a bad file or a
transcript line without audio stops with the file and line named.
"""

import logging
import os
from typing import Dict, List, Tuple

from .manifest import ManifestError, check_audio, write_letter_dict, write_split

logger = logging.getLogger(__name__)

SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean", "test-other")


def read_transcripts(subset_dir: str) -> Dict[str, Tuple[str, str]]:
    """utterance id -> (transcript, "file:line") from every ``*.trans.txt`` under ``subset_dir``."""
    texts: Dict[str, Tuple[str, str]] = {}
    for dirpath, _, files in os.walk(subset_dir):
        for name in sorted(files):
            if not name.endswith(".trans.txt"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    parts = line.strip().split(" ", 1)
                    if len(parts) != 2 or not parts[1].strip():
                        raise ManifestError(f"{path}:{lineno}: expected 'UTTERANCE-ID TRANSCRIPT', got {line.strip()!r}")
                    texts[parts[0]] = (parts[1].strip().upper(), f"{path}:{lineno}")
    return texts


def subset_items(root: str, subset: str) -> List[Tuple[str, int, str]]:
    """(path relative to root, num_samples, transcript) for each utterance of ``subset``."""
    subset_dir = os.path.join(root, subset)
    items = []
    for utt, (text, where) in sorted(read_transcripts(subset_dir).items()):
        speaker, chapter, _ = utt.split("-")
        rel = os.path.join(subset, speaker, chapter, f"{utt}.flac")
        frames = check_audio(os.path.join(root, rel), where)
        items.append((rel, frames, text))
    return items


def prepare(root: str, out_dir: str, subsets=SUBSETS) -> Dict[str, int]:
    """Writes the manifests and labels of each subset found under ``root`` (see the module
    docstring); returns {subset: utterances}. A subset that is missing is logged and skipped."""
    found: Dict[str, List[Tuple[str, int, str]]] = {}
    for subset in subsets:
        if not os.path.isdir(os.path.join(root, subset)):
            logger.warning(f"{subset}: not found under {root}, skipped")
            continue
        found[subset] = subset_items(root, subset)
        write_split(out_dir, subset, root, found[subset])
        logger.info(f"{subset}: {len(found[subset])} utterances")
    train = [item for name, items in found.items() if name.startswith("train") for item in items]
    if train:
        write_split(out_dir, "train", root, train)
        write_letter_dict(out_dir, (text for _, _, text in train))
    if "dev-other" in found:
        write_split(out_dir, "valid", root, found["dev-other"])
    return {name: len(items) for name, items in found.items()}
