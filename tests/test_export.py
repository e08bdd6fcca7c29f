"""Export to transformers: the exported directory loads with transformers' own classes through
from_pretrained and gives our features (and, for CTC, our transcripts)."""

import os
import sys

import pytest
import torch

from d2v_fairseq.checkpoint import load_pretrained
from d2v_fairseq.export import NotExportable, audio_config, export

from .conftest import REPO, run_cli, tiny_audio_cfg

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pretrained_checkpoint(tmp_path_factory):
    """A tiny data2vec_audio checkpoint (released format, written by fairseq's own model)."""
    out = tmp_path_factory.mktemp("export_pre")
    run_cli([sys.executable, os.path.join(REPO, "tests", "helpers", "reference_audio_checkpoint.py"), str(out)])
    return out / "checkpoint.pt"


def test_pretrained_audio_model_exports_with_equal_features(pretrained_checkpoint, tmp_path, waveforms):
    written, out_dir = export(str(pretrained_checkpoint), str(tmp_path / "hf"))
    assert written == "Data2VecAudioModel"
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= set(os.listdir(out_dir))
    hf = transformers.Data2VecAudioModel.from_pretrained(out_dir).eval()
    ours, cfg, _ = load_pretrained(str(pretrained_checkpoint))
    ours.eval()
    source, padding = waveforms  # the second utterance is padded
    with torch.no_grad():
        expected = ours.extract_features(source, padding)["x"]
        got = hf(source, attention_mask=(~padding).long()).last_hidden_state
    frames = ours.output_lengths((~padding).sum(-1))
    for b, n in enumerate(frames.tolist()):
        assert torch.allclose(got[b, :n], expected[b, :n], atol=1e-4), (got[b, :n] - expected[b, :n]).abs().max()
    # the config carries the model's real values, not transformers' defaults
    c = hf.config
    assert (c.conv_pos_kernel_size, c.num_conv_pos_embeddings, c.layer_norm_eps) == (5, 3, 1e-5)
    assert list(c.conv_kernel) == [10, 3, 3] and c.hidden_size == 32
    extractor = transformers.AutoFeatureExtractor.from_pretrained(out_dir)
    assert extractor.sampling_rate == 16000 and extractor.do_normalize is bool(cfg.task.normalize)


@pytest.mark.parametrize("change,reason", [
    ({"layer_norm_first": True}, "post-LN blocks only"),
    ({"extractor_mode": "default"}, "layer norm in every layer"),
    ({"pos_conv_depth": 1}, "plain convs"),
])
def test_what_transformers_cannot_represent_is_refused(change, reason):
    with pytest.raises(NotExportable, match=reason):
        audio_config(tiny_audio_cfg(**change))
