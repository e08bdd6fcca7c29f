"""manifests/: the per-corpus scripts, run on small trees laid out as the corpora are
distributed (LibriSpeech, Libri-light's fine-tuning splits, ImageNet, a text corpus)."""

import os
import subprocess

import numpy as np
import soundfile as sf
from PIL import Image

from .conftest import REPO, VENV_BIN

MANIFESTS = os.path.join(REPO, "manifests")


def script(name, *args, env=None):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"], **(env or {}))
    return subprocess.run(["bash", os.path.join(MANIFESTS, name), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def librispeech_tree(root, subsets, speaker=103):
    """Two utterances per subset in LibriSpeech's layout: SUBSET/SPEAKER/CHAPTER/ with a .trans.txt."""
    rng = np.random.default_rng(0)
    for n, subset in enumerate(subsets):
        chapter = root / subset / str(speaker) / str(1240 + n)
        chapter.mkdir(parents=True)
        lines = []
        for i in range(2):
            utt = f"{speaker}-{1240 + n}-{i:04d}"
            sf.write(str(chapter / f"{utt}.flac"), (0.1 * rng.standard_normal(8000 + 800 * i)).astype("float32"), 16000)
            lines.append(f"{utt} HELLO WORLD {subset.upper().replace('-', ' ').replace('/', ' ')}")
        (chapter / f"{speaker}-{1240 + n}.trans.txt").write_text("\n".join(lines) + "\n")


def test_every_script_has_usage():
    names = sorted(n for n in os.listdir(MANIFESTS) if n.endswith(".sh"))
    assert names == ["audioset.sh", "glue.sh", "imagenet.sh", "librilight.sh", "librispeech.sh", "text-corpus.sh"]
    readme = open(os.path.join(MANIFESTS, "README.md")).read()
    for name in names:
        proc = script(name)
        assert proc.returncode == 2 and "usage:" in proc.stderr
        assert f"`{name}" in readme


def test_librispeech_and_librilight(tmp_path):
    librispeech_tree(tmp_path / "LibriSpeech", ["train-clean-100", "dev-other", "dev-clean", "test-clean",
                                                "test-other"])
    proc = script("librispeech.sh", tmp_path / "LibriSpeech", tmp_path / "ls")
    assert proc.returncode == 0, proc.stderr
    assert len(open(tmp_path / "ls" / "train.tsv").read().splitlines()) == 3
    assert os.path.isfile(tmp_path / "ls" / "dict.ltr.txt") and os.path.isfile(tmp_path / "ls" / "valid.tsv")

    ft = tmp_path / "librispeech_finetuning"
    parts = [f"1h/{i}/{kind}" for i in range(6) for kind in ("clean", "other")] + ["9h/clean", "9h/other"]
    librispeech_tree(ft, parts, speaker=200)
    proc = script("librilight.sh", ft, tmp_path / "LibriSpeech", tmp_path / "ll")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {name: open(tmp_path / "ll" / f"{name}.tsv").read().splitlines()[1:] for name in
            ("train_10m", "train_1h", "train_10h")}
    assert (len(rows["train_10m"]), len(rows["train_1h"]), len(rows["train_10h"])) == (4, 24, 28)
    assert set(rows["train_10m"]) <= set(rows["train_1h"]) <= set(rows["train_10h"])
    root = open(tmp_path / "ll" / "train_10h.tsv").readline().strip()
    assert all(os.path.isfile(os.path.join(root, r.split("\t")[0])) for r in rows["train_10h"])
    wrd = open(tmp_path / "ll" / "train_10h.wrd").read().splitlines()
    assert len(wrd) == 28 and wrd[-1].endswith("9H OTHER")
    for name in ("dev-other", "test-clean", "valid"):
        assert os.path.isfile(tmp_path / "ll" / f"{name}.tsv")
    assert "|" in open(tmp_path / "ll" / "dict.ltr.txt").read()


def test_imagenet_and_text_corpus(tmp_path):
    for split in ("train", "val"):
        for label in ("n01", "n02"):
            (tmp_path / "imagenet" / split / label).mkdir(parents=True)
            Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "imagenet" / split / label / "a.JPEG")
    proc = script("imagenet.sh", tmp_path / "imagenet", tmp_path / "im")
    assert proc.returncode == 0, proc.stderr
    assert open(tmp_path / "im" / "val.tsv").read().splitlines()[1].split("\t")[1:] == ["0", "40", "30"]

    words = "the cat sat on a mat and the dog ran in the park while birds sang".split()
    rng = np.random.default_rng(0)
    for split, n in (("train", 400), ("valid", 40)):
        (tmp_path / f"{split}.txt").write_text("\n".join(" ".join(rng.choice(words, 8)) for _ in range(n)) + "\n")
    proc = script("text-corpus.sh", tmp_path / "train.txt", tmp_path / "valid.txt", tmp_path / "bin",
                  env={"VOCAB_SIZE": "40"})
    assert proc.returncode == 0, proc.stderr
    for name in ("dict.txt", "train.bin", "valid.idx", "sentencepiece.bpe.model"):
        assert os.path.isfile(tmp_path / "bin" / name)
