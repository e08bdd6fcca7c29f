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


@pytest.fixture
def broken_corpus(tmp_path):
    """16 one-second recordings in a manifest, 3 of them broken: a text file named .wav (line 4),
    a WAV cut in half (line 9), a FLAC whose body is garbage behind a good header (line 14)."""
    d = tmp_path / "clips"
    d.mkdir()
    rng = np.random.RandomState(0)
    names = []
    for i in range(16):
        name = f"{i}.flac" if i == 12 else f"{i}.wav"
        sf.write(d / name, (rng.randn(16000) * 0.1).astype(np.float32), 16000)
        names.append(name)
    (d / "2.wav").write_text("not audio\n")
    data = (d / "7.wav").read_bytes()
    (d / "7.wav").write_bytes(data[: len(data) // 2])
    flac = bytearray((d / "12.flac").read_bytes())
    flac[300:] = bytes((i * 7919) % 256 for i in range(300, len(flac)))
    (d / "12.flac").write_bytes(bytes(flac))
    manifest = tmp_path / "train.tsv"
    manifest.write_text(f"{d}\n" + "".join(f"{n}\t16000\n" for n in names))
    return manifest


def test_every_broken_header_is_named_at_once(broken_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("D2V_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ManifestError) as err:
        read_manifest(str(broken_corpus))
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{broken_corpus}: 2 of 16 lines cannot be used (task.skip_bad=true")
    assert f"{broken_corpus}:4: cannot read audio file" in lines[1]
    assert f"{broken_corpus}:9: " in lines[2] and "7989 samples but the manifest says 16000" in lines[2]
    assert len(lines) == 3  # the FLAC's header is fine: only decoding finds it


def test_headers_are_cached_by_size_and_mtime(broken_corpus, tmp_path, monkeypatch):
    from d2v_fairseq.data import manifest as manifest_module

    monkeypatch.setenv("D2V_CACHE", str(tmp_path / "cache"))
    (broken_corpus.parent / "clips" / "2.wav").unlink()
    (broken_corpus.parent / "clips" / "7.wav").unlink()
    lines = broken_corpus.read_text().splitlines()
    broken_corpus.write_text("\n".join(l for l in lines if not l.startswith(("2.wav", "7.wav"))) + "\n")
    _, first = read_manifest(str(broken_corpus))
    monkeypatch.setattr(manifest_module.sf, "info", lambda path: (_ for _ in ()).throw(RuntimeError("opened")))
    _, again = read_manifest(str(broken_corpus))  # no header opened: all from the cache
    assert len(first) == len(again) == 14
    sf.write(broken_corpus.parent / "clips" / "0.wav", np.zeros(8000, dtype=np.float32), 16000)  # changed file
    with pytest.raises(ManifestError, match=":2: cannot read audio file .*opened"):
        read_manifest(str(broken_corpus))


def test_skip_bad_leaves_them_out_and_decoding_failures_skip_the_item(broken_corpus, tmp_path, monkeypatch):
    from fairseq.data.audio.raw_audio_dataset import FileAudioDataset

    from d2v_fairseq.data.manifest import UNDECODABLE, check_split

    monkeypatch.setenv("D2V_CACHE", str(tmp_path / "cache"))
    checked = check_split(str(broken_corpus), True, skip_bad=True, bad_list=str(tmp_path / "train.bad.tsv"))
    assert checked.left_out == {2, 7}
    assert len((tmp_path / "train.bad.tsv").read_text().splitlines()) == 2
    dataset = checked.lenient(FileAudioDataset(str(broken_corpus), sample_rate=16000))
    assert dataset[2]["source"] is None and dataset[7]["source"] is None and dataset[0]["source"].shape == (16000,)
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # fairseq's reader retries with pauses
    assert dataset[12]["source"] is None and "12.flac" in UNDECODABLE[-1]
    batch = dataset.collater([dataset[i] for i in (0, 2, 12)])
    assert batch["id"].tolist() == [0]


def test_verify_decodes_everything(broken_corpus, tmp_path, monkeypatch):
    from d2v_fairseq.data.manifest import verify_manifest

    monkeypatch.setenv("D2V_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ManifestError) as err:
        verify_manifest(str(broken_corpus))
    text = str(err.value)
    assert "3 of 16 lines" in text and ":14: " in text and "does not decode" in text


def test_prepare_verify_names_every_bad_line_and_exits_2(broken_corpus, tmp_path, monkeypatch, capsys):
    from d2v_fairseq.cli import main

    monkeypatch.setenv("D2V_CACHE", str(tmp_path / "cache"))
    assert main(["prepare", "verify", str(broken_corpus)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("d2v: error: 1 manifest(s): 3 lines cannot be used")
    assert ":4: " in err and ":9: " in err and ":14: " in err and "Traceback" not in err


def test_batches_cover_every_item_where_fairseqs_batch_by_size_drops_the_last(tmp_path):
    import numpy as np
    from fairseq.data import FairseqDataset

    from d2v_fairseq.data.manifest import LenientAudio

    class Sized(FairseqDataset):
        def __init__(self, sizes):
            self.sizes = np.array(sizes)

        def __len__(self):
            return len(self.sizes)

        def num_tokens(self, index):
            return int(self.sizes[index])

    # the demo corpus's test set: fairseq-generate's batches of 60k samples, multiple of 8
    sizes = [16698, 33926, 15287, 15949, 17322, 25489, 25055, 23409]
    order = np.argsort(sizes)[::-1]
    theirs = [list(b) for b in Sized(sizes).batch_by_size(order, max_tokens=60000, required_batch_size_multiple=8)]
    ours = [list(b) for b in LenientAudio(Sized(sizes)).batch_by_size(order, max_tokens=60000,
                                                                        required_batch_size_multiple=8)]
    assert ours[: len(theirs)] == theirs  # fairseq's batches as they were, then what they left out
    assert sorted(int(i) for b in ours for i in b) == list(range(8))
    assert all(sum(1 for _ in b) * max(sizes[i] for i in b) <= 60000 for b in ours)
