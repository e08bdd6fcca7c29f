"""Checking transcript files against their manifest and dictionary."""

import os
from typing import List, Set

from .manifest import ManifestError, read_lines


def dictionary_symbols(dict_path: str) -> Set[str]:
    """Symbols of a fairseq dictionary file (``symbol count`` per line)."""
    if not os.path.isfile(dict_path):
        raise ManifestError(f"{dict_path}: dictionary not found")
    symbols = set()
    with open(dict_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rsplit(" ", 1)
            if len(parts) != 2 or not parts[0]:
                raise ManifestError(f"{dict_path}:{lineno}: expected 'SYMBOL COUNT', got {line.strip()!r}")
            symbols.add(parts[0])
    return symbols


def check_labels(label_path: str, manifest_path: str, num_utterances: int, symbols: Set[str]) -> List[str]:
    """Every line of ``label_path`` non-empty and spelled in ``symbols``; as many lines as the
    manifest has utterances. Returns the lines; raises ManifestError naming file and line."""
    if not os.path.isfile(label_path):
        raise ManifestError(f"{label_path}: label file not found (expected beside {manifest_path})")
    lines = read_lines(label_path)
    for lineno, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            raise ManifestError(f"{label_path}:{lineno}: empty transcript")
        unknown = sorted({t for t in tokens if t not in symbols})
        if unknown:
            raise ManifestError(f"{label_path}:{lineno}: {unknown} not in the dictionary: {line!r}")
    if len(lines) != num_utterances:
        raise ManifestError(
            f"{label_path}: {len(lines)} transcripts but {manifest_path} lists {num_utterances} utterances"
        )
    return lines
