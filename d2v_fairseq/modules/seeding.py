"""One way to derive random generators: from (seed, *keys), e.g. (seed, update, sample id).

Every mask, crop, mixup and sampler of the package draws from ``seeded_rng`` (numpy) or
``seeded_generator`` (torch) with its own keys, never from a global generator, so that a run
repeats exactly and a resumed run continues as the uninterrupted one would. A stream name
(``"crop"``, ``"mixup"``) among the keys keeps two uses of the same (seed, update, id) apart.
"""

import zlib
from typing import Union

import numpy as np
import torch

Key = Union[int, str]


def _entropy(seed: int, keys) -> list:
    # strings become their CRC-32 (stable across processes, unlike hash() of a str)
    return [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]


def seeded_rng(seed: int, *keys: Key) -> np.random.Generator:
    """A numpy generator that is a function of (seed, *keys) alone (non-negative ints or strings)."""
    return np.random.default_rng(_entropy(seed, keys))


def seeded_int(seed: int, *keys: Key, high: int = 2**31 - 1) -> int:
    """One integer in [0, high) from (seed, *keys): a seed for APIs that take an int."""
    return int(seeded_rng(seed, *keys).integers(high))


def seeded_generator(seed: int, *keys: Key) -> torch.Generator:
    """A torch CPU generator that is a function of (seed, *keys) alone."""
    return torch.Generator().manual_seed(seeded_int(seed, *keys, high=2**63 - 1))


def row_ids(rows: int, sample_ids=None, copies: int = 1) -> torch.Tensor:
    """The key (rows * copies,) each row of a batch draws its mask from: the sample's id (its
    batch position when the task passes none), and with ``copies`` masked copies of every sample
    ``id * copies + copy`` for copy ``copy`` (copies of a sample adjacent, as data2vec 2.0 lays
    them out). Every masking path of every model family takes its row keys from here."""
    ids = torch.arange(rows) if sample_ids is None else torch.as_tensor([int(i) for i in sample_ids])
    ids = ids.detach().cpu().long()
    if copies > 1:
        ids = (ids[:, None] * copies + torch.arange(copies)[None]).reshape(-1)
    return ids
