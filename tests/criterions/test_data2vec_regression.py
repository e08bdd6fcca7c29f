import pytest
import torch

from d2v_fairseq.criterions.data2vec_regression import (
    Data2VecRegressionConfig,
    Data2VecRegressionCriterion,
    RepresentationCollapse,
)
from d2v_fairseq.modules.regression import regression_loss


def _sample(source, padding):
    return {"id": torch.tensor([0, 1]), "net_input": {"source": source, "padding_mask": padding}}


def test_loss_is_summed_over_masked_steps_and_logs_statistics(tiny_model, waveforms):
    crit = Data2VecRegressionCriterion(Data2VecRegressionConfig(), task=None)
    tiny_model.set_num_updates(0)
    torch.manual_seed(1)
    loss, sample_size, log = crit(tiny_model, _sample(*waveforms))
    torch.manual_seed(1)  # same dropout; same masks from the same (seed, update, ids)
    out = tiny_model(*waveforms, sample_ids=[0, 1])
    assert sample_size == out["pred"].size(0) == int(out["mask_indices"].sum())
    assert loss.item() == pytest.approx(regression_loss(out["pred"], out["target"], 0.0).sum().item(), rel=1e-5)
    assert log["ema_decay"] == pytest.approx(0.999) and log["target_var"] > 0 and log["pred_var"] > 0
    assert log["ntokens"] == 4000 + 3000  # unpadded audio samples: fairseq's wps is samples/s


def test_collapse_stops_training_after_warmup_with_a_clear_error():
    crit = Data2VecRegressionCriterion(Data2VecRegressionConfig(var_check_after_updates=100), task=None)
    crit.check_collapse(50, target_var=0.0, pred_var=0.0)  # still warming up
    with pytest.raises(RepresentationCollapse, match="target_var=0.05 fell below criterion.min_target_var=0.1"):
        crit.check_collapse(100, target_var=0.05, pred_var=1.0)
    with pytest.raises(RepresentationCollapse, match="pred_var=0.001 fell below criterion.min_pred_var=0.01"):
        crit.check_collapse(100, target_var=1.0, pred_var=0.001)


def test_fairseq_model_criterion_gives_the_same_loss_and_logs_the_recipe_keys(tiny_model, waveforms):
    """fairseq's recipes say ``criterion: model``: it reads the model's ``losses`` and
    ``sample_size`` and logs the recipe's ``log_keys``; the loss equals ours on the same batch."""
    from fairseq.criterions.model_criterion import ModelCriterion

    ours = Data2VecRegressionCriterion(Data2VecRegressionConfig(), task=None)
    theirs = ModelCriterion(task=None, loss_weights={}, log_keys=["ema_decay", "target_var", "pred_var"])
    tiny_model.set_num_updates(3)
    sample = _sample(*waveforms)  # ids 0, 1: the positions ModelCriterion's masks stand in for
    torch.manual_seed(1)
    loss, size, log = ours(tiny_model, sample)
    torch.manual_seed(1)
    their_loss, their_size, their_log = theirs(tiny_model, sample)
    assert their_size == size > 0
    assert their_loss.item() == pytest.approx(loss.item(), rel=1e-6)
    for key in ("ema_decay", "target_var", "pred_var"):
        assert their_log[key] == pytest.approx(log[key], rel=1e-6)
    assert log["ema_decay"] == pytest.approx(0.999 + (0.9999 - 0.999) * 3 / 100)
