"""``data2vec_regression``: the data2vec loss over masked steps, with collapse detection."""

from dataclasses import dataclass, field

from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..modules.regression import RepresentationCollapse, check_collapse  # noqa: F401  (raised here)


@dataclass
class Data2VecRegressionConfig(FairseqDataclass):
    """Variance floors that stop a collapsed run, and when they start to apply."""
    min_target_var: float = field(
        default=0.1, metadata={"help": "stop training if target_var falls below this"}
    )
    min_pred_var: float = field(
        default=0.01, metadata={"help": "stop training if pred_var falls below this"}
    )
    var_check_after_updates: int = field(
        default=5000, metadata={"help": "check the variance floors only after this many updates"}
    )


def input_units(sample) -> int:
    """The batch's size in input units: its tokens (text, images: fairseq's ``ntokens``) or,
    for waveforms, the unpadded audio samples, so that fairseq's ``wps`` is audio samples/s."""
    if sample.get("ntokens") is not None:
        return int(sample["ntokens"])
    net_input = sample["net_input"]
    padding = net_input.get("padding_mask")
    source = net_input["source"]
    return int(source.numel() - (padding.sum() if padding is not None else 0))


@register_criterion("data2vec_regression", dataclass=Data2VecRegressionConfig)
class Data2VecRegressionCriterion(FairseqCriterion):
    """Smooth L1 (beta from the model config; 0 = L2) between the student's predictions and the
    teacher's targets at masked steps, scaled by 1/sqrt(dim) unless ``loss_scale`` is set.
    sample_size is the number of masked steps."""

    def __init__(self, cfg: Data2VecRegressionConfig, task):
        super().__init__(task)
        self.cfg = cfg

    def forward(self, model, sample, reduce=True):
        """(loss summed over masked steps, number of masked steps, logging output).

        The loss is the model's own (``losses["regression"]``), the one fairseq's
        ``criterion: model`` reads too; this criterion adds the sample ids (for masks that
        repeat on resume) and the collapse guard."""
        out = model(**sample["net_input"], sample_ids=sample.get("id"))
        loss = out["losses"]["regression"]
        sample_size = out["sample_size"]
        target_var, pred_var = float(out["target_var"]), float(out["pred_var"])
        if model.training:
            self.check_collapse(model.num_updates, target_var, pred_var)
        logging_output = {
            "loss": loss.detach(),
            "sample_size": sample_size,
            "nsentences": sample["id"].numel(),
            # fairseq logs wpb / wps from it: tokens for text, audio samples for speech
            "ntokens": input_units(sample),
            "target_var": target_var,
            "pred_var": pred_var,
            "ema_decay": float(out["ema_decay"]),
            "log_count": 1,  # the per-output statistics above are averaged over log_count
        }
        return loss, sample_size, logging_output

    def check_collapse(self, num_updates: int, target_var: float, pred_var: float) -> None:
        """Raises RepresentationCollapse when a variance is under its floor after the warm-up."""
        cfg = self.cfg
        check_collapse(num_updates, target_var, pred_var, cfg.min_target_var, cfg.min_pred_var,
                       cfg.var_check_after_updates, "criterion")

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        """Logs loss per masked step and the mean target_var, pred_var and ema_decay."""
        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        sample_size = total("sample_size")
        count = max(total("log_count"), 1)
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1), sample_size, round=4)
        metrics.log_scalar("sample_size", sample_size / count, round=1)
        for key in ("target_var", "pred_var"):
            metrics.log_scalar(key, total(key) / count, round=4)
        metrics.log_scalar("ema_decay", total("ema_decay") / count, weight=0, round=6)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        # summable (each statistic is divided by the summed log_count): fairseq then reduces
        # logs with an all-reduce, which works on CPU/gloo, not an all-gather on CUDA buffers
        return True
