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
    for ours, theirs in zip(teacher, io["teacher_ffn"]):
        assert torch.allclose(ours[real], theirs[real], atol=1e-5)
    # the teacher differs from the student (the helper moved it), so this compares the teacher
    student = model.encode_teacher(embedded, padding, model.teacher_scope())
    assert not torch.allclose(student[-1][real], io["teacher_ffn"][-1][real], atol=1e-3)
