"""The own-corpus speech demo on real recorded speech (Debian's fillets-ng Dutch dialogs): a table
written by hand with relative paths, run through `d2v demo speech --corpus` for a few updates."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from d2v_fairseq.demos.fillets import SCRIPT_DIR, SOUND_DIR, read_dialogs, write_table

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.path.isdir(os.path.join(SOUND_DIR, "airplane", "nl"))
                            and os.path.isfile(os.path.join(SCRIPT_DIR, "airplane", "dialogs_nl.lua"))),
                       reason="Debian's fillets-ng-data-nl (Dutch recordings) or fillets-ng-data (transcripts) "
                       "is not installed: apt-get install fillets-ng-data fillets-ng-data-nl (`make test` does it)"),
]

# explicit tri-stage steps: a handful of updates would give tri_stage zero decay steps
STAGES = ["lr_scheduler.phase_ratio=null", "+lr_scheduler.warmup_steps=1", "+lr_scheduler.hold_steps=1",
          "+lr_scheduler.decay_steps=2"]


def test_fillets_table_pairs_recordings_with_their_dutch_lines(tmp_path):
    counts = write_table(str(tmp_path / "corpus.tsv"))
    assert counts["recordings"] > 1500 and counts["with transcript"] >= counts["recordings"] - 5
    assert counts["levels"] >= 70
    header, first = (tmp_path / "corpus.tsv").read_text(encoding="utf-8").splitlines()[:2]
    assert header.split("\t") == ["path", "text", "level", "voice", "english"]
    path, text, level, voice, english = first.split("\t")
    assert os.path.isfile(path) and f"/{level}/nl/" in path and voice in ("font_small", "font_big")
    assert read_dialogs()[(level, os.path.basename(path)[:-4])][1] == text


def test_demo_runs_on_a_hand_written_table_of_real_recordings(tmp_path):
    dialogs = read_dialogs()
    rows = []
    clips = tmp_path / "clips"
    clips.mkdir()
    for level in ("airplane", "alibaba", "atlantis", "barrel"):
        names = sorted(n for lv, n in dialogs if lv == level)[:4]
        for name in names:
            source = os.path.join(SOUND_DIR, level, "nl", f"{name}.ogg")
            if os.path.isfile(source) and os.path.getsize(source) > 1000:
                shutil.copy(source, clips / f"{level}-{name}.ogg")
                rows.append(f"clips/{level}-{name}.ogg\t{dialogs[(level, name)][1]}\t{level}")
    (tmp_path / "my corpus.tsv").write_text("path\ttext\tlevel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "d2v_fairseq", "demo", "speech", "--corpus", str(tmp_path / "my corpus.tsv"),
         "--group-column", "level", "--work", str(tmp_path / "work"), "--pretrain-updates", "4",
         "--finetune-updates", "4", "--pretrain-overrides", *STAGES, "dataset.validate_interval_updates=4",
         "--finetune-overrides", *STAGES, "model.freeze_finetune_updates=0", "dataset.validate_interval_updates=4"],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "pre-training" in out and "viterbi CER" in out and "LM WER" in out
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    splits = results["corpus"]["splits"]
    left_out = sum(results["corpus"]["left_out"].values())  # counted, never dropped silently
    assert sum(s["utterances"] for s in splits.values()) + left_out == len(rows) and left_out < len(rows) // 2
    assert splits["test"]["groups"] == 1 and splits["valid"]["groups"] == 1  # whole levels held out
    for start in ("pretrained", "random init"):
        for decoder in ("viterbi", "lm"):
            assert 0 <= results["scores"][start][decoder]["cer"] <= 100 * 5  # an error rate, finite
