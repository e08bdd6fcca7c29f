"""Masking that repeats: span masks drawn from an RNG seeded by (seed, update, samples).

fairseq's ``compute_mask_indices`` draws from the global numpy RNG, which nobody seeds per
update, so two runs with one seed (or a run and its resumption) mask differently. Here every
draw happens under ``numpy_seed(seed, update, *sample_ids)`` and leaves the global RNG as it was.
"""

from typing import Optional, Sequence

import numpy as np
import torch
from fairseq.data.data_utils import compute_mask_indices, numpy_seed


def _seed_key(seed: int, num_updates: int, sample_ids: Optional[Sequence[int]], salt: int):
    ids = tuple(int(i) for i in sample_ids) if sample_ids is not None else ()
    return (int(seed), int(num_updates), salt, hash(ids))


def span_mask(
    shape: tuple,
    padding_mask: Optional[torch.Tensor],
    mask_prob: float,
    mask_length: int,
    *,
    seed: int,
    num_updates: int,
    sample_ids: Optional[Sequence[int]] = None,
    min_masks: int = 1,
    require_same_masks: bool = True,
    mask_dropout: float = 0.0,
    mask_selection: str = "static",
    mask_other: float = 0.0,
    no_overlap: bool = False,
    min_space: int = 1,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Boolean mask (B, T): spans of ``mask_length`` starting with probability ``mask_prob``
    (so that about ``mask_prob * mask_length`` of the steps would be covered without overlap;
    with overlap p=0.65, length 10 covers about 49%)."""
    with numpy_seed(*_seed_key(seed, num_updates, sample_ids, salt=0)):
        mask = compute_mask_indices(
            shape,
            padding_mask,
            mask_prob,
            mask_length,
            mask_type=mask_selection,
            mask_other=mask_other,
            min_masks=min_masks,
            no_overlap=no_overlap,
            min_space=min_space,
            require_same_masks=require_same_masks,
            mask_dropout=mask_dropout,
        )
    return torch.from_numpy(np.asarray(mask)).to(device)


def channel_mask(
    batch: int,
    channels: int,
    mask_prob: float,
    mask_length: int,
    *,
    seed: int,
    num_updates: int,
    sample_ids: Optional[Sequence[int]] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Boolean mask (B, C) of feature channels to zero (SpecAugment-style, used in fine-tuning)."""
    with numpy_seed(*_seed_key(seed, num_updates, sample_ids, salt=1)):
        mask = compute_mask_indices((batch, channels), None, mask_prob, mask_length)
    return torch.from_numpy(np.asarray(mask)).to(device)
