"""A checkpoint written by the data2vec_audio model that ships inside fairseq (the released
format) loads into ours and gives the same features, targets and loss."""

import os
import subprocess
import sys

import pytest
import torch

from d2v_fairseq.hub import load_checkpoint
from d2v_fairseq.modules.regression import regression_loss

from ..conftest import REPO, run_cli

HELPER = os.path.join(REPO, "tests", "helpers", "reference_audio_checkpoint.py")


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    run_cli([sys.executable, HELPER, str(out)])
    return out


def test_reference_checkpoint_gives_the_reference_features_and_loss(reference_dir):
    with pytest.warns(UserWarning, match="model config keys not declared by data2vec_audio are ignored: max_update"):
        model, _, _ = load_checkpoint(str(reference_dir / "checkpoint.pt"))
    io = torch.load(reference_dir / "io.pt")
    model.eval()
    assert type(model).__module__ == "d2v_fairseq.models.data2vec_audio"
    assert model.teacher is not None  # the released "_ema" teacher was loaded
    with torch.no_grad():
        feats = model.extract_features(io["source"], io["padding_mask"])["x"]
        # the unpadded utterance matches; the padded one differs where the reference lets padding
        # leak through its 3-layer positional conv
        assert torch.allclose(feats[0], io["features"][0], atol=1e-5)
        assert not torch.allclose(feats[1], io["features"][1], atol=1e-3)
        model.cfg.batch_invariant_inference = False  # the switch that reproduces the reference's batch
        feats = model.extract_features(io["source"], io["padding_mask"])["x"]
        assert torch.allclose(feats, io["features"], atol=1e-5)
        features, padding = model.embed(io["source"], io["padding_mask"])
        mask = io["mask_indices"]
        x = model.encode_student(torch.where(mask.unsqueeze(-1), model.mask_emb, features), padding)
        target = model.make_targets(features, padding)
        loss = regression_loss(model.final_proj(x[mask]), target[mask], model.cfg.loss_beta).sum()
    assert loss.item() == pytest.approx(io["loss"].item(), rel=1e-5)


def test_undeclared_legacy_keys_load_with_a_warning(reference_dir, tmp_path):
    state = torch.load(reference_dir / "checkpoint.pt", weights_only=False)
    state["cfg"]["model"]["legacy_quantizer_depth"] = 2
    state["cfg"]["model"]["debug_dump_targets"] = True
    path = tmp_path / "legacy.pt"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="debug_dump_targets, legacy_quantizer_depth"):
        model, _, _ = load_checkpoint(str(path))
    assert model.cfg.encoder_layers == 3


def test_checkpoint_loads_from_another_working_directory(reference_dir, tmp_path):
    code = (
        "from d2v_fairseq.hub import load_checkpoint; "
        f"m, _, _ = load_checkpoint({str(reference_dir / 'checkpoint.pt')!r}); print(type(m).__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("Data2VecAudioModel")
