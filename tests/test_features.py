"""``d2v features`` and ``d2v probe`` on speech (a tiny released-format checkpoint written by
fairseq's own model): every input layout, layers and pooling, the HuBERT k-means dump, a probe
that finds what separates two kinds of sound."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from d2v_fairseq.features import extract, parse_layers
from d2v_fairseq.hub import load
from d2v_fairseq.modules.errors import InputError
from d2v_fairseq.probe import format_table, probe

from .conftest import REPO, run_cli

pytestmark = [
    pytest.mark.slow,  # writes a checkpoint with fairseq's reference model
    # that checkpoint carries config keys our model does not declare; each load says so (asserted in
    # tests/models/test_reference_checkpoint.py)
    pytest.mark.filterwarnings("ignore:.*model config keys not declared by data2vec_audio:UserWarning"),
]
FAULTS = os.path.join(REPO, "tests", "helpers", "faults")
SIMPLE_KMEANS = os.path.join(os.path.dirname(__import__("fairseq").__file__), "examples", "hubert", "simple_kmeans")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("features_ckpt")
    run_cli([sys.executable, os.path.join(REPO, "tests", "helpers", "reference_audio_checkpoint.py"), str(out)])
    return str(out / "checkpoint.pt")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """12 tones of 0.3-0.9 s at 22.05 kHz stereo, half low (200 Hz) and half high (2 kHz), and a
    labeled table of them."""
    folder = tmp_path_factory.mktemp("clips")
    rows = ["path\tpitch\tgroup"]
    rng = np.random.default_rng(0)
    for i in range(24):
        pitch = "low" if i % 2 else "high"
        seconds = 0.3 + 0.05 * (i % 12)
        t = np.arange(int(22050 * seconds)) / 22050
        wave = np.sin(2 * np.pi * (200 if pitch == "low" else 2000) * t) * 0.3 + 0.01 * rng.standard_normal(len(t))
        sf.write(str(folder / f"c{i:02d}.wav"), np.stack([wave, wave], 1).astype("float32"), 22050)
        rows.append(f"c{i:02d}.wav\t{pitch}\tg{i // 2}")
    (folder / "table.tsv").write_text("\n".join(rows) + "\n")
    return folder


def test_every_layer_per_item_and_the_index(checkpoint, clips, tmp_path):
    reps = load(checkpoint)
    summary = extract(checkpoint, str(clips), str(tmp_path / "out"), max_tokens=40000)
    assert summary["items"] == 24 and summary["audio_s_per_s"] > 0
    index = (tmp_path / "out" / "index.tsv").read_text().splitlines()
    assert index[0] == "id\tsource\tframes" and len(index) == 25
    item, source, frames = index[1].split("\t")
    feats = np.load(tmp_path / "out" / f"{item}.npy")
    expected_frames = reps.output_lengths([int(sf.info(source).frames * 16000 / 22050 + 0.5)])[0]
    assert feats.shape == (reps.num_layers, int(frames), 32) and abs(int(frames) - expected_frames) <= 1
    assert feats.dtype == np.float32


def test_features_do_not_depend_on_the_batch(checkpoint, clips, tmp_path):
    extract(checkpoint, str(clips), str(tmp_path / "batched"), max_tokens=10_000_000)
    extract(checkpoint, str(clips), str(tmp_path / "alone"), max_items=1)
    for name in os.listdir(tmp_path / "alone"):
        if name.endswith(".npy"):
            a, b = np.load(tmp_path / "alone" / name), np.load(tmp_path / "batched" / name)
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-4, name


def test_layers_pooling_and_input_layouts(checkpoint, clips, tmp_path):
    (tmp_path / "list.txt").write_text(f"{clips}/c00.wav\n{clips}/c01.wav\n")
    for i, source in enumerate((str(clips / "table.tsv"), str(tmp_path / "list.txt"), str(clips / "c00.wav"))):
        out = tmp_path / f"out{i}"
        summary = extract(checkpoint, source, str(out), layers="0,2", pool="mean")
        assert summary["layers"] == [0, 2]
        first = sorted(p for p in os.listdir(out) if p.endswith(".npy"))[0]
        assert np.load(out / first).shape == (2, 32)
    assert parse_layers("last", 5) == [4] and parse_layers("all", 3) == [0, 1, 2]
    with pytest.raises(InputError, match="layer 9 does not exist"):
        parse_layers("1,9", 5)


def test_hubert_dump_is_what_simple_kmeans_reads(checkpoint, clips, tmp_path):
    extract(checkpoint, str(clips / "table.tsv"), str(tmp_path / "dump"), layers="2", fmt="hubert", split="valid")
    feats = np.load(tmp_path / "dump" / "valid_0_1.npy")
    lengths = [int(n) for n in (tmp_path / "dump" / "valid_0_1.len").read_text().split()]
    assert len(lengths) == 24 and feats.shape == (sum(lengths), 32)
    # in input order: the first item's frames first
    extract(checkpoint, str(clips / "c00.wav"), str(tmp_path / "one"), layers="2")
    one = np.load(tmp_path / "one" / "c00.wav.npy")[0]
    assert np.abs(feats[: lengths[0]] - one).max() < 1e-4


def test_probe_finds_pitch_and_writes_the_plot(checkpoint, clips, tmp_path):
    results = probe({"reference": checkpoint, "random": "random:" + checkpoint}, str(clips / "table.tsv"), "pitch",
                    group_column="group", test_share=0.25, plot=str(tmp_path / "probe.png"))
    layers = load(checkpoint).num_layers
    assert set(results) == {"reference", "random"} and all(len(v) == layers for v in results.values())
    assert max(results["reference"]) >= 80.0  # low and high tones are linearly separable in some layer
    assert (tmp_path / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert format_table(results).splitlines()[0].split() == ["layer", "reference", "random"]


def test_probe_command_prints_the_table(checkpoint, clips, tmp_path):
    proc = run_cli([os.path.join(os.path.dirname(sys.executable), "d2v"), "probe", str(clips / "table.tsv"),
                    "--label-column", "pitch", "--group-column", "group", "--ckpt", f"ref={checkpoint}",
                    "--plot", str(tmp_path / "p.png")])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("20 train, 4 test items; majority class")  # 2 of the 12 groups held out
    assert lines[1].split() == ["layer", "ref"] and os.path.isfile(tmp_path / "p.png")


def features(checkpoint, *args, faults=None):
    """``d2v features CHECKPOINT ARGS`` (with the test faults of tests/helpers/faults, if asked)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", **(faults or {}))
    if faults:
        env["PYTHONPATH"] = FAULTS
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "d2v"), "features", checkpoint, *args],
                          env=env, capture_output=True, text=True, timeout=600)


def test_ids_are_paths_under_the_root_so_nothing_overwrites(checkpoint, clips, tmp_path):
    import shutil

    root = tmp_path / "nested"
    for folder, name, clip in (("a", "x.wav", "c00.wav"), ("b", "x.wav", "c01.wav"), (".", "x.flac", "c02.wav")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        if name.endswith(".flac"):
            audio, rate = sf.read(str(clips / clip))
            sf.write(str(root / folder / name), audio, rate)
        else:
            shutil.copy(clips / clip, root / folder / name)
    summary = extract(checkpoint, str(root), str(tmp_path / "out"), layers="last")
    assert summary["items"] == 3
    ids = [line.split("\t")[0] for line in (tmp_path / "out" / "index.tsv").read_text().splitlines()[1:]]
    assert sorted(ids) == ["a/x.wav", "b/x.wav", "x.flac"]
    arrays = [np.load(tmp_path / "out" / f"{i}.npy") for i in sorted(ids)]
    assert not np.array_equal(arrays[0], arrays[1]) and arrays[0].shape != arrays[2].shape
    (tmp_path / "twice.txt").write_text(f"{root}/a/x.wav\n{root}/b/x.wav\n{root}/a/x.wav\n")
    with pytest.raises(InputError, match="named twice.*twice.txt:3"):
        extract(checkpoint, str(tmp_path / "twice.txt"), str(tmp_path / "out2"))


@pytest.mark.parametrize("fmt", ["npy", "hubert"])
def test_a_killed_run_continues_and_ends_as_an_uninterrupted_one(checkpoint, clips, tmp_path, fmt):
    args = [str(clips / "table.tsv"), "--layers", "2", "--batch-size", "4", "--format", fmt, "--split", "valid"]
    straight = features(checkpoint, *args[:1], str(tmp_path / "straight"), *args[1:])
    assert straight.returncode == 0, straight.stderr[-2000:]
    # the npy files and the index are synced per batch; the hubert dump per window of 16 items
    killed = features(checkpoint, args[0], str(tmp_path / "run"), *args[1:],
                      faults={"D2V_TEST_KILL_AFTER_FSYNC": "9" if fmt == "npy" else "4"})
    assert killed.returncode == -signal.SIGKILL
    again = features(checkpoint, args[0], str(tmp_path / "run"), *args[1:])
    assert again.returncode == 0, again.stderr[-2000:]
    complete = int(again.stdout.split(" already complete")[0].split(", ")[-1])
    assert 0 < complete < 24, again.stdout
    if fmt == "hubert":
        for suffix in (".npy", ".len"):
            assert (tmp_path / "run" / f"valid_0_1{suffix}").read_bytes() == (
                tmp_path / "straight" / f"valid_0_1{suffix}").read_bytes(), suffix
        return
    index = (tmp_path / "run" / "index.tsv").read_text().splitlines()
    ids = [line.split("\t")[0] for line in index[1:]]
    assert index[0] == "id\tsource\tframes" and sorted(ids) == sorted(set(ids)) and len(ids) == 24
    for item in ids:
        assert np.array_equal(np.load(tmp_path / "run" / f"{item}.npy"), np.load(tmp_path / "straight" / f"{item}.npy"))
    assert not [p for p in os.listdir(tmp_path / "run") if p.endswith(".tmp")]


def test_hubert_shards_are_read_by_fairseqs_kmeans_scripts(checkpoint, clips, tmp_path):
    dump = tmp_path / "dump"
    for rank in range(2):
        extract(checkpoint, str(clips / "table.tsv"), str(dump), layers="2", fmt="hubert", split="valid",
                shard=f"{rank}/2")
    extract(checkpoint, str(clips / "table.tsv"), str(tmp_path / "whole"), layers="2", fmt="hubert", split="valid")
    lengths = [(dump / f"valid_{r}_2.len").read_text().split() for r in range(2)]
    assert [len(n) for n in lengths] == [12, 12]  # contiguous halves, as get_shard_range splits 24
    joined = np.concatenate([np.load(dump / f"valid_{r}_2.npy") for r in range(2)])
    assert np.array_equal(joined, np.load(tmp_path / "whole" / "valid_0_1.npy"))
    km = tmp_path / "km.bin"
    run_cli([sys.executable, os.path.join(SIMPLE_KMEANS, "learn_kmeans.py"), str(dump), "valid", "2", str(km), "4",
             "--percent", "-1", "--n_init", "2"], cwd=SIMPLE_KMEANS)
    for rank in range(2):
        run_cli([sys.executable, os.path.join(SIMPLE_KMEANS, "dump_km_label.py"), str(dump), "valid", str(km), "2",
                 str(rank), str(tmp_path / "labels")], cwd=SIMPLE_KMEANS)
        labels = (tmp_path / "labels" / f"valid_{rank}_2.km").read_text().splitlines()
        assert [len(line.split()) for line in labels] == [int(n) for n in lengths[rank]]


def test_bf16_features_match_fp32_per_frame(checkpoint, clips):
    import torch

    waves = [sf.read(str(clips / f"c{i:02d}.wav"))[0].mean(1) for i in range(4)]
    waves = [torch.from_numpy(w).float() for w in waves]
    outputs = {}
    for precision in ("fp32", "bf16"):
        reps = load(checkpoint, precision=precision)
        batch, padding = reps.batch([w.numpy() for w in waves])
        states, frames = reps.hidden_states(batch, padding)
        assert all(s.dtype == torch.float32 for s in states)  # stored fp32 whatever the forward ran in
        outputs[precision] = (states, frames)
    valid = ~outputs["fp32"][1] if outputs["fp32"][1] is not None else None
    for full, half in zip(outputs["fp32"][0][1:], outputs["bf16"][0][1:], strict=True):  # every block's output
        cosine = torch.nn.functional.cosine_similarity(full, half, dim=-1)  # (B, T) per frame
        cosine = cosine[valid] if valid is not None else cosine.flatten()
        assert cosine.min() >= 0.99, cosine.min()
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        load(checkpoint, precision="fp16")
