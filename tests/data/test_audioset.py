"""AudioSet's CSVs, the manifests and label files made from them, and the label checks."""

import numpy as np
import pytest
import soundfile as sf

from d2v_fairseq.data.audioset import AudioSetError, prepare_split, read_class_labels, read_label_file, read_segments

SEGMENTS = """# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
--ZhevVpy1s, 50.000, 60.000, "/m/012xff"
--aE2O5G5WE, 0.000, 10.000, "/m/03fwl"
"""
CLASSES = """index,mid,display_name
0,/m/09x0r,"Speech"
1,/t/dd00088,"Gush, gurgle"
2,/m/012xff,"Toothbrush"
3,/m/03fwl,"Goat"
"""


def write_audioset(tmp_path, on_disk=("--PJHxphWEs", "--aE2O5G5WE")):
    (tmp_path / "eval_segments.csv").write_text(SEGMENTS)
    (tmp_path / "class_labels_indices.csv").write_text(CLASSES)
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, ytid in enumerate(on_disk):
        sf.write(clips / f"{ytid}.wav", np.zeros(1600 * (i + 1), dtype=np.float32), 16000)
    return clips


def test_segment_csv_with_quoted_multi_label_fields(tmp_path):
    write_audioset(tmp_path)
    segments = read_segments(str(tmp_path / "eval_segments.csv"))
    assert [s.ytid for s in segments] == ["--PJHxphWEs", "--ZhevVpy1s", "--aE2O5G5WE"]
    assert segments[0].labels == ("/m/09x0r", "/t/dd00088") and segments[0].start == 30.0
    names, index_of = read_class_labels(str(tmp_path / "class_labels_indices.csv"))
    assert names[1] == "Gush, gurgle" and index_of["/m/03fwl"] == 3


def test_missing_clips_are_reported_and_left_out(tmp_path, capsys):
    clips = write_audioset(tmp_path)
    _, index_of = read_class_labels(str(tmp_path / "class_labels_indices.csv"))
    result = prepare_split(str(tmp_path / "eval_segments.csv"), str(clips), index_of, str(tmp_path / "out"), "eval")
    assert result == {"written": 2, "missing": ["--ZhevVpy1s"]}
    assert "1 of 3 clips are not in" in capsys.readouterr().out
    manifest = (tmp_path / "out" / "eval.tsv").read_text().splitlines()
    assert manifest[1:] == ["--PJHxphWEs.wav\t1600", "--aE2O5G5WE.wav\t3200"]
    assert (tmp_path / "out" / "eval.lbl").read_text().splitlines() == ["0 1", "3"]


def test_malformed_csv_lines_are_named(tmp_path):
    path = tmp_path / "eval_segments.csv"
    path.write_text("# header\nabc, 1.0, 2.0\n")
    with pytest.raises(AudioSetError, match=r"eval_segments\.csv:2: expected 4 fields"):
        read_segments(str(path))


def test_label_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "train.lbl"
    path.write_text("0 1\n3\n")
    with pytest.raises(AudioSetError, match=r"train\.lbl: 2 label lines but 3 clips in m\.tsv"):
        read_label_file(str(path), 3, 4, "m.tsv")
    path.write_text("0 1\n7\n")
    with pytest.raises(AudioSetError, match=r"train\.lbl:2: class index 7 outside \[0, 4\)"):
        read_label_file(str(path), 2, 4)
    path.write_text("0 1\n\n")
    with pytest.raises(AudioSetError, match=r"train\.lbl:2: no labels"):
        read_label_file(str(path), 2, 4)
    assert read_label_file(str(path), 2, 4, allow_empty=True) == [[0, 1], []]


def test_every_bad_clip_is_named_at_once_and_nothing_is_written(tmp_path):
    clips = write_audioset(tmp_path, on_disk=("--PJHxphWEs", "--ZhevVpy1s", "--aE2O5G5WE"))
    (clips / "--PJHxphWEs.wav").write_text("not audio")
    sf.write(clips / "--aE2O5G5WE.wav", np.zeros(1600, dtype=np.float32), 8000)
    _, index_of = read_class_labels(str(tmp_path / "class_labels_indices.csv"))
    with pytest.raises(AudioSetError) as err:
        prepare_split(str(tmp_path / "eval_segments.csv"), str(clips), index_of, str(tmp_path / "out"), "eval")
    text = str(err.value)
    assert text.splitlines()[0].endswith("2 of 3 clips cannot be used")
    assert "--PJHxphWEs" in text and "8000 Hz" in text and not (tmp_path / "out" / "eval.tsv").exists()
