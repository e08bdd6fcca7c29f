"""Mixing waveforms of a batch and their multi-hot targets (the audio tagging release's source mixup)."""

from typing import Tuple

import torch


def mix_sources(source: torch.Tensor, target: torch.Tensor, low: float, generator: torch.Generator
                ) -> Tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Mixes each waveform (B, S) with another of the batch (a random permutation) at one weight
    r ~ U[low, 1] for the batch: r * a + (1 - r) * b, rescaled by 1 / sqrt(r^2 + (1-r)^2) to keep
    the level; the multi-hot targets (B, C) mix with the same r. Returns (source, target, r, perm)."""
    r = float(torch.empty(()).uniform_(max(low, 1e-6), 1.0, generator=generator))
    perm = torch.randperm(source.size(0), generator=generator).to(source.device)
    mixed = (r * source + (1 - r) * source[perm]) / ((r ** 2 + (1 - r) ** 2) ** 0.5)
    return mixed, r * target + (1 - r) * target[perm], r, perm
