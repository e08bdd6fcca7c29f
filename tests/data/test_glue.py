"""GLUE TSVs -> sentence_prediction input; bad lines named by file and line."""

import os

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from d2v_fairseq.data.glue import TASKS, read_glue_tsv
from d2v_fairseq.data.text import TextInputError

from ..conftest import rte_lines, write_rte

def test_wrong_column_count_is_named(tmp_path):
    write_rte(tmp_path, {"train": rte_lines(3) + ["9\tonly two columns"]})
    with pytest.raises(TextInputError, match=r"RTE/train.tsv:5: 2 tab-separated columns, expected 4"):
        read_glue_tsv(str(tmp_path / "RTE" / "train.tsv"), TASKS["RTE"])


def test_unknown_label_is_named(tmp_path):
    write_rte(tmp_path, {"train": rte_lines(2) + ["7\ta\tb\tcontradiction"]})
    with pytest.raises(TextInputError, match=r"RTE/train.tsv:4: unknown label 'contradiction'"):
        read_glue_tsv(str(tmp_path / "RTE" / "train.tsv"), TASKS["RTE"])


def test_sts_b_scores_become_regression_targets(tmp_path):
    os.makedirs(tmp_path / "STS-B")
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    row = "0\tmain\tf\t2012\t1\tnone\tnone\ta man plays\tsomeone plays\t{}"
    (tmp_path / "STS-B" / "train.tsv").write_text("\n".join([header, row.format("4.0"), row.format("x")]) + "\n")
    with pytest.raises(TextInputError, match=r"STS-B/train.tsv:3: score 'x' is not a number"):
        read_glue_tsv(str(tmp_path / "STS-B" / "train.tsv"), TASKS["STS-B"])
    (tmp_path / "STS-B" / "train.tsv").write_text("\n".join([header, row.format("4.0")]) + "\n")
    assert read_glue_tsv(str(tmp_path / "STS-B" / "train.tsv"), TASKS["STS-B"]) == [("a man plays", "someone plays", "0.8")]


def test_rte_is_binarized_with_the_pretraining_dictionary(rte_bin, text_corpus):
    for column in ("input0", "input1", "label"):
        assert {"train.bin", "valid.bin", "dict.txt"} <= set(os.listdir(os.path.join(rte_bin, column)))
    assert open(os.path.join(rte_bin, "input0", "dict.txt")).read() == open(os.path.join(text_corpus, "dict.txt")).read()
    labels = {line.split()[0] for line in open(os.path.join(rte_bin, "label", "dict.txt"))} - {"madeupword0000", "madeupword0001"}
    assert labels == {"entailment", "not_entailment"}


@pytest.mark.parametrize("config,expected", [
    ("cola", lambda p, t: {"mcc": 100 * matthews_corrcoef(t, p)}),
    ("mrpc", lambda p, t: {"f1": 100 * f1_score(t, p), "acc_and_f1": 100 * (np.mean(p == t) + f1_score(t, p)) / 2}),
    ("qqp", lambda p, t: {"f1": 100 * f1_score(t, p)}),
    ("sts_b", lambda p, t: {"pearson": 100 * pearsonr(p, t)[0], "spearman": 100 * spearmanr(p, t)[0]}),
])
def test_glue_configs_log_the_glue_metric_as_sklearn_and_scipy_compute_it(config, expected):
    """Each GLUE config turns on its metric in fairseq's sentence_prediction criterion; on fixed
    predictions the validation log equals scikit-learn / scipy (to fairseq's 0.1 rounding)."""
    from fairseq.criterions.sentence_prediction import SentencePredictionCriterion
    from fairseq.logging import metrics
    from omegaconf import OmegaConf

    from ..conftest import REPO

    cfg = OmegaConf.load(os.path.join(REPO, "examples", "text", "finetuning", f"{config}.yaml"))
    regression = bool(cfg.criterion.get("regression_target", False))
    rng = np.random.default_rng(0)
    targ = rng.random(40) if regression else rng.integers(0, 2, 40)
    pred = targ + rng.normal(0, 0.3, 40) if regression else np.where(rng.random(40) < 0.7, targ, 1 - targ)
    log = {"loss": 1.0, "ntokens": 40, "nsentences": 40, "sample_size": 40, "pred": pred.tolist(),
           "targ": targ.tolist()}
    log.update({k: True for k in ("report_mcc", "report_acc_and_f1", "report_pearson_and_spearman")
                if cfg.criterion.get(k, False)})
    with metrics.aggregate(new_root=True) as agg:
        SentencePredictionCriterion.reduce_metrics([log])
        logged = agg.get_smoothed_values()
    for name, value in expected(pred, targ).items():
        assert logged[name] == pytest.approx(value, abs=0.051), name
    assert cfg.checkpoint.best_checkpoint_metric in logged or cfg.checkpoint.best_checkpoint_metric == "accuracy"
