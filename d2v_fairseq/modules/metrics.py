"""Evaluation metrics, each computed in this one place (criteria log them, ``d2v evaluate``
reports them): error rates, top-k accuracy, mean average precision, Matthews correlation."""

from typing import Sequence

import editdistance
import numpy as np
import torch


def edit_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Corpus error rate in percent: edits / reference length, over sequences of units."""
    edits = sum(editdistance.eval(list(r), list(h)) for r, h in zip(references, hypotheses, strict=True))
    return 100.0 * edits / max(sum(len(r) for r in references), 1)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER in percent: word edits / reference words."""
    return edit_rate([r.split() for r in references], [h.split() for h in hypotheses])


def char_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER in percent over the letters, word boundaries counted as one space."""
    return edit_rate([" ".join(r.split()) for r in references], [" ".join(h.split()) for h in hypotheses])


def top_k_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """How many of ``labels`` (B,) are among the ``k`` highest ``logits`` (B, classes)."""
    k = min(k, logits.size(-1))
    return int((logits.topk(k, dim=-1).indices == labels.view(-1, 1)).any(-1).sum())


def average_precisions(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision of each class (C,) from scores and multi-hot targets (B, C), as
    scikit-learn's ``average_precision_score`` computes it; NaN for a class with no positive."""
    from sklearn.metrics import average_precision_score

    return np.array([average_precision_score(targets[:, c], scores[:, c]) if targets[:, c].any() else np.nan
                     for c in range(targets.shape[1])])


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro average precision (B, C) -> scalar, over the classes with at least one positive."""
    ap = average_precisions(scores, targets)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def matthews_correlation(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Matthews correlation coefficient (CoLA's GLUE metric), multi-class form."""
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(list(labels), list(predictions)))
