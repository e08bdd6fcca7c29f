"""Config fields that every data2vec modality shares: EMA teacher, targets, loss.

Field names follow fairseq's released data2vec checkpoints (``instance_norm_target_layer``,
``average_top_k_layers``, ``ema_decay`` ...), so their configs load without translation.
"""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II

from ..modules.transformer import TARGET_FEATURES

TARGET_FEATURE_CHOICES = ChoiceEnum(list(TARGET_FEATURES))


@dataclass
class Data2VecSharedConfig(FairseqDataclass):
    """Targets, loss and EMA-teacher fields, declared once for every modality."""
    # targets
    average_top_k_layers: int = field(
        default=8, metadata={"help": "K: average the outputs of the teacher's top K blocks"}
    )
    target_feature: TARGET_FEATURE_CHOICES = field(  # type: ignore[valid-type]
        default="ffn",
        metadata={
            "help": "which output of each teacher block is a target: ffn (feed-forward output "
            "before the last residual, the paper's choice), ffn-residual (after that residual, "
            "before the block's last LayerNorm), attn (self-attention output), block (the "
            "block's output)"
        },
    )
    teacher_attention_window: float = field(
        default=0,
        metadata={"help": "ablation: the teacher's self-attention sees only +-N steps (N >= 1; patches "
                  "on the grid for images) or +-that fraction of the input (0 < N < 1); 0: the whole input"},
    )
    instance_norm_target_layer: bool = field(
        default=False, metadata={"help": "instance-normalize each target block output (speech)"}
    )
    layer_norm_target_layer: bool = field(
        default=False, metadata={"help": "layer-normalize each target block output (text, vision)"}
    )
    batch_norm_target_layer: bool = field(
        default=False, metadata={"help": "batch-normalize each target block output"}
    )
    group_norm_target_layer: bool = field(
        default=False,
        metadata={"help": "normalize each target block output per sample over time and channels"},
    )
    instance_norm_targets: bool = field(
        default=False, metadata={"help": "instance-normalize the averaged target"}
    )
    layer_norm_targets: bool = field(
        default=False, metadata={"help": "layer-normalize the averaged target"}
    )
    # loss
    loss_beta: float = field(
        default=0.0, metadata={"help": "Smooth L1 beta; 0 gives the squared error (L2)"}
    )
    loss_scale: Optional[float] = field(
        default=None, metadata={"help": "scale of the loss; None: 1/sqrt(embedding dim)"}
    )
    # EMA teacher
    ema_decay: float = field(default=0.999, metadata={"help": "tau0: initial EMA decay"})
    ema_end_decay: float = field(default=0.9999, metadata={"help": "tau_e: final EMA decay"})
    ema_anneal_end_step: int = field(
        default=30000, metadata={"help": "tau_n: updates over which tau rises from tau0 to tau_e"}
    )
    ema_transformer_only: bool = field(
        default=True,
        metadata={"help": "the teacher copies only the Transformer (only True is supported)"},
    )
    ema_layers_only: bool = field(
        default=True,
        metadata={
            "help": "the positional encoder is shared with the student, not EMA'd "
            "(only True is supported)"
        },
    )
    # masks are drawn from (seed, update, sample ids) so that runs repeat and resume exactly
    seed: int = II("common.seed")


def shared_default(name: str, default):
    """A field of ``Data2VecSharedConfig`` with a modality's own default; its help text stays the
    one declared above (``average_top_k_layers: int = shared_default("average_top_k_layers", 10)``)."""
    declared = Data2VecSharedConfig.__dataclass_fields__[name]
    return field(default=default, metadata=dict(declared.metadata))
