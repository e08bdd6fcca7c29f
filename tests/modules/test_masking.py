import numpy as np
import torch

from d2v_fairseq.modules.masking import channel_mask, span_mask

from ..helpers.speech_only_layers import exact_span_mask


def test_span_masks_cover_about_49_percent_for_p065_len10():
    mask = span_mask((64, 500), None, 0.65, 10, seed=1, num_updates=0, require_same_masks=False)
    assert mask.dtype == torch.bool and mask.shape == (64, 500)
    fraction = mask.float().mean().item()
    assert 0.44 <= fraction <= 0.54, fraction
    assert len(set(mask.sum(-1).tolist())) > 1


def test_require_same_masks_equalizes_rows_to_the_smallest():
    free = span_mask((16, 500), None, 0.65, 10, seed=1, num_updates=0, require_same_masks=False)
    same = span_mask((16, 500), None, 0.65, 10, seed=1, num_updates=0, require_same_masks=True)
    assert set(same.sum(-1).tolist()) == {int(free.sum(-1).min())}


def test_masks_repeat_from_seed_update_and_ids_and_leave_global_rng_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = span_mask((4, 100), None, 0.65, 10, seed=1, num_updates=7, sample_ids=[3, 4, 5, 6])
    assert (np.random.get_state()[1] == before).all()
    b = span_mask((4, 100), None, 0.65, 10, seed=1, num_updates=7, sample_ids=[3, 4, 5, 6])
    c = span_mask((4, 100), None, 0.65, 10, seed=1, num_updates=8, sample_ids=[3, 4, 5, 6])
    d = span_mask((4, 100), None, 0.65, 10, seed=1, num_updates=7, sample_ids=[9, 4, 5, 6])
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)


def test_masks_avoid_padding():
    padding = torch.zeros(2, 100, dtype=torch.bool)
    padding[1, 50:] = True
    mask = span_mask((2, 100), padding, 0.65, 10, seed=1, num_updates=0)
    assert not mask[1, 50:].any()


def test_channel_mask_shape_and_fraction():
    mask = channel_mask(8, 256, 0.5, 10, seed=1, num_updates=0)
    assert mask.shape == (8, 256)
    assert 0.2 < mask.float().mean() < 0.8


def test_channel_mask_draws_zero_spans_without_crashing_and_repeats():
    # 0.1 * 64 / 8 = 0.8 expected spans: some rows get none (fairseq's function raises there)
    a = channel_mask(32, 64, 0.1, 8, seed=1, num_updates=3)
    b = channel_mask(32, 64, 0.1, 8, seed=1, num_updates=3)
    assert torch.equal(a, b)
    per_row = a.sum(-1)
    assert (per_row == 0).any() and (per_row > 0).any()


# --- BEiT block masks (vision) -------------------------------------------------------------
def test_block_masks_cover_60_percent_in_blocks_of_at_least_16_patches():
    from d2v_fairseq.modules.masking import block_mask_rects

    for seed in range(50):
        mask, rects = block_mask_rects((14, 14), 120, np.random.default_rng(seed))
        assert abs(mask.mean() - 0.6) <= 0.02, (seed, mask.sum())
        assert rects and all(h * w >= 16 for _, _, h, w in rects)
        covered = np.zeros_like(mask)
        for top, left, h, w in rects:
            covered[top:top + h, left:left + w] = True
        assert np.array_equal(covered, mask)  # nothing masked outside the blocks


def test_block_masks_repeat_per_sample_and_differ_across_samples_and_updates():
    from d2v_fairseq.modules.masking import block_mask

    a = block_mask(3, (8, 8), 0.6, seed=1, num_updates=5, sample_ids=[7, 8, 9])
    b = block_mask(2, (8, 8), 0.6, seed=1, num_updates=5, sample_ids=[9, 7])
    assert a.shape == (3, 64) and a.dtype == torch.bool
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])  # a sample's mask ignores its batch
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, block_mask(3, (8, 8), 0.6, seed=1, num_updates=6, sample_ids=[7, 8, 9]))
    assert abs(a.float().mean().item() - 0.6) < 0.05


def _runs(row):
    """Lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def test_exact_span_masks_mask_exactly_int_p_t_frames_in_every_row():
    for frames, prob in ((37, 0.5), (150, 0.5), (499, 0.55), (8, 0.5)):
        mask = exact_span_mask(6, frames, prob, 5, seed=1, num_updates=3, copies=4)
        assert mask.shape == (24, frames) and mask.dtype == torch.bool
        assert set(mask.sum(-1).tolist()) == {int(prob * frames)}, (frames, prob)


def test_exact_span_masks_are_spans_not_scattered_frames():
    mask = exact_span_mask(8, 500, 0.5, 5, seed=1, num_updates=0, copies=8).numpy()
    runs = np.concatenate([_runs(row) for row in mask])
    # i.i.d. masking at 50% gives runs of 2 frames on average; spans of 5 that overlap give more
    assert runs.mean() > 4.0, runs.mean()
    scattered = np.random.default_rng(0).random((64, 500)) < 0.5
    assert np.concatenate([_runs(row) for row in scattered]).mean() < 2.5


def test_exact_span_masks_differ_per_copy_and_repeat_from_seed_update_id_copy():
    a = exact_span_mask(2, 120, 0.5, 5, seed=1, num_updates=4, sample_ids=[10, 11], copies=3)
    copies_of_first = a[:3]
    assert all(not torch.equal(copies_of_first[i], copies_of_first[j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    # sample 11's masks do not depend on which other samples share its batch
    b = exact_span_mask(1, 120, 0.5, 5, seed=1, num_updates=4, sample_ids=[11], copies=3)
    assert torch.equal(a[3:], b)
    assert not torch.equal(a, exact_span_mask(2, 120, 0.5, 5, seed=1, num_updates=5, sample_ids=[10, 11], copies=3))
    assert not torch.equal(a, exact_span_mask(2, 120, 0.5, 5, seed=2, num_updates=4, sample_ids=[10, 11], copies=3))
