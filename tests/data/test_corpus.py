"""Importing a user's speech corpus: every input layout, rates and channels, text normalization,
splits, each class of bad input (stopped with file and line, or counted with skip_bad), re-runs."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from d2v_fairseq.data.corpus import (CorpusError, TextOptions, format_summary, import_corpus, labeled_subset,
                                     normalize_text)
from d2v_fairseq.data.manifest import read_lines, read_manifest


def tone(path, rate=16000, seconds=0.5, channels=1, seed=0):
    """A short noise burst at ``rate`` with ``channels``, written as ``path`` (format by suffix)."""
    rng = np.random.default_rng(seed)
    sf.write(str(path), (0.1 * rng.standard_normal((int(rate * seconds), channels))).astype("float32"), rate)


def write_table(path, rows, header=("path", "text", "speaker"), delimiter="\t"):
    path.write_text("\n".join(delimiter.join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def table(tmp_path):
    """12 recordings at 8, 22.05, 44.1 and 48 kHz, mono and stereo, wav and ogg, 4 speakers."""
    rows = []
    for i, (rate, channels) in enumerate([(8000, 1), (22050, 2), (44100, 1), (48000, 2)] * 3):
        name = f"clips/a{i}.{'ogg' if i % 2 else 'wav'}"
        os.makedirs(tmp_path / "clips", exist_ok=True)
        tone(tmp_path / name, rate, 0.5, channels, seed=i)
        rows.append((name, f"Hallo wereld, één keer {i}!", f"spk{i % 4}"))
    return write_table(tmp_path / "corpus.tsv", rows)


def test_table_at_any_rate_and_channel_count_becomes_16k_mono_manifests(table, tmp_path):
    result = import_corpus(table, str(tmp_path / "out"), group_column="speaker", workers=1, progress=False)
    summary = result.summary()
    assert sum(s["utterances"] for s in summary["splits"].values()) == 12 and not summary["left_out"]
    for split in ("train", "valid", "test"):
        root, entries = read_manifest(str(tmp_path / "out" / f"{split}.tsv"))  # checks 16 kHz mono headers
        assert all(e.num_samples == 8000 for e in entries)
        assert len(read_lines(str(tmp_path / "out" / f"{split}.ltr"))) == len(entries)
    assert read_lines(str(tmp_path / "out" / "train.wrd"))[0].startswith("HALLO WERELD ÉÉN KEER")
    # whole speakers per split
    speakers = {split: {u.group for u in result.splits[split]} for split in ("train", "valid", "test")}
    assert not (speakers["train"] & speakers["valid"]) and not (speakers["train"] & speakers["test"])
    assert summary["splits"]["train"]["groups"] == 2 and summary["splits"]["test"]["groups"] == 1
    # the letter dictionary and the LM come from train
    symbols = [line.split()[0] for line in read_lines(str(tmp_path / "out" / "dict.ltr.txt"))]
    assert "|" in symbols and "É" in symbols and "1" not in symbols
    assert (tmp_path / "out" / "lm" / "lm.arpa").read_text().startswith("\\data\\")
    assert "HALLO\tH A L L O |" in (tmp_path / "out" / "lm" / "lexicon.txt").read_text()
    assert json.loads((tmp_path / "out" / "corpus.json").read_text())["letters"] == result.letters


def test_resampled_audio_keeps_the_signal(tmp_path):
    t = np.arange(44100) / 44100
    sf.write(str(tmp_path / "sine.wav"), np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1).astype("float32") * 0.5, 44100)
    table = write_table(tmp_path / "c.tsv", [("sine.wav", "a")], header=("path", "text"))
    result = import_corpus(table, str(tmp_path / "out"), valid_share=0, test_share=0, workers=1, progress=False)
    audio, rate = sf.read(str(tmp_path / "out" / "audio" / result.splits["train"][0].audio))
    assert rate == 16000 and audio.ndim == 1 and len(audio) == 16000
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone is still at 440 Hz


def test_a_rerun_converts_nothing_and_writes_the_same(table, tmp_path):
    first = import_corpus(table, str(tmp_path / "out"), group_column="speaker", workers=1, progress=False)
    manifest = (tmp_path / "out" / "train.tsv").read_text()
    again = import_corpus(table, str(tmp_path / "out"), group_column="speaker", workers=1, progress=False)
    assert first.converted == 12 and again.converted == 0
    assert (tmp_path / "out" / "train.tsv").read_text() == manifest


def test_splits_repeat_for_a_seed_and_change_with_it(table, tmp_path):
    def split_of(seed, out):
        result = import_corpus(table, str(tmp_path / out), group_column="speaker", seed=seed, workers=1, progress=False)
        return {u.source: s for s, items in result.splits.items() for u in items}

    assert split_of(1, "a") == split_of(1, "b")
    assert any(split_of(s, f"s{s}") != split_of(1, "a") for s in (2, 3, 4))


def test_given_split_column_and_common_voice_csv(tmp_path):
    tone(tmp_path / "x.wav")
    tone(tmp_path / "y.wav", seed=1)
    tone(tmp_path / "z.wav", seed=2)
    (tmp_path / "cv.csv").write_text('client_id,path,sentence,split\n'
                                     'c1,x.wav,"Hello, world",train\nc2,y.wav,"world, hello",dev\nc3,z.wav,hello,test\n')
    result = import_corpus(str(tmp_path / "cv.csv"), str(tmp_path / "out"), text_column="sentence",
                           split_column="split", workers=1, progress=False)
    assert [len(result.splits[s]) for s in ("train", "valid", "test")] == [1, 1, 1]
    assert result.splits["train"][0].extra["client_id"] == "c1"
    assert read_lines(str(tmp_path / "out" / "valid.wrd")) == ["WORLD HELLO"]


def test_kaldi_directory_groups_by_speaker_and_refuses_pipes(tmp_path):
    data = tmp_path / "kaldi"
    data.mkdir()
    for i in range(6):
        tone(tmp_path / f"u{i}.flac", 16000, 0.3, seed=i)
    (data / "wav.scp").write_text("".join(f"utt{i} {tmp_path}/u{i}.flac\n" for i in range(6)))
    (data / "text").write_text("".join(f"utt{i} word number {i}\n" for i in range(6)))
    (data / "utt2spk").write_text("".join(f"utt{i} s{i // 2}\n" for i in range(6)))
    result = import_corpus(str(data), str(tmp_path / "out"), workers=1, progress=False)
    assert {u.group for items in result.splits.values() for u in items} == {"s0", "s1", "s2"}
    assert all(len({u.group for u in items}) <= 2 for items in result.splits.values())
    (data / "wav.scp").write_text("utt0 sox in.wav -t wav - |\n")
    with pytest.raises(CorpusError, match=r"wav.scp:1: .*piped command"):
        import_corpus(str(data), str(tmp_path / "out2"), workers=1, progress=False)


def test_folder_with_transcripts_and_unlabeled_files(tmp_path):
    folder = tmp_path / "rec"
    for i in range(4):
        (folder / f"spk{i % 2}").mkdir(parents=True, exist_ok=True)
        tone(folder / f"spk{i % 2}" / f"r{i}.wav", 16000, 0.2, seed=i)
        (folder / f"spk{i % 2}" / f"r{i}.txt").write_text(f"take {i}\n")
    tone(folder / "spk0" / "extra.wav", 16000, 0.2, seed=9)  # no transcript: pre-training only
    result = import_corpus(str(folder), str(tmp_path / "out"), valid_share=0, test_share=0.5, workers=1, progress=False)
    assert len(result.unlabeled) == 1 and sum(len(v) for v in result.splits.values()) == 4
    _, pretrain = read_manifest(str(tmp_path / "out" / "pretrain.tsv"))
    assert len(pretrain) == len(result.splits["train"]) + 1


def test_a_table_without_transcripts_is_a_pretraining_corpus(tmp_path):
    for i in range(5):
        tone(tmp_path / f"u{i}.wav", seed=i)
    table = write_table(tmp_path / "c.tsv", [(f"u{i}.wav",) for i in range(5)], header=("path",))
    result = import_corpus(table, str(tmp_path / "out"), workers=1, progress=False)
    assert not result.splits and len(result.unlabeled) == 5
    _, train = read_manifest(str(tmp_path / "out" / "train.tsv"))
    _, valid = read_manifest(str(tmp_path / "out" / "valid.tsv"))
    assert len(train) + len(valid) == 5 and not (tmp_path / "out" / "train.ltr").exists()


@pytest.fixture
def bad_table(tmp_path):
    """One good row per split and one row of each kind of bad input."""
    for name in ("good1", "good2", "good3", "dup", "zeer"):
        tone(tmp_path / f"{name}.wav", seed=len(name))
    (tmp_path / "notaudio.wav").write_text("this is text, not audio\n")
    sf.write(str(tmp_path / "empty.wav"), np.zeros((0, 1), dtype="float32"), 16000)
    tone(tmp_path / "whole.wav", seed=9)
    whole = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])  # its header promises twice what it holds
    rows = [
        ("good1.wav", "goed", "train"),          # 2
        ("good2.wav", "goed", "valid"),          # 3
        ("good3.wav", "goed", "test"),           # 4
        ("missing.wav", "goed", "train"),        # 5: missing audio
        ("notaudio.wav", "goed", "train"),       # 6: unreadable audio
        ("empty.wav", "goed", "train"),          # 7: empty audio
        ("dup.wav", "?!", "train"),              # 8: empty transcript
        ("good1.wav", "goed", "train"),          # 9: duplicate path
        ("zeer.wav", "zeer", "test"),            # 10: letters Z, R never in train
        ("good2.wav", "goed"),                   # 11: wrong number of columns
        ("cut.wav", "goed", "train"),            # 12: cut-short audio
    ]
    return write_table(tmp_path / "bad.tsv", rows, header=("path", "text", "split"))


@pytest.mark.parametrize("line,reason", [(5, "missing audio"), (6, "unreadable audio"), (7, "empty audio"),
                                         (8, "empty transcript"), (9, "duplicate path"),
                                         (10, "letter not in training"), (11, "wrong number of columns"),
                                         (12, "cut-short audio: .*cut.wav: cut short: its header says")])
def test_each_bad_row_stops_the_import_naming_file_and_line(bad_table, tmp_path, line, reason):
    lines = open(bad_table).read().splitlines()
    keep = [lines[0]] + [l for n, l in enumerate(lines[1:], start=2) if n < 5 or n == line]
    (tmp_path / "one_bad.tsv").write_text("\n".join(keep) + "\n")
    # the bad row moves to line 5 of the cut-down table
    with pytest.raises(CorpusError, match=rf"one_bad.tsv:5: {reason}"):
        import_corpus(str(tmp_path / "one_bad.tsv"), str(tmp_path / "out"), split_column="split", workers=1,
                      progress=False)


def test_skip_bad_leaves_them_out_and_counts_each_reason(bad_table, tmp_path):
    result = import_corpus(bad_table, str(tmp_path / "out"), split_column="split", skip_bad=True, workers=1,
                           progress=False)
    left = result.summary()["left_out"]
    assert left == {"wrong number of columns": 1, "duplicate path": 1, "missing audio": 1, "unreadable audio": 1,
                    "empty audio": 1, "empty transcript": 1, "letter not in training": 1, "cut-short audio": 1}
    assert [len(result.splits[s]) for s in ("train", "valid", "test")] == [1, 1, 1]
    assert any("bad.tsv:10" in row for row in result.left_out["letter not in training"])


def test_normalization_keeps_letters_of_any_script():
    assert normalize_text("Één keer, z'n 2 ogen!") == "ÉÉN KEER Z'N OGEN"
    assert normalize_text("Één keer, z'n 2 ogen!", TextOptions("lower", keep_punctuation=True, keep_digits=True)) \
        == "één keer, z'n 2 ogen!"
    assert normalize_text("Привет, мир — Γειά σου") == "ПРИВЕТ МИР ΓΕΙΆ ΣΟΥ"
    assert normalize_text("cafe\u0301 'quoted' a|b") == "CAFÉ QUOTED A B"  # NFC; quotes around a word go


def test_labeled_subset_takes_minutes_of_train(table, tmp_path):
    import_corpus(table, str(tmp_path / "out"), group_column="speaker", workers=1, progress=False)
    name = labeled_subset(str(tmp_path / "out"), minutes=0.02)  # 1.2 s: three 0.5 s clips
    _, entries = read_manifest(str(tmp_path / "out" / f"{name}.tsv"))
    assert name == "train_0.02min" and len(entries) == 3
    assert len(read_lines(str(tmp_path / "out" / f"{name}.ltr"))) == 3


def test_scripts_are_named_counted_and_kept_on_request(tmp_path):
    os.makedirs(tmp_path / "clips")
    rows = []
    for i in range(8):
        tone(tmp_path / f"clips/c{i}.wav", seed=i)
        text = "Příliš žluťoučký kůň" if i != 5 else "Жёлтый кот. Příliš žluťoučký kůň"
        rows.append((f"clips/c{i}.wav", text, "train"))
    table = write_table(tmp_path / "corpus.tsv", rows, header=("path", "text", "split"))
    result = import_corpus(table, str(tmp_path / "out"), split_column="split", workers=1, progress=False)
    scripts = result.summary()["scripts"]
    assert list(scripts) == ["LATIN", "CYRILLIC"]  # most rows first
    assert scripts["LATIN"]["rows"] == 8 and scripts["CYRILLIC"]["rows"] == 1  # a row counts for both
    assert scripts["CYRILLIC"]["examples"] == [f"{table}:7"] and set(scripts["CYRILLIC"]["letters"]) == set("ЖЁЛТЫЙКО")
    text = format_summary(result.summary())
    assert "CYRILLIC 1 row(s), 8 letters: " + f"{table}:7" in text and "--keep-script" in text

    kept = import_corpus(table, str(tmp_path / "latin"), split_column="split", workers=1, progress=False,
                         keep_scripts=["latin"])
    assert len(kept.splits["train"]) == 7 and kept.summary()["left_out"] == {"other script": 1}
    assert kept.left_out["other script"][0].startswith(f"{table}:7: CYRILLIC letters")
    assert not any(ch in "ЖЁЛТЫЙКО" for ch in kept.letters)
    with pytest.raises(CorpusError, match="--keep-script GREEK: no transcript holds such letters"):
        import_corpus(table, str(tmp_path / "g"), split_column="split", workers=1, progress=False,
                      keep_scripts=["GREEK"])


def test_summary_gives_durations_per_split(table, tmp_path):
    result = import_corpus(table, str(tmp_path / "out"), group_column="speaker", workers=1, progress=False)
    seconds = result.summary()["splits"]["train"]["seconds"]
    assert seconds["min"] == seconds["median"] == seconds["max"] == 0.5
    assert "train durations: min 0.50 s, median 0.50 s, max 0.50 s" in format_summary(result.summary())


def test_every_bad_row_is_named_in_one_error(bad_table, tmp_path):
    with pytest.raises(CorpusError) as err:
        import_corpus(bad_table, str(tmp_path / "out"), split_column="split", workers=1, progress=False)
    message = str(err.value)
    assert message.splitlines()[0].startswith(f"{bad_table}: 8 of 11 rows cannot be used")
    for line in (5, 6, 7, 8, 9, 10, 11, 12):
        assert f"bad.tsv:{line}:" in message
    assert not (tmp_path / "out" / "train.tsv").exists()  # nothing written


def test_skip_bad_lists_what_it_left_out(bad_table, tmp_path):
    import_corpus(bad_table, str(tmp_path / "out"), split_column="split", skip_bad=True, workers=1, progress=False)
    rows = (tmp_path / "out" / "left_out.tsv").read_text().splitlines()
    assert rows[0] == "reason\trow" and len(rows) == 9
    assert any(r.startswith("unreadable audio\t") and "bad.tsv:6" in r for r in rows)
