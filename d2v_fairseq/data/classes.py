"""``classes.txt``: the class names of a labeled dataset, one per line (index = label); the
image and audio-tagging manifest writers both write it."""

import os
from typing import List


def read_classes(path: str) -> List[str]:
    """Class names, one per line (index = label)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def count_classes(data_dir: str, how_to_write: str, error: type = FileNotFoundError) -> int:
    """The number of classes in DATA_DIR/classes.txt; ``error`` (naming the file and
    ``how_to_write`` it) when it is missing."""
    path = os.path.join(data_dir, "classes.txt")
    if not os.path.isfile(path):
        raise error(f"{path}: missing; set task.num_classes or write it with {how_to_write}")
    return len(read_classes(path))
