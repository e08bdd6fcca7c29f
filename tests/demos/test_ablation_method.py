"""``d2v ablate method``: data2vec, data2vec 2.0, wav2vec 2.0 and HuBERT from recipes of one
shape, each pre-trained for the same seconds of training (its schedule from a calibration run),
HuBERT on MFCC k-means labels made with fairseq's simple_kmeans scripts, fine-tuned alike; the
table's paired differences; a run its time stopped is reused, not trained further."""

import json
import os
import subprocess

import pytest

from d2v_fairseq.demos import ablation
from d2v_fairseq.demos.ablation import PLACEHOLDERS, STUDIES, load_recipe, parse_values, resolved_config
from d2v_fairseq.demos.ablation.tables import paired_differences
from d2v_fairseq.launch import config_get

from ..conftest import REPO, VENV_BIN, run_cli

CONFIGS = os.path.join(REPO, "d2v_fairseq", "configs")
SHAPE = {  # what "the same shape" means, per family: (key in data2vec v1 / wav2vec 2.0 / HuBERT, in data2vec 2.0)
    "width": ("model.encoder_embed_dim", "model.embed_dim"),
    "depth": ("model.encoder_layers", "model.depth"),
    "heads": ("model.encoder_attention_heads", "model.num_heads"),
    "front end": ("model.conv_feature_layers", "model.modalities.audio.feature_encoder_spec"),
}


def test_the_methods_have_one_shape_and_differ_in_method():
    recipe = load_recipe(ablation.default_recipe("speech", "method"))
    assert parse_values(STUDIES["method"], None, recipe) == ["data2vec", "data2vec2", "wav2vec2", "hubert"]
    shapes, names = {}, {}
    for value in recipe.methods:
        stage = STUDIES["method"].pretrain_stage(value, recipe)
        cfg = resolved_config(stage, {**PLACEHOLDERS, "labels": "LABELS"})
        v2 = cfg["model"]["_name"] == "data2vec_multi"
        shapes[value] = {what: str(config_get(cfg, keys[v2])).replace(" ", "") for what, keys in SHAPE.items()}
        names[value] = (cfg["model"]["_name"], cfg["criterion"]["_name"], cfg["task"]["_name"])
    assert len({json.dumps(s, sort_keys=True) for s in shapes.values()}) == 1, shapes
    assert shapes["data2vec"]["width"] == "64" and shapes["data2vec"]["depth"] == "8"
    assert names["wav2vec2"] == ("wav2vec2", "wav2vec", "d2v_audio_pretraining")
    assert names["hubert"] == ("hubert", "hubert", "hubert_pretraining")
    assert len(set(names.values())) == 4
    assert STUDIES["method"].finetune_overrides("hubert", recipe) == ["model._name=d2v_hubert_ctc"]


@pytest.mark.parametrize("args, message", [
    (["method", "--values", "data2vec,bert"], "'bert' is not a method of the recipe"),
    (["method", "--seconds", "0"], "--seconds is the method study's pre-training time"),
    (["top-k", "--seconds", "60"], "--seconds is the method study's pre-training time"),
])
def test_bad_method_arguments_end_in_one_line_before_anything_runs(tmp_path, args, message):
    proc = subprocess.run([os.path.join(VENV_BIN, "d2v"), "ablate", *args, "--modality", "speech", "--seeds", "1",
                           "--work", str(tmp_path / "w")], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not os.path.exists(tmp_path / "w" / "runs")


def test_paired_differences_are_seed_by_seed_against_the_first_row():
    rows = [{"value": "a", "seeds": [1, 2, 3], "scores": [30.0, 40.0, 35.0]},
            {"value": "b", "seeds": [1, 2, 3], "scores": [33.0, 39.0, 41.0]}]
    assert paired_differences(rows) == {"b": {"per_seed": {1: 3.0, 2: -1.0, 3: 6.0}, "mean": pytest.approx(8 / 3)}}


@pytest.fixture
def short_recipe(tmp_path, demo_corpus):
    """The shipped method recipe on the tests' corpus, 20 calibration updates, 4 CTC updates."""
    text = open(os.path.join(CONFIGS, "ablations", "method-speech.yaml")).read()
    text = text.replace("data: null", f"data: {demo_corpus}").replace("calibrate: 40", "calibrate: 20")
    text = text.replace("updates: 600", "updates: 4").replace("config: audio/", f"config: {CONFIGS}/audio/")
    recipe = tmp_path / "method.yaml"
    recipe.write_text(text)
    return recipe


@pytest.mark.slow
def test_each_method_trains_for_the_same_seconds_and_a_rerun_reuses_every_run(short_recipe, demo_corpus, tmp_path):
    work = tmp_path / "w"
    args = [os.path.join(VENV_BIN, "d2v"), "ablate", "method", "--recipe", str(short_recipe), "--values",
            "wav2vec2,hubert", "--seeds", "1", "--seconds", "4", "--work", str(work)]
    first = run_cli(args)
    assert "wav2vec2: measuring its updates per second" in first.stdout and "random init" in first.stdout
    labels = [p for p in os.listdir(work) if p.startswith("labels-")]
    assert len(labels) == 1
    for split in ("train", "valid"):  # one line of 100 Hz cluster ids per manifest line
        lines = open(work / labels[0] / f"{split}.km").read().splitlines()
        manifest = open(os.path.join(demo_corpus, f"{split}.tsv")).read().splitlines()[1:]
        assert len(lines) == len(manifest)
        for line, entry in zip(lines, manifest, strict=True):
            assert len(line.split()) == 1 + (int(entry.split("\t")[1]) - 400) // 160
            assert all(0 <= int(v) < 100 for v in line.split())
    entry = json.loads((work / "results.json").read_text())["method-4s"]
    assert [r["value"] for r in entry["rows"]] == ["wav2vec2", "hubert"] and entry["pretrain_seconds"] == 4
    for row in entry["rows"]:  # fairseq's training clock stopped each at the budget (one update past it at most)
        assert 4 <= row["pretrain_train_s"][0] < 12 and row["pretrain_updates"][0] >= 2
    assert set(entry["paired_differences"]) == {"hubert"} and list(entry["random_init"]) == ["1"]
    pretrained = [work / r / "pretrain" / "checkpoint_last.pt" for r in entry["runs"]]
    stamps = [os.path.getmtime(p) for p in pretrained]

    for run in entry["runs"]:  # every fine-tuning lost: the pre-trainings, stopped by time, are kept as they are
        for name in os.listdir(work / run):
            if name.startswith("finetune-") and os.path.isdir(work / run / name):
                os.remove(work / run / name / "score-test.json")
    again = run_cli(args)
    assert again.stdout.count("pre-trained before") == 2 and "pre-training" not in again.stdout
    assert "measuring" not in again.stdout
    assert [os.path.getmtime(p) for p in pretrained] == stamps
    rerun = json.loads((work / "results.json").read_text())["method-4s"]
    assert [r["pretrain_updates"] for r in rerun["rows"]] == [r["pretrain_updates"] for r in entry["rows"]]


def test_the_time_to_quality_plot_joins_every_pre_training_time_of_the_files(tmp_path):
    def entry(seconds, shift):
        rows = [{"value": m, "seeds": [1, 2], "scores": [50.0 - shift + i, 52.0 - shift + i], "mean": 51.0 - shift + i,
                 "std": 1.4, "pretrain_train_s": [seconds + 0.5, seconds + 0.7]} for i, m in enumerate(("a", "b"))]
        return {"study": "method", "modality": "speech", "metric": "cer", "lower_is_better": True, "split": "test",
                "rows": rows, "pretrain_seconds": seconds, "random_init": {"1": 90.0, "2": 91.0}}

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"method-60s": entry(60, 0), "top-k": {}, "method-120s": entry(120, 5)}))
    plot = tmp_path / "m.png"
    run_cli([os.path.join(VENV_BIN, "d2v"), "ablate", "method", "--replot", str(results), "--plot", str(plot)])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    results.write_text(json.dumps({"top-k": {}}))
    proc = subprocess.run([os.path.join(VENV_BIN, "d2v"), "ablate", "method", "--replot", str(results), "--plot",
                           str(plot)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no method tables" in proc.stderr
