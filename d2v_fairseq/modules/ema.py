"""The EMA teacher: an fp32 copy of part of the student, updated by exponential moving average.

data2vec (Baevski et al., 2022, sec. 3.3): tau rises linearly from tau0 to tau_e over the
first tau_n updates, then stays at tau_e.
"""

import copy
from typing import Dict, List

import torch
from torch import nn


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
