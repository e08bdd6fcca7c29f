"""Export to transformers: the exported directory loads with transformers' own classes through
from_pretrained and gives our features (and, for CTC, our transcripts)."""

import os
import sys

import pytest
import torch

from d2v_fairseq.hub import load_checkpoint
from d2v_fairseq.interop import NotExportable, audio_config, export

from ..conftest import REPO, run_cli, tiny_audio_cfg

pytestmark = [
    pytest.mark.slow,  # end to end: training runs
    # the pre-trained checkpoint of these tests is fairseq's reference model's, with config keys our
    # model does not declare; each load says so (asserted in tests/models/test_reference_checkpoint.py)
    pytest.mark.filterwarnings("ignore:.*model config keys not declared by data2vec_audio:UserWarning"),
]

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


def test_data2vec2_audio_data2vec2_exports_without_alibi_and_is_refused_with_it(demo_corpus, tmp_path, waveforms):
    from ..helpers.data2vec2_audio_model import write_data2vec2_audio_checkpoint

    write_data2vec2_audio_checkpoint(str(tmp_path / "alibi.pt"), demo_corpus)
    with pytest.raises(NotExportable, match="ALiBi"):
        export(str(tmp_path / "alibi.pt"), str(tmp_path / "refused"))
    old = write_data2vec2_audio_checkpoint(str(tmp_path / "plain.pt"), demo_corpus, use_alibi=False)
    written, out_dir = export(str(tmp_path / "plain.pt"), str(tmp_path / "hf"))
    assert written == "Data2VecAudioModel"
    hf = transformers.Data2VecAudioModel.from_pretrained(out_dir).eval()
    source, padding = waveforms
    for b in range(source.size(0)):
        utterance = source[b: b + 1, : int((~padding[b]).sum())]  # each alone: no padding in either model
        with torch.no_grad():
            expected = old.extract_features(utterance, None)["x"][0]
            got = hf(utterance).last_hidden_state[0]
        assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_data2vec_multi_is_refused_with_the_reason(tmp_path):
    from ..helpers import reference_v2

    reference_v2.write_reference_checkpoint("AUDIO", str(tmp_path / "multi.pt"))
    with pytest.raises(NotExportable, match="data2vec_multi"):
        export(str(tmp_path / "multi.pt"), str(tmp_path / "out"))


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
        for layer, (mine, their) in enumerate(zip(ours, theirs, strict=False)):
            assert torch.allclose(mine[b, :n], their[0, :n], atol=1e-4), (layer, (mine[b, :n] - their[0, :n]).abs().max())
    assert frame_padding[1, lengths[1]:].all() and not frame_padding[1, : lengths[1]].any()
