"""Released-format data2vec 2.0 checkpoints (written by fairseq's own ``data2vec_multi``, its
trainer's layout), per modality: through ``hub.load``, ``d2v features`` and fairseq's own loader
with ``--user-dir``, giving the reference's features; with the drift the released files carry
(undeclared config keys, foreign data paths, 4-D ALiBi scales, a stray ``encoder_mask``)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from d2v_fairseq.hub import load
from d2v_fairseq.modules.errors import InputError

from .conftest import REPO
from .helpers import reference_v2 as ref

MODALITIES = ("AUDIO", "IMAGE", "TEXT")
FOREIGN = "/checkpoint/authors/data"


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """{modality: (checkpoint path, the reference model that wrote it)} and the data folder
    (the text dictionary)."""
    folder = tmp_path_factory.mktemp("released_v2")
    ref.tiny_dictionary(with_mask=False).save(str(folder / "dict.txt"))
    out = {}
    for modality in MODALITIES:
        path = str(folder / f"{modality.lower()}.pt")
        out[modality] = (path, ref.write_reference_checkpoint(modality, path, data=FOREIGN)["model"])
    return out, str(folder)


def reference_states(model, source, padding):
    """The reference's block outputs (its extract_features keeps only the targets)."""
    with torch.no_grad():
        enc = model.modality_encoders[next(iter(model.modality_encoders))]
        encoded = enc(source, padding, mask=False, remove_masked=False)
        x, states = encoded["x"], [encoded["x"]]
        for block in model.blocks:
            bias = encoded["alibi_bias"]
            x, _ = block(x, padding_mask=encoded["padding_mask"], alibi_bias=bias)
            states.append(x)
    return states, encoded["padding_mask"]


def assert_close_valid(a, b, padding, tol=1e-4):
    if padding is not None:
        a, b = a[~padding.bool()], b[~padding.bool()]
    assert (a - b).abs().max() < tol


@pytest.mark.parametrize("modality", MODALITIES)
def test_hub_load_gives_the_reference_features(released, modality):
    checkpoints, data = released
    path, model = checkpoints[modality]
    reps = load(path, data_dir=data)
    source, padding = ref.tiny_inputs(modality)
    states, pad = reps.hidden_states(source, padding)
    expected, expected_pad = reference_states(model, source, padding)
    assert len(states) == len(expected) == reps.num_layers == 3
    for a, b in zip(expected, states, strict=False):
        assert a.shape == b.shape
        assert_close_valid(a, b, expected_pad)
    with torch.no_grad():
        features = model.extract_features(source, padding_mask=padding, remove_extra_tokens=False)["x"]
    assert_close_valid(features, states[-1], expected_pad)


def test_a_missing_data_folder_is_one_line_naming_the_file(released):
    checkpoints, _ = released
    with pytest.raises(InputError, match=f"{FOREIGN}/dict.txt.*--data DIR"):
        load(checkpoints["TEXT"][0])
    load(checkpoints["IMAGE"][0])  # speech and images read no data at load time


def test_released_drift_is_tolerated_and_undeclared_keys_named(released, tmp_path):
    checkpoints, data = released
    path, model = checkpoints["AUDIO"]
    state = torch.load(path, weights_only=False)
    key = "modality_encoders.AUDIO.alibi_scale"
    state["model"][key] = state["model"][key].squeeze(0)  # the 4-D scale of older files
    state["model"]["_ema"][key] = state["model"]["_ema"][key].squeeze(0)
    state["model"]["modality_encoders.AUDIO.encoder_mask"] = torch.zeros(64)
    state["cfg"]["model"]["a_removed_option"] = 3
    state["cfg"]["task"]["another_removed_option"] = True
    drifted = str(tmp_path / "drifted.pt")
    torch.save(state, drifted)
    with pytest.warns(UserWarning) as caught:
        reps = load(drifted)
    said = " ".join(str(w.message) for w in caught)
    assert "a_removed_option" in said and "another_removed_option" in said
    source, padding = ref.tiny_inputs("AUDIO")
    states, _ = reps.hidden_states(source, padding)
    expected, pad = reference_states(model, source, padding)
    assert_close_valid(expected[-1], states[-1], pad)
    teacher = reps.encoder.teacher.state_dict()
    assert teacher[key].dim() == 5 and torch.equal(teacher[key], model.ema.fp32_params[key])


def test_fairseq_s_own_loader_with_the_user_dir(released, tmp_path):
    checkpoints, data = released
    script = "\n".join([
        "import sys, argparse",
        "from fairseq import checkpoint_utils, utils",
        f"utils.import_user_module(argparse.Namespace(user_dir={os.path.join(REPO, 'd2v_fairseq') + '/'!r}))",
        "for path in sys.argv[1:]:",
        f"    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], {{'data': {data!r}}})",
        "    print(type(models[0]).__name__, type(models[0]).__module__, type(task).__name__)",
    ])
    paths = [checkpoints[m][0] for m in MODALITIES]
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split()[2] for line in lines] == ["AudioPretrainingTask", "MaeImagePretrainingTask", "MaskedLMTask"]
    assert all(line.split()[:2] == ["Data2VecMultiModel", "d2v_fairseq.models.data2vec_multi"] for line in lines)


def test_d2v_features_on_a_released_image_checkpoint(released, tmp_path):
    from PIL import Image

    from d2v_fairseq.features import extract

    folder = tmp_path / "images" / "cls"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"i{i}.png")
    path, _ = released[0]["IMAGE"]
    summary = extract(path, str(tmp_path / "images"), str(tmp_path / "out"))
    assert summary["items"] == 3
    item = (tmp_path / "out" / "index.tsv").read_text().splitlines()[1].split("\t")[0]
    assert np.load(tmp_path / "out" / f"{item}.npy").shape == (3, 1 + 16, 64)


def test_a_released_format_fine_tuned_image_model_loads(released, tmp_path):
    """mae_image_classification as the reference saves it: its task (fairseq's examples/data2vec
    mae_image_classification, not registered here) is read as d2v_image_classification."""
    from omegaconf import OmegaConf

    from d2v_fairseq.hub import load_checkpoint
    from d2v_fairseq.models.multi_finetuning import MaeImageClassificationConfig, MaeImageClassificationModel

    pretrained, _ = released[0]["IMAGE"]
    root = ref.tiny_root(ref.reference().Data2VecMultiConfig, "IMAGE")
    root.model = OmegaConf.merge(OmegaConf.structured(MaeImageClassificationConfig),
                                 {"model_path": pretrained, "num_classes": 5, "data": FOREIGN})
    torch.manual_seed(0)
    model = MaeImageClassificationModel.build_model(root.model).eval()
    root.model._name = "mae_image_classification"
    root.model.pretrained_model_args = model.cfg.pretrained_model_args
    root.task = OmegaConf.create({"_name": "mae_image_classification", "data": FOREIGN, "input_size": 32,
                                  "local_cache_path": None, "key": "imgs", "rebuild_batches": True})
    path = str(tmp_path / "finetuned.pt")
    torch.save({"cfg": OmegaConf.to_container(root, resolve=True, enum_to_str=True), "model": model.state_dict(),
                "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {}, "num_updates": 0}], "extra_state": {}}, path)
    os.rename(pretrained, pretrained + ".moved")  # the fine-tuned file carries the pre-trained config
    try:
        with pytest.warns(UserWarning, match="task config keys not declared by d2v_image_classification are ignored"):
            loaded, cfg, task = load_checkpoint(path)
    finally:
        os.rename(pretrained + ".moved", pretrained)
    assert type(loaded).__name__ == "MaeImageClassificationModel" and type(task).__name__ == "ImageClassificationTask"
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(images), model(images), atol=1e-5)
