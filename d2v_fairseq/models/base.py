"""The teacher/student core every data2vec modality shares (not registered itself).

A modality subclass provides four stages:

* ``embed(source, padding_mask)``: the front end, giving features (B, T, C) and padding (B, T);
* ``mask(features, padding_mask, sample_ids, **inputs)``: the student's masked view and the
  mask (B, T) (speech masks the features here; text receives the masked tokens its data
  pipeline made in ``inputs``);
* ``encode_student(x, padding_mask)``: the student Transformer, giving (B, T, C);
* ``encode_teacher(features, padding_mask, blocks)``: the teacher's per-block features,
  a list of (B, T, C), computed with the EMA copy ``blocks`` of ``teacher_scope()``.

A pre-training step is ``embed`` -> ``make_targets`` (teacher) -> ``predict_masked`` (``mask``,
``encode_student``, the regression head) -> ``regress`` (loss and statistics).

The core adds the EMA teacher, target building, the regression head (``final_proj``, a
Linear, unless the modality keeps its own: override ``regression_head``) and checkpointing.
"""

import logging
from typing import Dict, List, Optional, Sequence

import torch
from fairseq.models import BaseFairseqModel
from torch import nn

from ..modules.ema import EMA_KEY, LEGACY_UPDATES_KEY, EMATeacher, TeacherOwner
from ..modules.errors import ModelConfigError
from ..modules.regression import checked_loss_scale, feature_std, regression_loss
from ..modules.targets import build_targets, check_top_k, target_norms
from .config import Data2VecSharedConfig

logger = logging.getLogger(__name__)

class Data2VecModel(TeacherOwner, BaseFairseqModel):
    """Student + EMA teacher + regression head; see the module docstring for the stages."""

    # whether ``teacher_scope()`` can include the positional encoder (ema_layers_only=false)
    teacher_can_copy_positions = False

    # how this modality reads loss_scale <= 0 (text: as the reference does, 1/sqrt(dim))
    nonpositive_loss_scale_is_default = False

    def __init__(self, cfg: Data2VecSharedConfig, embed_dim: int, depth: int, depth_key: str,
                 linear_head: bool = True):
        """``depth``: the number of Transformer blocks, set by the config key ``depth_key`` (checked
        against ``average_top_k_layers`` where targets are made: a fine-tuned model keeps the
        pre-training K and may have fewer blocks)."""
        super().__init__()
        self.cfg = cfg
        self.depth, self.depth_key = depth, depth_key
        if not cfg.ema_transformer_only:
            raise ModelConfigError("model config: ema_transformer_only=false is not supported (the teacher "
                             "copies the Transformer; the front end is shared)")
        if not cfg.ema_layers_only and not self.teacher_can_copy_positions:
            raise ModelConfigError(f"model config: ema_layers_only=false is not supported by {type(self).__name__} "
                             "(its teacher copies the Transformer blocks; the positional encoder is shared)")
        self.target_layer_norm, self.target_final_norm = target_norms(cfg)
        self.loss_scale = checked_loss_scale(cfg.loss_scale, self.nonpositive_loss_scale_is_default)
        self.final_proj: Optional[nn.Linear] = nn.Linear(embed_dim, embed_dim) if linear_head else None
        self.num_updates = 0
        self.teacher: Optional[EMATeacher] = None  # built at the first training update (TeacherOwner)

    # --- stages a modality provides -------------------------------------------------------
    def teacher_scope(self) -> nn.Module:
        """The part of the student the teacher copies (an nn.Module)."""
        raise NotImplementedError

    def embed(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        """Front end: source -> features (B, T, C), padding (B, T) or None."""
        raise NotImplementedError

    def mask(self, features, padding_mask, sample_ids=None, **inputs):
        """Student view: features (B, T, C) -> (masked x (B, T, C), mask (B, T))."""
        raise NotImplementedError

    def regression_head(self) -> Optional[nn.Module]:
        """The student's prediction head, (N, C) -> (N, C); None once removed for fine-tuning."""
        return self.final_proj

    def drop_regression_head(self) -> None:
        """Removes the prediction head (fine-tuning needs none)."""
        self.final_proj = None

    def encode_student(self, x, padding_mask, layer: Optional[int] = None):
        """Student Transformer: x (B, T, C) -> (B, T, C)."""
        raise NotImplementedError

    def encode_teacher(self, features, padding_mask, blocks: nn.Module) -> List[torch.Tensor]:
        """Teacher: unmasked features (B, T, C) -> per-block features, each (B, T, C)."""
        raise NotImplementedError

    # --- EMA teacher (TeacherOwner) -------------------------------------------------------
    def set_num_updates(self, num_updates: int) -> None:
        """Called by fairseq before every forward of an update (several times with
        update_freq > 1): the teacher absorbs the student once per new update count."""
        super().set_num_updates(num_updates)
        self.num_updates = num_updates
        if self.regression_head() is None or not self.training:
            return
        if self.teacher is None:
            self.make_teacher()
        self.step_teacher(num_updates)

    # --- the training forward -------------------------------------------------------------
    @torch.no_grad()
    def make_targets(self, features: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Teacher targets (B, T, C) fp32 from the unmasked ``features`` (B, T, C)."""
        check_top_k(self.cfg.average_top_k_layers, self.depth, self.depth_key)  # named by its config key
        teacher = (self.teacher or self.make_teacher()).to(features.device)
        teacher.model.eval()
        layer_outputs = self.encode_teacher(features.detach().float(), padding_mask, teacher.model)
        return build_targets(
            layer_outputs, self.cfg.average_top_k_layers, self.target_layer_norm, self.target_final_norm
        )

    def forward(
        self,
        source: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
        mask: bool = True,
        features_only: bool = False,
        layer: Optional[int] = None,
        sample_ids: Optional[Sequence[int]] = None,
        **inputs,
    ) -> Dict[str, torch.Tensor]:
        """Pre-training step. Returns what both of fairseq's ways of reading a loss expect:

        * ``losses``: {"regression": the loss summed over the N masked steps (a scalar)} and
          ``sample_size`` N (fairseq's ``criterion: model``, as its data2vec recipes use);
        * ``target_var``, ``pred_var``, ``ema_decay``: the statistics the recipes log;
        * ``pred`` and ``target`` (N, C), ``mask_indices`` (B, T): for ``data2vec_regression``
          and tests.

        With ``features_only`` it returns the student's output instead (see ``extract_features``).
        """
        features, padding_mask = self.embed(source, padding_mask)
        if features_only:
            x, mask_indices = self.mask(features, padding_mask, sample_ids, **inputs) if mask else (features, None)
            x = self.encode_student(x, padding_mask, layer=layer)
            return {"x": x, "padding_mask": padding_mask, "layer_results": [], "mask_indices": mask_indices}
        if self.regression_head() is None:
            raise RuntimeError("pre-training modules were removed; call with features_only=True")
        targets = self.make_targets(features, padding_mask)  # (B, T, C), from the unmasked input
        pred, target, mask_indices = self.predict_masked(features, padding_mask, targets, sample_ids, **inputs)
        return self.regress(pred, target, mask_indices)

    def predict_masked(self, features, padding_mask, targets, sample_ids=None, **inputs):
        """The student's stage of a pre-training step: masks ``features`` (B, T, C), encodes the
        masked view, predicts at the masked steps. Returns (predictions (N, C), their targets
        (N, C) taken from ``targets`` (B, T, C), the mask (B, T))."""
        x, mask_indices = self.mask(features, padding_mask, sample_ids, **inputs)
        x = self.encode_student(x, padding_mask)
        return self.regression_head()(x[mask_indices]), targets[mask_indices], mask_indices  # masked steps only

    def regress(self, pred: torch.Tensor, target: torch.Tensor, mask_indices: torch.Tensor) -> Dict:
        """The loss and its statistics for predictions and targets (N, C); see ``forward``."""
        loss = regression_loss(pred, target, self.cfg.loss_beta, self.loss_scale).sum()
        with torch.no_grad():
            target_var, pred_var = feature_std(target), feature_std(pred)
        return {
            "losses": {"regression": loss},
            "sample_size": pred.size(0),
            "target_var": target_var,
            "pred_var": pred_var,
            "ema_decay": self.ema_decay(),
            "pred": pred,
            "target": target,
            "mask_indices": mask_indices,
        }

    def extract_features(self, source, padding_mask=None, mask=False, layer=None, **kwargs):
        """Student features: {"x": (B, T, C), "padding_mask": (B, T) or None, "layer_results": []}."""
        return self.forward(source, padding_mask, mask=mask, features_only=True, layer=layer, **kwargs)

    def remove_pretraining_modules(self, last_layer: Optional[int] = None) -> None:
        """Drops the teacher and the regression head (for fine-tuning); with ``last_layer``,
        also the Transformer blocks after that one."""
        self.drop_regression_head()
        self.teacher = None
        if last_layer is not None:
            self.truncate_blocks(last_layer + 1)

    def truncate_blocks(self, keep: int) -> None:
        """Keeps the first ``keep`` Transformer blocks."""
        raise NotImplementedError

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """The student's state plus the teacher under ``_ema``."""
        state = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        return self.teacher_state_into(state, prefix)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        ema_state = state_dict.pop(prefix + EMA_KEY, None)
        ema_updates = state_dict.pop(prefix + LEGACY_UPDATES_KEY, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if ema_state is None or self.regression_head() is None:
            # no saved teacher (or no pre-training): rebuild it from the loaded student when needed
            self.teacher = None
            return
        self.load_teacher(ema_state, ema_updates)
