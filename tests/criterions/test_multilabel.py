"""mAP: scikit-learn's macro average precision over the whole evaluation pass."""

import numpy as np
from fairseq import metrics
from sklearn.metrics import average_precision_score

from d2v_fairseq.criterions.multilabel import MultiLabelCriterion
from d2v_fairseq.modules.metrics import mean_average_precision


def test_map_equals_scikit_learn_on_fixed_predictions():
    rng = np.random.default_rng(0)
    targets = (rng.random((40, 6)) < 0.3).astype(np.float32)
    targets[:, 5] = 0  # a class without positives does not count
    scores = rng.random((40, 6)).astype(np.float32) + 0.5 * targets
    per_class = [average_precision_score(targets[:, c], scores[:, c]) for c in range(5)]
    assert abs(mean_average_precision(scores, targets) - np.mean(per_class)) < 1e-9
    # logged in percent from batches gathered over a validation pass, not averaged per batch
    with metrics.aggregate(new_root=True) as agg:
        for rows in (slice(0, 15), slice(15, 40)):
            MultiLabelCriterion.reduce_metrics([{"loss": 1.0, "sample_size": 1, "_predictions": scores[rows],
                                                 "_targets": targets[rows]}])
        assert abs(agg.get_smoothed_values()["mAP"] - 100 * np.mean(per_class)) < 1e-2
