"""The text demo's table: means over fine-tuning seeds."""

import pytest

from d2v_fairseq.demo_text import mean_scores


def test_mean_scores_average_each_score_and_keep_the_test_size():
    runs = [{"accuracy": 50.4, "mcc": 0.45, "n": 1000}, {"accuracy": 54.4, "mcc": 0.49, "n": 1000},
            {"accuracy": 53.0, "mcc": 0.47, "n": 1000}]
    mean = mean_scores(runs)
    assert mean["accuracy"] == pytest.approx(52.6) and mean["mcc"] == pytest.approx(0.47)
    assert mean["n"] == 1000 and isinstance(mean["n"], int)
