"""``d2v_image_classification``: cross-entropy against soft targets (mixup/cutmix, label
smoothing), with top-1 and top-5 accuracy against the true labels."""

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..modules.metrics import top_k_correct


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy (B,) of ``logits`` (B, classes) against target distributions (B, classes)."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(-1)


@register_criterion("d2v_image_classification", dataclass=FairseqDataclass)  # no options
class ImageClassificationCriterion(FairseqCriterion):
    """Soft-target cross-entropy summed over the batch; sample_size is the batch size."""

    def forward(self, model, sample, reduce=True):
        logits = model(**sample["net_input"])
        loss = soft_cross_entropy(logits, sample["target"].to(logits.device)).sum()
        labels = sample["label"].to(logits.device)
        n = labels.numel()
        logging_output = {"loss": loss.detach(), "sample_size": n, "nsentences": n, "ntokens": n,
                          "top1": top_k_correct(logits, labels, 1), "top5": top_k_correct(logits, labels, 5)}
        return loss, n, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        """Logs loss per image and top-1/top-5 accuracy in percent."""
        n = sum(log.get("sample_size", 0) for log in logging_outputs)
        loss = sum(float(log.get("loss", 0)) for log in logging_outputs)
        metrics.log_scalar("loss", loss / max(n, 1), n, round=4)
        for key in ("top1", "top5"):
            correct = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, 100.0 * correct / max(n, 1), n, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
