"""A checkpoint written by the data2vec_text model that ships inside fairseq (the released
format: RoBERTa layout, teacher under encoder._ema, task masked_lm) loads through fairseq's
checkpoint_utils into ours and gives the reference's student and teacher features."""

import sys

import pytest
import torch

from d2v_fairseq.hub import load_checkpoint

from ..conftest import REPO, run_cli

HELPER = f"{REPO}/tests/helpers/reference_text_checkpoint.py"


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference_text")
    run_cli([sys.executable, HELPER, str(out)])
    return out


def test_released_text_checkpoint_gives_the_reference_features(reference_dir):
    model, cfg, task = load_checkpoint(str(reference_dir / "checkpoint.pt"), arg_overrides={"data": str(reference_dir)})
    io = torch.load(reference_dir / "io.pt")
    assert type(model).__module__ == "d2v_fairseq.models.data2vec_text" and cfg.task._name == "masked_lm"
    assert model.teacher is not None  # the released teacher was loaded
    model.eval()
    with torch.no_grad():
        features, _ = model(io["tokens"], features_only=True)
        real = io["tokens"].ne(task.source_dictionary.pad())
        assert torch.allclose(features[real], io["features"][real], atol=1e-5)
        embedded, padding = model.embed(io["tokens"], None)
        teacher = model.encode_teacher(embedded, padding, model.teacher.model)
    assert len(teacher) == len(io["teacher_ffn"]) == 3
    for ours, theirs in zip(teacher, io["teacher_ffn"], strict=False):
        assert torch.allclose(ours[real], theirs[real], atol=1e-5)
    # the teacher differs from the student (the helper moved it), so this compares the teacher
    student = model.encode_teacher(embedded, padding, model.teacher_scope())
    assert not torch.allclose(student[-1][real], io["teacher_ffn"][-1][real], atol=1e-3)


@pytest.mark.parametrize("head_layers", [1, 3])
def test_released_heads_of_any_depth_load(tmp_path, head_layers):
    """The reference takes any head_layers >= 1 (a Sequential: keys encoder.regression_head.0.* ...)."""
    run_cli([sys.executable, HELPER, str(tmp_path), str(head_layers)])
    model, _, _ = load_checkpoint(str(tmp_path / "checkpoint.pt"), arg_overrides={"data": str(tmp_path)})
    io = torch.load(tmp_path / "io.pt")
    with torch.no_grad():
        assert torch.allclose(model.regression_head()(io["head_in"]), io["head_out"], atol=1e-6)
    linears = [m for m in model.regression_head().modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == head_layers


def test_head_from_before_the_sequential_layout_loads(reference_dir, tmp_path):
    """A one-layer head saved as a bare Linear (encoder.regression_head.weight) still loads."""
    run_cli([sys.executable, HELPER, str(tmp_path), "1"])
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for suffix in ("weight", "bias"):
        state["model"][f"encoder.regression_head.{suffix}"] = state["model"].pop(f"encoder.regression_head.0.{suffix}")
    torch.save(state, tmp_path / "old.pt")
    model, _, _ = load_checkpoint(str(tmp_path / "old.pt"), arg_overrides={"data": str(tmp_path)})
    io = torch.load(tmp_path / "io.pt")
    with torch.no_grad():
        assert torch.allclose(model.regression_head()(io["head_in"]), io["head_out"], atol=1e-6)
