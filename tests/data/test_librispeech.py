import numpy as np
import pytest
import soundfile as sf

from d2v_fairseq.data.librispeech import subset_items
from d2v_fairseq.data.manifest import ManifestError


def _fake_librispeech(root, text_lines, make_audio=True):
    chapter = root / "dev-clean" / "84" / "121123"
    chapter.mkdir(parents=True)
    (chapter / "84-121123.trans.txt").write_text("\n".join(text_lines) + "\n")
    if make_audio:
        for i in range(2):
            sf.write(chapter / f"84-121123-000{i}.flac", np.zeros(1600 * (i + 1), dtype=np.float32), 16000)
    return root


def test_subset_items_from_a_local_copy(tmp_path):
    root = _fake_librispeech(tmp_path, ["84-121123-0000 GO DO YOU HEAR", "84-121123-0001 BUT IN LESS"])
    items = subset_items(str(root), "dev-clean")
    assert items == [
        ("dev-clean/84/121123/84-121123-0000.flac", 1600, "GO DO YOU HEAR"),
        ("dev-clean/84/121123/84-121123-0001.flac", 3200, "BUT IN LESS"),
    ]


def test_transcript_without_audio_names_the_transcript_line(tmp_path):
    root = _fake_librispeech(tmp_path, ["84-121123-0000 GO", "84-121123-0001 BUT", "84-121123-0002 LOST"])
    with pytest.raises(ManifestError, match=r"84-121123.trans.txt:3: audio file not found"):
        subset_items(str(root), "dev-clean")


def test_malformed_transcript_line(tmp_path):
    root = _fake_librispeech(tmp_path, ["84-121123-0000 GO", "84-121123-0001"])
    with pytest.raises(ManifestError, match=r"trans.txt:2: expected 'UTTERANCE-ID TRANSCRIPT'"):
        subset_items(str(root), "dev-clean")
