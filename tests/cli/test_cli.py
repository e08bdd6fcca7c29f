"""``d2v`` through its command line: every subcommand listed, a tiny real run or the one-line
error (exit status 2, no traceback) a user's mistake gets. The end-to-end tests run the long
subcommands for real (evaluate, tune-lm, transcribe, export, train, demo)."""

import os
import re
import subprocess
import sys
import zipfile

import pytest

from d2v_fairseq.cli import build_parser, main

SUBCOMMANDS = ("prepare", "transcribe", "tune-lm", "evaluate", "features", "probe", "export", "demo", "ablate", "train",
               "configs")


def d2v_process(*args, cwd=None):
    """Runs ``python -m d2v_fairseq ARGS`` in a new process; returns it (not checked)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "d2v_fairseq", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def d2v(capfd):
    """Runs ``d2v ARGS`` in this process (the subprocess tests show it works as a command too);
    returns an object with ``returncode``, ``stdout`` and ``stderr``."""

    def run(*args):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def assert_one_line_error(proc, *fragments):
    """Exit status 2, one ``d2v: error:`` line naming ``fragments``, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("d2v: error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_help_lists_every_subcommand():
    proc = d2v_process("--help")
    assert proc.returncode == 0
    listed = re.findall(r"^    (\S+)", proc.stdout, re.M)
    assert tuple(listed) == SUBCOMMANDS


def test_every_option_has_help_text():
    def walk(parser, path):
        for action in parser._actions:  # argparse keeps no public list of its actions
            if action.help is None and action.dest not in ("help",) and action.option_strings:
                yield f"{path} {action.option_strings[0]}"
            for name, child in (getattr(action, "choices", None) or {}).items() if hasattr(action, "_name_parser_map") else ():
                yield from walk(child, f"{path} {name}")

    missing = list(walk(build_parser(), "d2v"))
    assert not missing, f"options without help: {missing}"


def test_configs_prints_the_installed_root_and_checks_a_group(d2v, tmp_path):
    proc = d2v_process("configs", cwd=tmp_path)
    root = proc.stdout.strip()
    assert proc.returncode == 0 and os.path.isfile(os.path.join(root, "audio", "pretraining", "tiny_cpu.yaml"))
    assert d2v("configs", "text/finetuning").stdout.strip() == os.path.join(root, "text", "finetuning")
    assert d2v("configs", "--user-dir").stdout.strip() == os.path.dirname(root)
    assert_one_line_error(d2v("configs", "audio/nothing"), "audio/nothing", "no such config folder")


@pytest.mark.parametrize("command", ["evaluate CKPT DATA", "export CKPT OUT", "transcribe CKPT a.wav"])
def test_a_missing_checkpoint_is_one_line(d2v, tmp_path, command):
    args = command.replace("CKPT", str(tmp_path / "nothing.pt")).replace("DATA", str(tmp_path)).replace(
        "OUT", str(tmp_path / "out")).split()
    assert_one_line_error(d2v(*args), "nothing.pt", "no such checkpoint file")


def test_a_text_file_given_as_a_checkpoint_is_one_line(d2v, tmp_path):
    (tmp_path / "notes.pt").write_text("not a checkpoint\n")
    assert_one_line_error(d2v("evaluate", str(tmp_path / "notes.pt"), str(tmp_path)), "notes.pt",
                          "not a PyTorch checkpoint")
    with zipfile.ZipFile(tmp_path / "other.zip.pt", "w") as z:
        z.writestr("x", "y")
    assert_one_line_error(d2v("export", str(tmp_path / "other.zip.pt"), str(tmp_path / "o")), "other.zip.pt",
                          "not a PyTorch checkpoint")


def test_debug_shows_the_traceback(tmp_path):
    proc = d2v_process("--debug", "export", str(tmp_path / "nothing.pt"), str(tmp_path / "out"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "InputError" in proc.stderr


def test_prepare_lm_writes_an_arpa_and_a_lexicon(d2v, tmp_path):
    (tmp_path / "text.txt").write_text("the cat sat\nthe dog sat\n")
    proc = d2v("prepare", "lm", str(tmp_path / "text.txt"), str(tmp_path / "lm"), "--order", "2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "lm" / "lm.arpa").read_text().startswith("\\data\\\nngram 1=")
    assert "CAT\tC A T |" in (tmp_path / "lm" / "lexicon.txt").read_text()


def test_prepare_lm_names_the_empty_line(d2v, tmp_path):
    (tmp_path / "text.txt").write_text("the cat\n\nthe dog\n")
    assert_one_line_error(d2v("prepare", "lm", str(tmp_path / "text.txt"), str(tmp_path / "lm")),
                          "text.txt:2:", "empty line")


def test_prepare_manifest_errors_are_one_line(d2v, tmp_path):
    assert_one_line_error(d2v("prepare", "images", str(tmp_path / "none"), str(tmp_path / "out")), "none")
    assert_one_line_error(d2v("prepare", "text", str(tmp_path / "out"), "--train", str(tmp_path / "t.txt"),
                              "--valid", str(tmp_path / "v.txt")), "t.txt")
    assert_one_line_error(d2v("prepare", "librispeech-lm", str(tmp_path / "out"), "--vocab", str(tmp_path / "v")),
                          "--arpa", "--lm-text")


def test_prepare_demo_speech_synthesizes_a_tiny_corpus(d2v, tmp_path):
    proc = d2v("prepare", "demo-speech", str(tmp_path / "corpus"), "--train", "2", "--valid", "1", "--test", "1")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "corpus" / "train.tsv").read_text().splitlines()
    assert len(lines) == 3 and len((tmp_path / "corpus" / "train.ltr").read_text().splitlines()) == 2


def test_evaluate_refuses_a_pretrained_checkpoint(d2v, tmp_path):
    import torch

    # fairseq saves its config as plain containers
    cfg = {"model": {"_name": "data2vec_audio"}, "task": {"_name": "d2v_audio_pretraining"}}
    history = [{"criterion_name": "model", "optimizer_name": "adam", "lr_scheduler_state": {"best": None},
                "num_updates": 0}]
    torch.save({"cfg": cfg, "model": {}, "optimizer_history": history, "extra_state": {"train_iterator": {"epoch": 1}},
                "last_optimizer_state": None}, tmp_path / "pre.pt")
    assert_one_line_error(d2v("evaluate", str(tmp_path / "pre.pt"), str(tmp_path)), "data2vec_audio",
                          "not a fine-tuned model")


def test_demo_and_train_document_their_options(d2v):
    for args in (("demo", "speech", "--help"), ("demo", "audio-events", "--help"), ("train", "--help")):
        proc = d2v(*args)
        assert proc.returncode == 0 and "usage" in proc.stdout.lower()
