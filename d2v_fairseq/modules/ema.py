"""The EMA teacher: an fp32 copy of part of the student, updated by exponential moving average.

data2vec (Baevski et al., 2022, sec. 3.3): tau rises linearly from tau0 to tau_e over the
first tau_n updates, then stays at tau_e.
"""

import copy
import logging
from typing import Dict, List, Optional

import torch
from torch import nn

logger = logging.getLogger(__name__)


def ema_decay_at(num_updates: int, start: float, end: float, anneal_updates: int) -> float:
    """The EMA decay tau after ``num_updates`` updates: linear from ``start`` to ``end``
    over ``anneal_updates`` updates, then constant at ``end``."""
    if start == end or anneal_updates <= 0 or num_updates >= anneal_updates:
        return end
    return start + (end - start) * num_updates / anneal_updates


class EMATeacher:
    """An fp32 EMA copy of ``student`` that never receives gradients and always runs in eval mode.

    It is deliberately not an ``nn.Module`` attribute of the model: fairseq's ``model.half()``
    must not cast it, and the optimizer must not see it. Its weights are saved by the owning
    model under the state-dict key ``_ema`` (the layout of fairseq's released data2vec
    checkpoints: keys relative to the copied module).
    """

    def __init__(self, student: nn.Module):
        self.model = copy.deepcopy(student).float()
        self.model.requires_grad_(False)
        self.model.eval()
        self.decay = 0.0

    @property
    def device(self) -> torch.device:
        """Where the teacher's weights are."""
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> "EMATeacher":
        """Moves the teacher to ``device`` (kept fp32)."""
        if self.device != device:
            self.model.to(device)
        return self

    @torch.no_grad()
    def step(self, student: nn.Module, decay: float) -> None:
        """teacher <- decay * teacher + (1 - decay) * student, for parameters; buffers are copied."""
        self.decay = decay
        if decay >= 1.0:  # a frozen teacher
            return
        student_params = dict(student.named_parameters())
        teacher_params: List[torch.Tensor] = []
        sources: List[torch.Tensor] = []
        for name, param in self.model.named_parameters():
            teacher_params.append(param)
            sources.append(student_params[name].detach().to(param.device, torch.float32))
        # one fused pass over all tensors instead of a Python loop over the state dict
        torch._foreach_mul_(teacher_params, decay)
        torch._foreach_add_(teacher_params, sources, alpha=1.0 - decay)
        student_buffers = dict(student.named_buffers())
        for name, buf in self.model.named_buffers():
            buf.copy_(student_buffers[name])

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """A copy of the teacher's weights, keyed like the copied module (the ``_ema`` layout)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> List[str]:
        """Loads teacher weights; keys this teacher does not hold (e.g. the positional conv,
        which is shared with the student) are returned, not loaded. Missing keys raise."""
        own = self.model.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise KeyError(f"EMA teacher state lacks keys: {missing[:5]}{'...' if len(missing) > 5 else ''}")
        ignored = [k for k in state if k not in own]
        self.model.load_state_dict({k: state[k] for k in own}, strict=True)
        self.model.float()
        return ignored


EMA_KEY = "_ema"  # the teacher's weights in a model's state dict (fairseq's released layout)
# an update counter older checkpoints of this package saved beside the teacher; read, never written
# (fairseq's own loaders reject the unknown key)
LEGACY_UPDATES_KEY = "_ema_updates"


class TeacherOwner:
    """The teacher contract every data2vec model family shares (a mixin for the model).

    The model provides ``teacher_scope()`` (the part of the student the teacher copies),
    ``num_updates`` and a config with ``ema_decay``, ``ema_end_decay`` and
    ``ema_anneal_end_step``. This class owns the rest:

    * ``teacher``: the :class:`EMATeacher`, or None (not built yet, or dropped for fine-tuning);
    * ``teacher_updates``: the update count whose student the teacher has absorbed last. fairseq
      calls ``set_num_updates(n)`` at the start of update n (and again on resume, before the
      weights load), so the teacher steps once per new count; a checkpoint saved after update N
      holds a teacher that has absorbed the student of update N - 1, and loading it says so;
    * the decay schedule (:func:`ema_decay_at`), the ``_ema`` state in checkpoints (one key;
      an older ``_ema_updates`` marker is read when present) and the WARNING for saved teacher
      tensors that the teacher shares with the student instead.
    """

    teacher: Optional[EMATeacher] = None
    teacher_updates: int = 0

    def ema_decay(self, num_updates: Optional[int] = None) -> float:
        """tau at ``num_updates`` (default: the model's current update)."""
        cfg = self.cfg
        n = self.num_updates if num_updates is None else num_updates
        return ema_decay_at(n, cfg.ema_decay, cfg.ema_end_decay, cfg.ema_anneal_end_step)

    def make_teacher(self) -> EMATeacher:
        """A teacher copied from the student as it is now (it has absorbed the current update)."""
        logger.info("making the EMA teacher from the student's current weights")
        self.teacher = EMATeacher(self.teacher_scope())
        self.teacher.decay = self.ema_decay()
        self.teacher_updates = self.num_updates
        return self.teacher

    def step_teacher(self, num_updates: int) -> None:
        """The EMA step for update ``num_updates``, taken once (training only)."""
        decay = self.ema_decay(num_updates)
        if self.training and num_updates > self.teacher_updates:
            scope = self.teacher_scope()
            self.teacher.to(next(scope.parameters()).device)
            self.teacher.step(scope, decay)
            self.teacher_updates = num_updates
        self.teacher.decay = decay

    def teacher_state_into(self, state: Dict, prefix: str = "") -> Dict:
        """Adds the teacher's weights to a model ``state`` under ``PREFIX_ema``."""
        if self.teacher is not None:
            state[prefix + EMA_KEY] = self.teacher.state_dict()
        return state

    def load_teacher(self, saved: Optional[Dict[str, torch.Tensor]], updates=None) -> None:
        """A teacher from the saved ``_ema`` weights (a copy of the loaded student when there are
        none, with a WARNING); ``updates``: an older checkpoint's ``_ema_updates`` marker."""
        self.teacher = EMATeacher(self.teacher_scope())
        self.teacher.decay = self.ema_decay()
        self.teacher_updates = int(updates) if updates is not None else max(self.num_updates - 1, 0)
        if saved is None:
            logger.warning("checkpoint has no EMA teacher (_ema): the teacher starts as a copy of the student")
            return
        ignored = self.teacher.load_state_dict(saved)
        if ignored:
            self._report_shared_teacher_tensors(saved, ignored)

    def _report_shared_teacher_tensors(self, saved: Dict[str, torch.Tensor], ignored: List[str]) -> None:
        """The saved teacher tensors this teacher shares with the student (not loaded): INFO
        when they equal the student's, WARNING with the largest difference when they do not
        (the reference's text teacher keeps its own token table when positions are sinusoidal)."""
        # the student's tensor of the same name (the teacher's keys are relative to the copied part)
        student = {k: v for k, v in nn.Module.state_dict(self).items() if not k.startswith(EMA_KEY)}
        differ = {}
        for key in ignored:
            matches = [k for k in student if k == key or k.endswith("." + key)]
            own = student[matches[0]] if len(matches) == 1 else None
            if own is not None and own.shape == saved[key].shape:
                gap = (own.float() - saved[key].float()).abs().max().item()
                if gap > 0:
                    differ[key] = gap
        if differ:
            worst = max(differ, key=differ.get)
            logger.warning(f"EMA teacher: {len(differ)} saved tensor(s) differ from the student's, which the teacher "
                           f"shares here and uses instead: largest difference {differ[worst]:.3g} in {worst}")
        same = sorted(set(ignored) - set(differ))
        if same:
            logger.info(f"EMA teacher: not loaded (shared with the student): {same[:4]}{'...' if len(same) > 4 else ''}")
