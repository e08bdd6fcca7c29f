"""``d2v_multilabel``: binary cross-entropy per class for audio tagging, with mean average
precision (mAP) over the whole validation set."""

from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging.meters import Meter

from ..modules.metrics import mean_average_precision


def binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-clip BCE (B,) summed over classes, from logits and (mixed) multi-hot targets (B, C)."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none").sum(-1)


class ConcatMeter(Meter):
    """Keeps every batch's rows (predictions or targets) of an evaluation pass."""

    def __init__(self):
        self.parts: List[np.ndarray] = []

    def update(self, rows: np.ndarray) -> None:
        self.parts.append(np.asarray(rows, dtype=np.float32))

    def reset(self) -> None:
        self.parts = []

    @property
    def value(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros((0, 0), dtype=np.float32)

    @property
    def smoothed_value(self) -> float:
        return float(len(self.value))

    def state_dict(self):
        # one evaluation pass's rows: not worth a checkpoint (and numpy arrays there would
        # stop torch's weights-only loading)
        return {}

    def load_state_dict(self, state_dict):
        self.parts = []


@register_criterion("d2v_multilabel", dataclass=FairseqDataclass)  # no options
class MultiLabelCriterion(FairseqCriterion):
    """BCE summed over classes and clips (sample_size: clips); in evaluation, the clips'
    probabilities and targets are gathered for mAP (logged in percent)."""

    def forward(self, model, sample, reduce=True):
        out = model(**sample["net_input"], target=sample["target"], sample_ids=sample.get("id"))
        target = out["target"] if out["target"] is not None else sample["target"]
        loss = binary_cross_entropy(out["logits"], target.to(out["logits"].device)).sum()
        n = target.size(0)
        logging_output = {"loss": loss.detach(), "sample_size": n, "nsentences": n, "ntokens": n}
        if not model.training:
            logging_output["_predictions"] = out["logits"].detach().float().sigmoid().cpu().numpy()
            logging_output["_targets"] = sample["target"].cpu().numpy()
        return loss, n, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        n = sum(log.get("sample_size", 0) for log in logging_outputs)
        loss = sum(float(log.get("loss", 0)) for log in logging_outputs)
        metrics.log_scalar("loss", loss / max(n, 1), n, round=4)
        for log in logging_outputs:
            if "_predictions" in log:
                metrics.log_custom(ConcatMeter, "_predictions", log["_predictions"])
                metrics.log_custom(ConcatMeter, "_targets", log["_targets"])
        if any("_predictions" in log for log in logging_outputs):
            metrics.log_derived("mAP", lambda meters: round(100.0 * mean_average_precision(
                meters["_predictions"].value, meters["_targets"].value), 3))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return False
