"""Frame pooling for audio tagging and the mixup of waveforms with their labels."""

import torch

from d2v_fairseq.modules.mixup import mix_sources
from d2v_fairseq.modules.pooling import pool_frames


def test_linear_softmax_pooling_by_hand():
    logits = torch.tensor([[[0.0, 2.0], [1.0, -1.0], [3.0, 0.5]]])  # (1, T=3, C=2)
    padding = torch.tensor([[False, False, True]])  # the last frame is padding
    p = torch.sigmoid(logits[0, :2])
    expected_p = (p * p).sum(0) / p.sum(0)
    out = pool_frames(logits, padding, "lin_softmax")
    torch.testing.assert_close(torch.sigmoid(out[0]), expected_p)
    torch.testing.assert_close(pool_frames(logits, padding, "mean")[0], logits[0, :2].mean(0))
    torch.testing.assert_close(pool_frames(logits, padding, "max")[0], torch.tensor([1.0, 2.0]))
    # without padding every frame counts
    p = torch.sigmoid(logits[0])
    torch.testing.assert_close(torch.sigmoid(pool_frames(logits, None, "lin_softmax")[0]), (p * p).sum(0) / p.sum(0))


def test_label_mixup_mixes_targets_with_the_sources_weight():
    source = torch.randn(4, 100)
    target = torch.eye(4)[:, :3].clone()
    target[3, 0] = 1.0
    mixed, mixed_target, r, perm = mix_sources(source, target, 0.5, torch.Generator().manual_seed(3))
    assert 0.5 <= r <= 1.0 and sorted(perm.tolist()) == [0, 1, 2, 3]
    norm = (r ** 2 + (1 - r) ** 2) ** 0.5
    torch.testing.assert_close(mixed, (r * source + (1 - r) * source[perm]) / norm)
    torch.testing.assert_close(mixed_target, r * target + (1 - r) * target[perm])
