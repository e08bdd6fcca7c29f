"""``d2v transcribe INPUT... --output FILE`` over a corpus (d2v_fairseq.transcription): nested
folders with repeated file names and broken files, every readable recording exactly once and
equal to transcribing it alone; a kill between batches, and a line cut short, then the same
command: the uninterrupted result; 1,000 recordings killed at random moments (the seed is in any
failure's message) and run again until done: every readable one exactly once, the uninterrupted
transcripts; shards that add up to the one-process result."""

import os
import shutil
import signal
import subprocess

import pytest
import soundfile as sf

from d2v_fairseq.data.audio import read_audio
from d2v_fairseq.data.inputs import shard_range
from d2v_fairseq.hub import Transcriber

from .conftest import REPO, VENV_BIN, run_cli

pytestmark = pytest.mark.slow  # end to end: a fine-tuned model, the d2v command

FAULTS = os.path.join(REPO, "tests", "helpers", "faults")


@pytest.fixture(scope="module")
def nested(demo_corpus, tmp_path_factory):
    """A folder of the demo corpus's 16 valid and test recordings in nested folders: a/, b/ and
    b/deep/ hold files of the same names (different audio), one as FLAC; two broken files."""
    root = tmp_path_factory.mktemp("nested")
    wavs = sorted(n for n in os.listdir(os.path.join(demo_corpus, "wav")) if n.startswith(("valid", "test")))
    for i, name in enumerate(wavs):
        folder = root / ("a", "b", "b/deep")[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"rec{i // 3}.wav"
        if i == 5:
            audio, rate = sf.read(os.path.join(demo_corpus, "wav", name))
            sf.write(str(target.with_suffix(".flac")), audio, rate)
        else:
            shutil.copy(os.path.join(demo_corpus, "wav", name), target)
    (root / "a" / "broken.wav").write_text("not audio")
    whole = (root / "a" / "rec0.wav").read_bytes()
    (root / "b" / "empty.flac").write_bytes(whole[:20])
    return root


def transcribe(finetuned, *args, faults=None, check=True):
    cmd = [os.path.join(VENV_BIN, "d2v"), "transcribe", f"{finetuned}/ft/checkpoint_best.pt", *args]
    if check and not faults:
        return run_cli(cmd)
    env = dict(os.environ, OMP_NUM_THREADS="1", **(faults or {}))
    if faults:
        env["PYTHONPATH"] = FAULTS
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def read_output(path):
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(len(fields) == 2 for fields in lines), lines
    return [path for path, _ in lines], dict(lines)


def readable(root):
    return sorted(str(p) for p in root.rglob("*") if p.suffix in (".wav", ".flac") and p.name not in
                  ("broken.wav", "empty.flac"))


@pytest.fixture(scope="module")
def straight(finetuned, nested, tmp_path_factory):
    """The uninterrupted one-process result: (process, {path: transcript})."""
    out = tmp_path_factory.mktemp("straight") / "all.tsv"
    proc = transcribe(finetuned, str(nested), "--output", str(out), "--batch-size", "3")
    return proc, out


def test_every_readable_recording_once_and_as_transcribed_alone(finetuned, nested, straight, demo_corpus):
    proc, out = straight
    paths, text = read_output(out)
    assert sorted(paths) == readable(nested) and len(paths) == len(set(paths)) == 16
    for broken in ("broken.wav", "empty.flac"):
        assert any(line.startswith("WARNING:") and broken in line for line in proc.stderr.splitlines())
    failed = (out.parent / "all.tsv.failed.tsv").read_text().splitlines()
    assert sorted(os.path.basename(line.split("\t")[0]) for line in failed) == ["broken.wav", "empty.flac"]
    closing = proc.stdout.strip().splitlines()[-1]
    assert closing.startswith("16 recordings transcribed, 0 already in") and "real-time factor" in closing
    assert "h of audio" in closing and "2 unreadable" in closing
    asr = Transcriber(str(finetuned / "ft" / "checkpoint_best.pt"), data_dir=demo_corpus)
    for path in paths:  # batched with others of its length, padded: the same as alone
        assert text[path] == asr.transcribe(read_audio(path)), path


def test_a_kill_between_batches_and_a_cut_line_then_the_same_command(finetuned, nested, straight, tmp_path):
    out = tmp_path / "all.tsv"
    args = [str(nested), "--output", str(out), "--batch-size", "3"]
    killed = transcribe(finetuned, *args, faults={"D2V_TEST_KILL_AFTER_FSYNC": "2"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    written, _ = read_output(out)
    assert len(written) == 6  # two batches of three
    with open(out, "a", encoding="utf-8") as f:
        f.write(f"{written[0][:-3]}")  # a line a kill cut short
    again = transcribe(finetuned, *args)
    assert "10 recordings transcribed, 6 already in" in again.stdout
    paths, text = read_output(out)
    assert sorted(paths) == readable(nested)  # none twice, none missing, the cut line gone
    assert text == read_output(straight[1])[1]
    rerun = transcribe(finetuned, *args)
    assert "0 recordings transcribed, 16 already in" in rerun.stdout and read_output(out)[1] == text


def test_shards_split_the_input_in_order_and_add_up(finetuned, nested, straight, tmp_path):
    outputs = []
    for index in range(2):
        out = tmp_path / f"shard{index}.tsv"
        transcribe(finetuned, str(nested), "--output", str(out), "--shard", f"{index}/2")
        outputs.append(read_output(out))
    everything = sorted(str(p) for p in nested.rglob("*") if p.suffix in (".wav", ".flac"))
    start, end = shard_range(len(everything), 0, 2)  # 18 inputs, the two broken among them
    assert set(outputs[0][0]) == set(everything[start:end]) - {str(nested / "a" / "broken.wav")}
    assert {**outputs[0][1], **outputs[1][1]} == read_output(straight[1])[1]
    assert not set(outputs[0][0]) & set(outputs[1][0])


def test_a_batch_of_recordings_of_different_lengths_gives_each_its_own_emissions(finetuned, nested, demo_corpus):
    import torch

    asr = Transcriber(str(finetuned / "ft" / "checkpoint_best.pt"), data_dir=demo_corpus)
    waves = [read_audio(p) for p in readable(nested)[:4]]
    assert len({len(w) for w in waves}) == 4  # padded to the longest in the batch
    batched = asr.batch_emissions(waves)
    for wave, emitted in zip(waves, batched, strict=True):
        source = torch.from_numpy(wave)
        source = torch.nn.functional.layer_norm(source, source.shape) if asr.normalize else source
        alone = asr.emissions(source[None])[0]
        assert emitted.shape == alone.shape and torch.allclose(emitted, alone, atol=1e-4)


def test_bf16_transcribes_as_fp32(finetuned, nested, demo_corpus, tmp_path):
    import torch

    full = Transcriber(str(finetuned / "ft" / "checkpoint_best.pt"), data_dir=demo_corpus)
    half = Transcriber(str(finetuned / "ft" / "checkpoint_best.pt"), data_dir=demo_corpus, precision="bf16")
    waves = [read_audio(p) for p in readable(nested)[:6]]
    for a, b in zip(full.batch_emissions(waves), half.batch_emissions(waves), strict=True):
        assert b.dtype == torch.float32 and a.shape == b.shape
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.95  # the frames' best letters
    out = tmp_path / "bf16.tsv"
    transcribe(finetuned, str(nested), "--output", str(out), "--precision", "bf16")
    assert read_output(out)[1] == {p: full.transcribe(read_audio(p)) for p in readable(nested)}


@pytest.fixture(scope="module")
def thousand(nested, tmp_path_factory):
    """1,000 recordings in 25 folders two deep (``dNN/sM/``, the same 40 names in each), links to
    the 16 readable recordings of ``nested`` cycled, and two broken files among them."""
    root = tmp_path_factory.mktemp("thousand")
    sources = readable(nested)
    for i in range(1000):
        folder = root / f"d{i // 200}" / f"s{i // 40 % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        source = sources[i % len(sources)]
        os.link(source, folder / f"r{i % 40:02d}{os.path.splitext(source)[1]}")
    broken = [root / "d1" / "s2" / "r07.wav", root / "d4" / "s0" / "r33.wav"]
    for path in broken:
        path.unlink()
        path.write_bytes(b"RIFF" + bytes(40))  # a header and no audio
    return root, [str(p) for p in broken]


def lines_in(path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def run_until_written(cmd, out, before: int):
    """Starts ``cmd`` and returns (the process, seconds) once ``out`` holds more than ``before``
    lines, or the process has ended."""
    import time

    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while lines_in(out) <= before and proc.poll() is None:
        time.sleep(0.01)
    return proc, time.monotonic() - began


def test_a_thousand_recordings_killed_at_random_moments_end_as_one_uninterrupted_run(finetuned, thousand, tmp_path):
    import random
    import time

    root, broken = thousand
    command = [os.path.join(VENV_BIN, "d2v"), "transcribe", f"{finetuned}/ft/checkpoint_best.pt", str(root),
               "--batch-size", "8", "--output"]
    straight, killed = tmp_path / "straight.tsv", tmp_path / "killed.tsv"
    proc, _ = run_until_written(command + [str(straight)], straight, 0)
    began = time.monotonic()
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    writing = time.monotonic() - began  # seconds from the first line written to the end
    paths, expected = read_output(straight)
    every = sorted(str(p) for p in root.rglob("*") if p.is_file())
    assert len(every) == 1000 and sorted(paths) == sorted(set(every) - set(broken)) and len(paths) == 998
    assert "998 recordings transcribed" in stdout and lines_in(tmp_path / "straight.tsv.failed.tsv") == 2

    seed = random.randrange(10**6)
    draw = random.Random(seed)
    written = []  # lines on disk after each kill
    for _ in range(8):  # the same command again each time, killed at a random moment once it writes
        if sum(0 < n < 998 for n in written) >= 2:
            break
        before = lines_in(killed)
        proc, _ = run_until_written(command + [str(killed)], killed, before)
        try:
            proc.wait(timeout=draw.uniform(0, 0.8 * writing * (998 - before) / 998))
            for path in (killed, tmp_path / "killed.tsv.failed.tsv"):  # it ended first: start again
                path.unlink()
            written.clear()
        except subprocess.TimeoutExpired:
            proc.kill()
            assert proc.wait() == -signal.SIGKILL
            written.append(lines_in(killed))
    assert sum(0 < n < 998 for n in written) >= 2, f"seed {seed}: lines after each kill {written}"
    last = transcribe(finetuned, str(root), "--batch-size", "8", "--output", str(killed))
    assert f"{998 - written[-1]} recordings transcribed, {written[-1]} already in" in last.stdout, last.stdout
    paths, text = read_output(killed)
    assert len(paths) == len(set(paths)) == 998, f"seed {seed}, lines after each kill: {written}"
    assert text == expected, f"seed {seed}"
    failed = sorted(line.split("\t")[0] for line in (tmp_path / "killed.tsv.failed.tsv").read_text().splitlines())
    assert failed == sorted(broken)
