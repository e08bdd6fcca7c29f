"""Metrics computed once: error rates, top-k, average precision, MCC."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, matthews_corrcoef

from d2v_fairseq.modules.metrics import (
    average_precisions,
    char_error_rate,
    matthews_correlation,
    mean_average_precision,
    top_k_correct,
    word_error_rate,
)


def test_error_rates_by_hand():
    assert word_error_rate(["A B C D"], ["A X C"]) == pytest.approx(50.0)  # 1 substitution + 1 deletion of 4
    assert char_error_rate(["AB CD"], ["AB  CE"]) == pytest.approx(20.0)  # 1 of 5 characters; spaces collapsed


def test_top_k_counts_hits_and_clips_k():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.02, 0.08]])
    labels = torch.tensor([2, 1])
    assert top_k_correct(logits, labels, 1) == 0
    assert top_k_correct(logits, labels, 2) == 1
    assert top_k_correct(logits, labels, 5) == 2  # k larger than the classes: all of them


def test_average_precision_matches_scikit_learn_and_skips_absent_classes():
    rng = np.random.default_rng(0)
    scores, targets = rng.random((20, 4)), (rng.random((20, 4)) > 0.6).astype(int)
    targets[:, 3] = 0  # a class with no positive
    ap = average_precisions(scores, targets)
    assert np.isnan(ap[3])
    assert ap[:3] == pytest.approx([average_precision_score(targets[:, c], scores[:, c]) for c in range(3)])
    assert mean_average_precision(scores, targets) == pytest.approx(ap[:3].mean())


def test_mcc_matches_scikit_learn():
    gold, pred = [0, 1, 2, 2, 1, 0], [0, 2, 2, 2, 1, 1]
    assert matthews_correlation(gold, pred) == pytest.approx(matthews_corrcoef(gold, pred))
