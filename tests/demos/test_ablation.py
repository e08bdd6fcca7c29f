"""``d2v ablate``: argument errors before anything runs, run keying (a changed value or config
gives a new run, the same one is reused), resume after an interruption, the random-init
baseline, scores taken from an earlier table, budget curves, and the table, plot and
results.json of a two-update vision recipe."""

import json
import os
import subprocess

import pytest

from d2v_fairseq.demos import ablation
from d2v_fairseq.demos.ablation import STUDIES, StudyError, data_fingerprint, load_recipe, parse_values, run_key
from d2v_fairseq.demos.common import trained_updates

from ..conftest import REPO, VENV_BIN, run_cli
from ..helpers.images import write_square_images

CONFIGS = os.path.join(REPO, "d2v_fairseq", "configs")


def test_every_modality_has_a_study_recipe_with_eight_blocks():
    for modality in ablation.MODALITIES:
        recipe = load_recipe(ablation.default_recipe(modality))
        assert recipe.modality == modality
        assert ablation.model_depth(recipe) >= 8


@pytest.mark.parametrize("study, values, message", [
    ("top-k", "1,9", "K=9 is not a whole number from 1 to the model's depth 8"),
    ("top-k", "0", "K=0"),
    ("top-k", "2,2", "names a setting twice"),
    ("target", "ffn,output", "'output' is not a target point"),
    ("context", "8,all", "'all' is not a teacher context"),
    ("context", "1.5", "'1.5' is not a teacher context"),
    ("budget", "100,0", "budget '0' is not a whole number of updates"),
])
def test_bad_values_end_in_one_line_before_anything_runs(tmp_path, study, values, message):
    proc = subprocess.run([os.path.join(VENV_BIN, "d2v"), "ablate", study, "--modality", "vision", "--values", values,
                           "--seeds", "1", "--work", str(tmp_path / "w")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert not os.path.exists(tmp_path / "w" / "runs")


def test_values_are_parsed_and_defaulted():
    recipe = load_recipe(ablation.default_recipe("speech"))
    assert parse_values(STUDIES["top-k"], None, recipe) == [str(k) for k in range(1, 9)]
    assert parse_values(STUDIES["target"], None, recipe) == ["ffn", "ffn-residual", "attn", "block"]
    assert parse_values(STUDIES["context"], None, recipe) == ["2", "8", "32", "full"]
    assert parse_values(STUDIES["context"], "0.25,full", recipe) == ["0.25", "full"]
    assert STUDIES["context"].config_value("full") == "0"
    assert parse_values(STUDIES["budget"], "50,200", recipe) == ["50", "200"]
    assert STUDIES["budget"].pretrain_updates("50", recipe) == 50 and STUDIES["budget"].setting_overrides("50") == []
    assert STUDIES["top-k"].pretrain_updates("3", recipe) == recipe.pretrain.updates == 400
    for name in ("curve-vision-v1", "curve-vision-v2", "curve-text-v1", "curve-text-v2"):
        curve = load_recipe(os.path.join(CONFIGS, "ablations", f"{name}.yaml"))
        assert curve.random_init and curve.label.startswith("data2vec")
        assert [int(v) for v in parse_values(STUDIES["budget"], None, curve)] == sorted(
            int(v) for v in curve.default_values["budget"].split(","))
    assert all(load_recipe(ablation.default_recipe(m)).random_init for m in ablation.MODALITIES)
    with pytest.raises(StudyError, match="no such recipe"):
        load_recipe("/nonexistent/recipe.yaml")


def test_run_key_follows_the_resolved_config_and_data(tmp_path):
    recipe = load_recipe(ablation.default_recipe("vision"))
    base = ablation.resolved_config(recipe.pretrain, {"data": "/a"}, ["++model.average_top_k_layers=4"])
    same = ablation.resolved_config(recipe.pretrain, {"data": "/elsewhere"}, ["++model.average_top_k_layers=4"])
    other = ablation.resolved_config(recipe.pretrain, {"data": "/a"}, ["++model.average_top_k_layers=5"])
    # the data's path is not part of the key (its contents are); the setting is
    assert run_key(base, data="x") == run_key(same, data="x")
    assert run_key(base, data="x") != run_key(other, data="x")
    assert run_key(base, data="x") != run_key(base, data="y")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.tsv").write_text("root\na.wav\t100\n")
    before = data_fingerprint(str(tmp_path / "d"))
    assert data_fingerprint(str(tmp_path / "d")) == before
    (tmp_path / "d" / "train.tsv").write_text("root\na.wav\t101\n")
    assert data_fingerprint(str(tmp_path / "d")) != before


@pytest.fixture(scope="module")
def two_update_recipe(tmp_path_factory):
    """A vision recipe of two pre-training and two fine-tuning updates on 3 classes of images."""
    root = tmp_path_factory.mktemp("ablate")
    write_square_images(str(root), (("train", 6), ("val", 4)))
    recipe = root / "recipe.yaml"
    recipe.write_text(f"""modality: vision
data: {root / 'manifests'}
pretrain:
  config: {CONFIGS}/vision/pretraining/tiny_cpu.yaml
  updates: 2
  overrides: ["task.data={{data}}", dataset.batch_size=6, model.depth=2, model.embed_dim=32,
              model.average_top_k_layers=2, lr_scheduler.warmup_updates=1]
finetune:
  config: {CONFIGS}/vision/finetuning/tiny_cpu.yaml
  updates: 2
  overrides: ["task.data={{data}}", "model.model_path={{pretrained}}", dataset.batch_size=6,
              "optimizer.groups.default.lr_scheduler.max_update={{updates}}",
              optimizer.groups.default.lr_scheduler.warmup_updates=1, checkpoint.no_last_checkpoints=false]
  random_init: [model.no_pretrained_weights=true]
score:
  data: "{{data}}"
  split: val
  metric: top1
""")
    return recipe


def ablate(recipe, work, *args):
    return run_cli([os.path.join(VENV_BIN, "d2v"), "ablate", "top-k", "--recipe", str(recipe), "--seeds", "1",
                    "--work", str(work), *args])


@pytest.mark.slow
def test_a_study_writes_table_plot_and_results_and_reuses_finished_runs(two_update_recipe, tmp_path):
    work = tmp_path / "w"
    first = ablate(two_update_recipe, work, "--values", "1,2", "--plot", str(tmp_path / "k.png"))
    assert "pre-training 2 updates" in first.stdout and "ETA" in first.stdout
    rows = [line.split() for line in first.stdout.splitlines() if line.strip()[:2] in ("1 ", "2 ")]
    assert [r[0] for r in rows] == ["1", "2"] and all(len(r) == 4 for r in rows)  # K, seed 1, mean, std
    assert (tmp_path / "k.png").read_bytes()[:4] == b"\x89PNG"
    table = json.loads((work / "results.json").read_text())["top-k"]
    assert [r["value"] for r in table["rows"]] == ["1", "2"]
    assert table["rows"][0]["mean"] == pytest.approx(float(rows[0][1]), abs=0.01)
    # the recipe's random init: fine-tuned once per seed, a row of the table and of results.json
    assert "fine-tuning 2 updates from random init" in first.stdout
    baseline = [line.split() for line in first.stdout.splitlines() if line.strip().startswith("random init")]
    assert len(baseline) == 1 and list(table["random_init"]) == ["1"]
    assert table["random_init"]["1"] == pytest.approx(float(baseline[0][2]), abs=0.01)
    assert all(r["pretrain_s"][0] > 0 for r in table["rows"])  # seconds of pre-training per run
    assert table["date"] <= table["finished"]  # started (with the commit that ran), finished
    runs = sorted(os.listdir(work / "runs"))
    assert len(runs) == 3 and "vision-random-init" in runs  # K=1 and K=2 are different runs

    # the same call: every run reused, nothing trained
    again = ablate(two_update_recipe, work, "--values", "1,2")
    assert again.stdout.count("reused") == 3 and "pre-training" not in again.stdout
    assert sorted(os.listdir(work / "runs")) == runs

    # an interrupted run (fine-tuning lost) resumes: pre-training is kept, fine-tuning redone
    run_dir = work / table["runs"][0]  # K=1
    pretrained = run_dir / "pretrain" / "checkpoint_last.pt"
    stamp = os.path.getmtime(pretrained)
    for name in os.listdir(run_dir):
        if name.startswith("finetune-") and os.path.isdir(run_dir / name):
            for file in os.listdir(run_dir / name):
                os.remove(run_dir / name / file) if os.path.isfile(run_dir / name / file) else None
    resumed = ablate(two_update_recipe, work, "--values", "1,2")
    assert resumed.stdout.count("reused") == 2 and resumed.stdout.count("fine-tuning 2 updates") == 1
    assert os.path.getmtime(pretrained) == stamp

    # an earlier table's scores stand in for runs it lists under the same run directory
    earlier = tmp_path / "earlier.json"
    earlier.write_text((work / "results.json").read_text())
    import shutil

    shutil.rmtree(work / "runs" / os.path.basename(table["runs"][1]))  # K=2's run is gone
    taken = ablate(two_update_recipe, work, "--values", "1,2", "--scores-from", str(earlier))
    assert "from the earlier table" in taken.stdout and "pre-training" not in taken.stdout
    retaken = json.loads((work / "results.json").read_text())["top-k"]
    assert [r["scores"] for r in retaken["rows"]] == [r["scores"] for r in table["rows"]]
    assert retaken["rows"][1]["seeds_from_earlier_table"] == [1] and "seeds_from_earlier_table" not in retaken["rows"][0]

    # a changed recipe setting (the model's width) gives new runs, never the stale models
    changed = tmp_path / "changed.yaml"
    changed.write_text(two_update_recipe.read_text().replace("model.embed_dim=32", "model.embed_dim=16"))
    narrow = ablate(changed, work, "--values", "1")
    assert len(os.listdir(work / "runs")) == 3  # K=1's new run (K=2's was removed above)
    # and a random init of the new shape, not the old shape's baseline
    assert "fine-tuning 2 updates from random init" in narrow.stdout
    baselines = work / "runs" / "vision-random-init"
    assert len([n for n in os.listdir(baselines) if os.path.isdir(baselines / n)]) == 2


def test_a_second_study_in_the_same_work_dir_stops_naming_the_first(tmp_path):
    import subprocess
    import sys

    from d2v_fairseq.locks import LockBusy

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from d2v_fairseq.demos.ablation import work_lock; lock = work_lock(sys.argv[1]); "
        "lock.acquire(); print('locked', flush=True); time.sleep(60)"), str(tmp_path)], stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusy, match=f"another study holds .lock \\(host \\S+ pid {holder.pid}"):
            ablation.work_lock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = ablation.work_lock(str(tmp_path))
    assert f"pid {holder.pid}" in lock.acquire()  # a killed study's lock is taken over, said in a line
    lock.release()


@pytest.mark.slow
def test_budget_curves_put_scores_against_pretraining_seconds(two_update_recipe, tmp_path):
    work = tmp_path / "w"
    proc = run_cli([os.path.join(VENV_BIN, "d2v"), "ablate", "budget", "--recipe", str(two_update_recipe),
                    "--seeds", "1", "--values", "2,3", "--work", str(work)])
    assert "pre-training 2 updates" in proc.stdout and "pre-training 3 updates" in proc.stdout
    entry = json.loads((work / "results.json").read_text())["budget"]
    pretrain_dirs = [work / run / "pretrain" for run in entry["runs"]]
    assert [trained_updates(str(d)) for d in pretrain_dirs] == [2, 3]
    assert entry["label"] == "recipe" and entry["random_init"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"budget": {**entry, "label": "another recipe"}}))
    plot = tmp_path / "curve.png"
    ablate_replot = [os.path.join(VENV_BIN, "d2v"), "ablate", "budget", "--replot", str(work / "results.json"),
                     "--replot", str(other), "--plot", str(plot)]
    run_cli(ablate_replot)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    top_k = tmp_path / "top-k.json"
    top_k.write_text(json.dumps({"top-k": {**entry, "study": "top-k"}}))
    with pytest.raises(StudyError, match="only budget curves join several"):
        ablation.replot([str(top_k)] * 2, "top-k", str(plot))


def test_earlier_scores_are_found_by_run_directory_in_every_table_of_the_modality(tmp_path):
    recipe = load_recipe(ablation.default_recipe("speech"))
    rows = lambda *values: [{"value": v, "seeds": [1, 2], "scores": [s, s + 1]} for v, s in values]  # noqa: E731
    table = {"top-k": {"modality": "speech", "metric": "cer", "rows": rows(("1", 90.0), ("6", 80.0)),
                       "runs": ["runs/speech-a", "runs/speech-b", "runs/speech-c", "runs/speech-d"]},
             "target": {"modality": "speech", "metric": "cer", "rows": rows(("attn", 99.0)),
                        "runs": ["runs/speech-e", "runs/speech-f"]},
             "top-k-images": {"modality": "vision", "metric": "top1", "rows": rows(("1", 50.0)),
                              "runs": ["runs/vision-a", "runs/vision-b"]}}
    (tmp_path / "results.json").write_text(json.dumps(table))
    found = ablation.earlier_scores(str(tmp_path / "results.json"), recipe)
    assert found == {"speech-a": {"cer": 90.0}, "speech-b": {"cer": 91.0}, "speech-c": {"cer": 80.0},
                     "speech-d": {"cer": 81.0}, "speech-e": {"cer": 99.0}, "speech-f": {"cer": 100.0}}
    table["target"]["runs"].pop()
    (tmp_path / "results.json").write_text(json.dumps(table))
    with pytest.raises(StudyError, match="its target table lists 1 run directories for 2 scores"):
        ablation.earlier_scores(str(tmp_path / "results.json"), recipe)
    with pytest.raises(StudyError, match="no such results file"):
        ablation.earlier_scores(str(tmp_path / "none.json"), recipe)


def test_the_eta_counts_only_the_share_of_runs_that_had_to_be_trained():
    progress = ablation.Progress(STUDIES["top-k"], "vision", total=8)
    assert progress.eta() is None
    progress.finished(None)  # reused
    assert progress.eta() is None
    progress.finished(None)  # from an earlier table
    progress.finished(30.0)
    progress.finished(50.0)
    # 4 runs left; half of the runs so far were trained, 40 s each on average
    assert progress.eta() == pytest.approx(4 * 0.5 * 40.0)


def test_a_broken_recipe_names_its_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modality: vision\npretrain:\n  overrides: [task.data={data}]\n")
    with pytest.raises(StudyError, match="bad.yaml.*quote values"):
        load_recipe(str(bad))
    bad.write_text("modality: sound\n")
    with pytest.raises(StudyError, match="'sound' is not one of"):
        load_recipe(str(bad))
    bad.write_text("modality: vision\nscore: {data: x, metric: top1}\npretrain: {config: vision/pretraining/tiny_cpu.yaml}\n")
    with pytest.raises(StudyError, match="pretrain.updates is missing"):
        load_recipe(str(bad))


def test_settings_at_the_models_default_share_the_baseline_run():
    recipe = load_recipe(ablation.default_recipe("speech"))

    def key(*setting):
        cfg = ablation.resolved_config(recipe.pretrain, {"data": "/d"}, ["common.seed=1", *setting])
        return run_key(cfg, data="x")

    baseline = key("++model.average_top_k_layers=6")  # the recipe's K
    assert key("++model.target_feature=ffn") == baseline  # speech's default target point
    assert key("++model.teacher_attention_window=0") == baseline  # the whole input
    assert key("++model.target_feature=attn") != baseline
    assert key("++model.teacher_attention_window=8") != baseline
    vision = load_recipe(ablation.default_recipe("vision"))
    cfg = ablation.resolved_config(vision.pretrain, {"data": "/d"}, ["++model.target_feature=block"])
    assert run_key(cfg, data="x") == run_key(ablation.resolved_config(vision.pretrain, {"data": "/d"}), data="x")


def test_a_studys_plot_is_redrawn_from_its_results_json(tmp_path):
    import json

    from d2v_fairseq.demos.ablation import replot

    entry = {"study": "context", "modality": "speech", "metric": "cer", "lower_is_better": True, "split": "test",
             "rows": [{"value": v, "seeds": [1, 2], "scores": [s, s + 2], "mean": s + 1, "std": 1.4}
                      for v, s in (("2", 90.0), ("full", 88.0))],
             "random_init": {"1": 95.0, "2": 96.0}}
    (tmp_path / "results.json").write_text(json.dumps({"context": entry}))
    out = replot([str(tmp_path / "results.json")], "context", str(tmp_path / "plot.png"))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(StudyError, match="no 'top-k' study in it"):
        replot([str(tmp_path / "results.json")], "top-k", str(tmp_path / "other.png"))


def test_provenance_names_the_date_commit_and_recipe_hashes():
    from d2v_fairseq.demos.ablation import default_recipe, provenance

    info = provenance(load_recipe(default_recipe("speech")))
    assert info["date"].endswith("UTC") and set(info["recipe_sha256"]) >= {"speech.yaml"}
    assert all(len(h) == 16 for h in info["recipe_sha256"].values())
