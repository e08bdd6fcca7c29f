"""What the demos share: their tables average scores over fine-tuning seeds."""

import pytest

from d2v_fairseq.demo import mean_scores


def test_mean_scores_average_each_score_and_keep_the_test_size():
    runs = [{"accuracy": 50.4, "mcc": 0.45, "n": 1000}, {"accuracy": 54.4, "mcc": 0.49, "n": 1000},
            {"accuracy": 53.0, "mcc": 0.47, "n": 1000}]
    mean = mean_scores(runs)
    assert mean["accuracy"] == pytest.approx(52.6) and mean["mcc"] == pytest.approx(0.47)
    assert mean["n"] == 1000 and isinstance(mean["n"], int)


def test_mean_scores_leave_out_what_is_not_a_number():
    # the tagger's evaluation also returns per-class AP (a dict): only mAP is averaged
    runs = [{"mAP": 40.0, "per_class": {"bell": 50.0}, "n": 400}, {"mAP": 35.0, "per_class": {"bell": 10.0}, "n": 400}]
    assert mean_scores(runs) == {"mAP": 37.5, "n": 400}
