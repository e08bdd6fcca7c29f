"""A checkpoint this package writes, exported with ``d2v export --format fairseq``, loads in
fairseq's own examples/data2vec speech model through fairseq's checkpoint loader (strict, its
audio_pretraining task) and gives the same features there as here; what the reference cannot
represent is refused."""

import os
import sys

import pytest
import torch

from d2v_fairseq.hub import load_checkpoint
from d2v_fairseq.interop import NotExportable
from d2v_fairseq.interop.fairseq import check_representable, reference_config_fields

from ..conftest import REPO, VENV_BIN, run_cli

pytestmark = pytest.mark.slow  # trains a tiny model

READER = os.path.join(REPO, "tests", "helpers", "reference_reads.py")


@pytest.fixture(scope="module")
def our_checkpoint(demo_corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("ours") / "ckpt"
    run_cli([os.path.join(VENV_BIN, "d2v"), "train", "--config-dir", f"{REPO}/d2v_fairseq/configs/audio/pretraining",
             "--config-name", "tiny_cpu", f"task.data={demo_corpus}", f"checkpoint.save_dir={save_dir}",
             "optimization.max_update=3", "dataset.disable_validation=true", "lr_scheduler.phase_ratio=null",
             "+lr_scheduler.warmup_steps=1", "+lr_scheduler.hold_steps=1", "+lr_scheduler.decay_steps=1",
             "model.encoder_layers=2", "model.average_top_k_layers=2"], cwd=save_dir.parent)
    return save_dir / "checkpoint_last.pt"


def test_exported_checkpoint_loads_strictly_in_the_reference_with_equal_features(our_checkpoint, tmp_path):
    out = tmp_path / "for_fairseq.pt"
    proc = run_cli([os.path.join(VENV_BIN, "d2v"), "export", "--format", "fairseq", str(our_checkpoint), str(out)])
    assert "examples/data2vec" in proc.stdout
    source = torch.randn(2, 6000, generator=torch.Generator().manual_seed(0))
    torch.save({"source": source, "padding_mask": torch.zeros(2, 6000, dtype=torch.bool)}, tmp_path / "io.pt")
    proc = run_cli([sys.executable, READER, str(out), str(tmp_path / "io.pt"), str(tmp_path / "theirs.pt")])
    assert "fairseq.examples.data2vec.models.data2vec_audio Data2VecAudioModel AudioPretrainingTask" in proc.stdout
    theirs = torch.load(tmp_path / "theirs.pt")
    assert theirs["ema"]  # the teacher came along, under the reference's own key
    ours, _, _ = load_checkpoint(str(our_checkpoint))
    with torch.no_grad():
        mine = ours.eval().extract_features(source, None)["x"]
    assert torch.allclose(mine, theirs["features"], atol=1e-4), (mine - theirs["features"]).abs().max()
    # no key the reference does not know: neither in ours nor in the export
    assert "_ema_updates" not in torch.load(our_checkpoint, weights_only=False)["model"]
    assert "_ema_updates" not in torch.load(out, weights_only=False)["model"]


@pytest.mark.parametrize("change,reason", [
    ({"target_feature": "block"}, "feed-forward outputs"),
    ({"teacher_attention_window": 3}, "whole sequence"),
    ({"_name": "data2vec2_audio"}, "2.0's layout"),
])
def test_what_the_reference_cannot_represent_is_refused(change, reason):
    with pytest.raises(NotExportable, match=reason):
        check_representable({"_name": "data2vec_audio", "target_feature": "ffn", **change})


def test_reference_fields_are_read_from_its_source():
    declared = reference_config_fields()
    assert {"loss_beta", "average_top_k_layers", "ema_decay", "instance_norm_target_layer", "encoder_layers"} <= declared
    assert not {"target_feature", "teacher_attention_window", "seed", "batch_invariant_inference"} & declared
