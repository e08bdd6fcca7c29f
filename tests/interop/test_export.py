"""Export to transformers: the exported directory loads with transformers' own classes through
from_pretrained and gives our features (and, for CTC, our transcripts)."""

import os
import sys

import pytest
import torch

from d2v_fairseq.hub import load_checkpoint
from d2v_fairseq.interop import NotExportable, audio_config, export

from ..conftest import REPO, run_cli, tiny_audio_cfg

pytestmark = pytest.mark.slow  # end to end: training runs

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
    ours, cfg, _ = load_checkpoint(str(pretrained_checkpoint))
    ours.eval()
    source, padding = waveforms  # the second utterance is padded
    with torch.no_grad():
        expected = ours.extract_features(source, padding)["x"]
    frames = ours.output_lengths((~padding).sum(-1))
    for b, n in enumerate(frames.tolist()):
        alone = source[b: b + 1, : int((~padding[b]).sum())]
        with torch.no_grad():
            got = hf(alone).last_hidden_state[0]
        # ours in a padded batch equals transformers on the utterance alone: batch-invariant
        assert torch.allclose(got[:n], expected[b, :n], atol=1e-4), (got[:n] - expected[b, :n]).abs().max()
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


def _v2_checkpoint(corpus, save_dir, *extra):
    run_cli([os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train"), "--config-dir",
             f"{REPO}/examples/audio/pretraining", "--config-name", "v2_tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq",
             f"task.data={corpus}", f"checkpoint.save_dir={save_dir}", "optimization.max_update=3",
             "dataset.disable_validation=true", "model.encoder_layers=2", "model.average_top_k_layers=2",
             "model.clone_batch=2", *extra], cwd=save_dir.parent)
    return save_dir / "checkpoint_last.pt"


def test_data2vec2_exports_without_alibi_and_is_refused_with_it(demo_corpus, tmp_path, waveforms):
    with pytest.raises(NotExportable, match="ALiBi"):
        export(str(_v2_checkpoint(demo_corpus, tmp_path / "alibi")), str(tmp_path / "refused"))
    checkpoint = _v2_checkpoint(demo_corpus, tmp_path / "plain", "model.use_alibi=false")
    written, out_dir = export(str(checkpoint), str(tmp_path / "hf"))
    assert written == "Data2VecAudioModel"
    hf = transformers.Data2VecAudioModel.from_pretrained(out_dir).eval()
    ours, _, _ = load_checkpoint(str(checkpoint))
    ours.eval()
    source, padding = waveforms
    with torch.no_grad():
        expected = ours.extract_features(source, padding)["x"]
        for b, n in enumerate(ours.output_lengths((~padding).sum(-1)).tolist()):
            # transformers on each utterance alone: ours is batch-invariant, transformers' padded batch is not
            got = hf(source[b: b + 1, : int((~padding[b]).sum())]).last_hidden_state[0]
            assert torch.allclose(got[:n], expected[b, :n], atol=1e-4), (got[:n] - expected[b, :n]).abs().max()


def test_hub_hidden_states_equal_transformers_layer_by_layer(pretrained_checkpoint, tmp_path, waveforms):
    from d2v_fairseq.hub import load

    _, out_dir = export(str(pretrained_checkpoint), str(tmp_path / "hf"))
    hf = transformers.Data2VecAudioModel.from_pretrained(out_dir).eval()
    reps = load(str(pretrained_checkpoint))
    assert reps.modality == "speech" and reps.downsample_rate == 5 * 2 * 2  # the tiny conv stack's strides
    source, padding = waveforms
    ours, frame_padding = reps.hidden_states(source, padding)
    assert len(ours) == reps.num_layers == hf.config.num_hidden_layers + 1
    lengths = reps.output_lengths((~padding).sum(-1).tolist())
    for b, n in enumerate(lengths):
        with torch.no_grad():
            theirs = hf(source[b: b + 1, : int((~padding[b]).sum())], output_hidden_states=True).hidden_states
        for layer, (mine, their) in enumerate(zip(ours, theirs)):
            assert torch.allclose(mine[b, :n], their[0, :n], atol=1e-4), (layer, (mine[b, :n] - their[0, :n]).abs().max())
    assert frame_padding[1, lengths[1]:].all() and not frame_padding[1, : lengths[1]].any()
