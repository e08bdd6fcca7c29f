"""Masking that repeats: span masks drawn from RNGs seeded by (seed, update, sample id).

Called without ``seed``/``epoch``/``indices``, fairseq's ``compute_mask_indices`` draws from
fresh, unseeded generators, so two runs with one seed (or a run and its resumption) mask
differently; that is what the reference does. Here every call passes them: each sample's
mask is a function of (seed, update, sample id) alone, and the global RNG is untouched.
"""

from typing import Optional, Sequence

import numpy as np
import torch
from fairseq.data.data_utils import compute_mask_indices

from .seeding import row_ids, seeded_rng


def _seeding(seed: int, num_updates: int, sample_ids: Optional[Sequence[int]], batch: int) -> dict:
    """compute_mask_indices' own seeding arguments (fairseq derives each row's generator from
    them itself); without sample ids, the batch position stands in for the id."""
    # seed * 2: the value earlier versions passed (kept, so that span masks stay as they were)
    return {"seed": int(seed) * 2, "epoch": int(num_updates), "indices": row_ids(batch, sample_ids)}


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
    (overlapping spans: p=0.65, length 10 covers about 49% of the steps; ``require_same_masks``
    then trims every row to the batch's smallest count)."""
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
        **_seeding(seed, num_updates, sample_ids, shape[0]),
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
    """Boolean mask (B, C) of feature channels to zero (SpecAugment-style, used in fine-tuning):
    per row, int(mask_prob * C / mask_length + u) spans of ``mask_length``, u ~ U[0, 1).

    Written here rather than through ``compute_mask_indices``, which raises ("this should
    never happens") whenever a row draws zero spans, as narrow models with small
    ``mask_channel_prob`` do."""
    ids = range(batch) if sample_ids is None else [int(i) for i in sample_ids]
    mask = np.zeros((batch, channels), dtype=bool)
    length = min(mask_length, channels)
    for row, sample_id in enumerate(ids):
        rng = seeded_rng(seed, num_updates, sample_id, "channel")
        count = int(mask_prob * channels / float(mask_length) + rng.random())
        for start in rng.integers(0, channels - length + 1, size=count):
            mask[row, start: start + length] = True
    return torch.from_numpy(mask).to(device)


def block_mask_rects(
    grid: tuple,
    num_masked: int,
    rng: np.random.Generator,
    min_block: int = 16,
    min_aspect: float = 0.3,
    max_attempts: int = 100,
) -> tuple:
    """BEiT's block-wise masking of a (gh, gw) patch grid (Bao et al., 2022, alg. 1).

    Rectangles of at least ``min_block`` patches with aspect ratio in [min_aspect, 1/min_aspect]
    are placed at random, each adding at most the patches still wanted, until ``num_masked``
    patches are masked (or ``max_attempts`` draws in a row add none). Returns (mask (gh, gw)
    bool array, the rectangles as (top, left, height, width))."""
    gh, gw = grid
    if not 0 <= num_masked <= gh * gw:
        raise ValueError(f"cannot mask {num_masked} of {gh * gw} patches")
    if num_masked > 0 and min_block > num_masked:
        raise ValueError(f"min_mask_patches_per_block={min_block} exceeds the {num_masked} patches to mask")
    mask = np.zeros((gh, gw), dtype=bool)
    rects = []
    log_aspect = (np.log(min_aspect), np.log(1.0 / min_aspect))
    failures = 0
    while mask.sum() < num_masked and failures < max_attempts:
        wanted = num_masked - int(mask.sum())
        area = rng.uniform(min_block, max(min_block, num_masked))
        aspect = np.exp(rng.uniform(*log_aspect))
        h, w = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if h * w < min_block or h > gh or w > gw:
            failures += 1
            continue
        top, left = int(rng.integers(0, gh - h + 1)), int(rng.integers(0, gw - w + 1))
        added = h * w - int(mask[top: top + h, left: left + w].sum())
        if 0 < added <= wanted:
            mask[top: top + h, left: left + w] = True
            rects.append((top, left, h, w))
            failures = 0
        else:
            failures += 1
    return mask, rects


def block_mask(
    batch: int,
    grid: tuple,
    mask_prob: float,
    *,
    seed: int,
    num_updates: int,
    sample_ids: Optional[Sequence[int]] = None,
    num_masked: int = 0,
    min_block: int = 16,
    min_aspect: float = 0.3,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Block masks (B, gh * gw) for a batch, each drawn from (seed, update, sample id):
    ``num_masked`` patches per image, or round(mask_prob * patches) when it is 0."""
    count = num_masked if num_masked > 0 else int(round(mask_prob * grid[0] * grid[1]))
    ids = range(batch) if sample_ids is None else [int(i) for i in sample_ids]
    masks = [
        block_mask_rects(grid, count, seeded_rng(seed, num_updates, i), min_block, min_aspect)[0]
        for i in ids
    ]
    return torch.from_numpy(np.stack(masks).reshape(batch, -1)).to(device)
