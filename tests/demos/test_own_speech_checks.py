"""``d2v demo speech --corpus`` on a corpus with a 30-second recording in its training and
validation splits: checked before training (the fine-tuning batch limit follows it), a failing
stage ends in one line and exit 2, a re-run resumes, and ``--init`` fine-tunes from a given
pre-trained checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from d2v_fairseq.data.manifest import read_lines

pytestmark = pytest.mark.slow  # end to end: training and decoding

STAGES = ["lr_scheduler.phase_ratio=null", "+lr_scheduler.warmup_steps=1", "+lr_scheduler.hold_steps=1",
          "+lr_scheduler.decay_steps=2"]


@pytest.fixture(scope="module")
def long_table(demo_corpus, tmp_path_factory):
    """The synthesized corpus as a table with a split column, plus a 30-s recording in train
    and a 25-s one in valid (utterances of the split joined end to end)."""
    root = tmp_path_factory.mktemp("long")
    rows = []
    for split in ("train", "valid", "test"):
        lines = read_lines(os.path.join(demo_corpus, f"{split}.tsv"))
        words = read_lines(os.path.join(demo_corpus, f"{split}.wrd"))
        paths = [os.path.join(lines[0], line.split("\t")[0]) for line in lines[1:]]
        rows += [(p, w, split) for p, w in zip(paths, words, strict=False)]
        if split == "test":
            continue
        audio, text, seconds = [], [], 30.0 if split == "train" else 25.0
        for p, w in zip(paths * 10, words * 10, strict=False):
            wav, _ = sf.read(p, dtype="float32")
            audio.append(wav)
            text.append(w)
            if sum(len(a) for a in audio) >= seconds * 16000:
                break
        long_path = root / f"long_{split}.wav"
        sf.write(str(long_path), np.concatenate(audio)[: int(seconds * 16000)], 16000)
        rows.append((str(long_path), " ".join(text[:-1]), split))  # the cut-off last utterance left out
    table = root / "corpus.tsv"
    table.write_text("path\ttext\tsplit\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return table


def demo(table, work, *extra, finetune=()):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "d2v_fairseq", "demo", "speech", "--corpus", str(table), "--split-column", "split",
         "--work", str(work), "--pretrain-updates", "4", "--finetune-updates", "4", *extra,
         "--pretrain-overrides", *STAGES, "dataset.validate_interval_updates=4",
         "--finetune-overrides", *STAGES, "model.freeze_finetune_updates=0", "dataset.validate_interval_updates=4",
         *finetune], env=env, capture_output=True, text=True, timeout=900)


def test_long_recordings_run_through_failure_resume_and_init(long_table, tmp_path):
    work = tmp_path / "work"
    # a stage that fails: one line naming it and its log, exit 2, no traceback
    failed = demo(long_table, work, finetune=["optimization.no_such_option=1"])
    assert failed.returncode == 2, failed.stdout[-2000:] + failed.stderr[-2000:]
    err = failed.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "stage 'fine-tuning pretrained' failed" in err and "finetune_pretrained.log" in err
    assert "fine-tuning batches: at most 480000 samples (30.0 s" in failed.stdout  # settled before training
    assert os.path.isfile(work / "pretrain" / "checkpoint_last.pt")

    # the same command, mended: pre-training is reused, the rest runs to the table
    done = demo(long_table, work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "already trained (4 updates" in done.stdout and "viterbi CER" in done.stdout
    results = json.loads((work / "results.json").read_text())
    assert "dataset.max_tokens=480000" in results["plan"]["finetune_overrides"]
    assert results["plan"]["durations"]["train"]["max"] == 30.0 and results["plan"]["durations"]["valid"]["max"] == 25.0
    assert results["plan"]["subsets"]["train"] == "train"  # the long recording is kept
    for start in ("pretrained", "random init"):
        assert 0 <= results["scores"][start]["viterbi"]["cer"] <= 500

    # --init: fine-tuning starts from the checkpoint just made, no pre-training here
    init = demo(long_table, tmp_path / "init", "--init", str(work / "pretrain" / "checkpoint_last.pt"))
    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    assert "no pre-training here" in init.stdout and not os.path.exists(tmp_path / "init" / "pretrain")
    assert "from pretrain/checkpoint_last.pt" in init.stdout
    scores = json.loads((tmp_path / "init" / "results.json").read_text())["scores"]
    assert set(scores) == {"from pretrain/checkpoint_last.pt", "random init"}

    # a missing --init checkpoint: one line before anything runs
    missing = demo(long_table, tmp_path / "missing", "--init", str(tmp_path / "nope.pt"))
    assert missing.returncode == 2 and "nope.pt: no such checkpoint (--init)" in missing.stderr
    assert not os.path.exists(tmp_path / "missing" / "data")
