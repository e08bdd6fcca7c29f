import pytest
import torch
from torch import nn

from d2v_fairseq.modules.ema import EMATeacher, ema_decay_at


def test_tau_schedule_rises_linearly_then_stays():
    assert ema_decay_at(0, 0.999, 0.9999, 30000) == pytest.approx(0.999)
    assert ema_decay_at(15000, 0.999, 0.9999, 30000) == pytest.approx(0.99945)
    assert ema_decay_at(3000, 0.999, 0.9999, 30000) == pytest.approx(0.99909)
    assert ema_decay_at(30000, 0.999, 0.9999, 30000) == pytest.approx(0.9999)
    assert ema_decay_at(400000, 0.999, 0.9999, 30000) == pytest.approx(0.9999)
    assert ema_decay_at(10, 0.9998, 0.9998, 0) == 0.9998


def test_step_is_an_exponential_moving_average_in_fp32():
    torch.manual_seed(0)
    student = nn.Linear(4, 3)
    teacher = EMATeacher(student)
    before = teacher.model.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    teacher.step(student, 0.9)
    expected = 0.9 * before + 0.1 * student.weight
    assert torch.allclose(teacher.model.weight, expected, atol=1e-6)
    assert teacher.model.weight.dtype == torch.float32
    assert not teacher.model.weight.requires_grad
    assert not teacher.model.training
    assert teacher.decay == 0.9


def test_teacher_stays_fp32_when_student_is_half():
    student = nn.Linear(4, 3).half()
    teacher = EMATeacher(student)
    teacher.step(student, 0.5)
    assert teacher.model.weight.dtype == torch.float32


def test_load_state_dict_reports_shared_keys_and_rejects_missing():
    teacher = EMATeacher(nn.Linear(2, 2))
    state = teacher.state_dict()
    assert teacher.load_state_dict({**state, "pos_conv.0.weight": torch.zeros(1)}) == ["pos_conv.0.weight"]
    with pytest.raises(KeyError, match="bias"):
        teacher.load_state_dict({"weight": state["weight"]})
