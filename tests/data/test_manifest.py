import numpy as np
import pytest
import soundfile as sf

from d2v_fairseq.data.manifest import ManifestError, letters, read_manifest, write_letter_dict, write_split


@pytest.fixture
def audio_dir(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    sf.write(d / "ok.wav", np.zeros(1600, dtype=np.float32), 16000)
    sf.write(d / "rate.wav", np.zeros(800, dtype=np.float32), 8000)
    sf.write(d / "stereo.wav", np.zeros((1600, 2), dtype=np.float32), 16000)
    sf.write(d / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00not really a wave file at all")
    return d


def _manifest(tmp_path, audio_dir, line):
    path = tmp_path / "train.tsv"
    path.write_text(f"{audio_dir}\nok.wav\t1600\n{line}\n")
    return str(path)


@pytest.mark.parametrize(
    "line, message",
    [
        ("missing.wav\t1600", "audio file not found: .*missing.wav"),
        ("rate.wav\t800", ".*audio/rate.wav has sample rate 8000 Hz, expected 16000"),
        ("stereo.wav\t1600", ".*audio/stereo.wav has 2 channels, expected mono"),
        ("empty.wav\t1", ".*audio/empty.wav is empty"),
        ("corrupt.wav\t1600", "cannot read audio file .*corrupt.wav"),
        ("ok.wav", "expected 2 tab-separated fields .* got 1"),
        ("ok.wav\t1600\textra", "expected 2 tab-separated fields .* got 3"),
        ("ok.wav\tmany", "number of samples 'many' is not an integer"),
        ("ok.wav\t1599", ".*audio/ok.wav has 1600 samples but the manifest says 1599"),
    ],
)
def test_bad_lines_name_the_manifest_line_and_file(tmp_path, audio_dir, line, message):
    manifest = _manifest(tmp_path, audio_dir, line)
    with pytest.raises(ManifestError, match=f"^{manifest}:3: {message}"):
        read_manifest(manifest)


def test_good_manifest_reads(tmp_path, audio_dir):
    root, entries = read_manifest(_manifest(tmp_path, audio_dir, "ok.wav\t1600"))
    assert root == str(audio_dir) and [(e.path, e.num_samples, e.line) for e in entries] == [
        ("ok.wav", 1600, 2), ("ok.wav", 1600, 3)]


def test_writers_produce_fairseq_letter_format(tmp_path):
    write_split(str(tmp_path), "train", "/data", [("a.wav", 10, "HI THERE"), ("b.wav", 20, "HI")])
    assert (tmp_path / "train.tsv").read_text() == "/data\na.wav\t10\nb.wav\t20\n"
    assert (tmp_path / "train.ltr").read_text() == "H I | T H E R E |\nH I |\n"
    assert letters("AB C") == "A B | C |"
    write_letter_dict(str(tmp_path), ["HI THERE", "HI"])
    lines = (tmp_path / "dict.ltr.txt").read_text().splitlines()
    assert "| 3" in lines and "H 3" in lines and lines[-1] == "T 1"
