"""End to end after pre-training: CTC fine-tuning, fairseq-generate with each decoder, decoding
from Python, LM-weight tuning. Tiny budgets: this checks the plumbing, not accuracy."""

import os
import re
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf

from d2v_fairseq.data.manifest import ManifestError
from d2v_fairseq.decoding.lm import KneserNeyLM, read_sentences, write_lexicon
from d2v_fairseq.decoding.transcribe import Transcriber

from .conftest import REPO, VENV_BIN, run_cli, setup_task


@pytest.fixture(scope="module")
def finetuned(demo_corpus, tmp_path_factory):
    work = tmp_path_factory.mktemp("ft")
    run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/pretraining",
             "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={demo_corpus}",
             f"checkpoint.save_dir={work}/pre", "optimization.max_update=15", "dataset.disable_validation=true",
             "model.encoder_layers=2", "model.average_top_k_layers=2"], cwd=work)
    ft = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/finetuning",
             "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq/", f"task.data={demo_corpus}",
             f"model.w2v_path={work}/pre/checkpoint_last.pt", f"checkpoint.save_dir={work}/ft",
             "optimization.max_update=20", "dataset.validate_interval_updates=10", "checkpoint.save_interval_updates=10",
             "model.freeze_finetune_updates=5"],
            cwd=work)
    (work / "ft.log").write_text(ft.stdout + ft.stderr)
    sentences = read_sentences(os.path.join(demo_corpus, "lm.txt"))
    KneserNeyLM(sentences, order=3).write_arpa(str(work / "lm.arpa"))
    write_lexicon((w for s in sentences for w in s), str(work / "lexicon.txt"))
    return work


def generate(corpus, work, *decoder_args):
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-generate"), str(corpus), "--user-dir", f"{REPO}/d2v_fairseq",
                    "--task", "d2v_audio_ctc", "--path", f"{work}/ft/checkpoint_best.pt", "--gen-subset", "test",
                    "--scoring", "wer", "--post-process", "letter", "--labels", "ltr", "--cpu",
                    "--results-path", f"{work}/gen", "--max-tokens", "1000000", *decoder_args], cwd=work)
    return proc.stdout + proc.stderr


def test_finetuning_logs_validation_wer_and_keeps_best(finetuned):
    import torch

    log = (finetuned / "ft.log").read_text()
    wers = [float(w) for w in re.findall(r"valid on 'valid' subset .*\| wer ([\d.]+)", log)]
    assert len(wers) == 2  # validated at updates 10 and 20
    best = torch.load(finetuned / "ft" / "checkpoint_best.pt", weights_only=False)
    assert best["cfg"]["model"]["w2v_args"]["model"]["_name"] == "data2vec_audio"
    assert best["cfg"]["checkpoint"]["best_checkpoint_metric"] == "wer"
    assert best["extra_state"]["val_loss"] == pytest.approx(min(wers), abs=0.01)


@pytest.mark.parametrize(
    "decoder_args",
    [
        ["--decoder", "viterbi"],
        ["--decoder", "lexicon_beam", "--kenlm-model", "{work}/lm.arpa", "--lexicon", "{work}/lexicon.txt",
         "--ctc-beam", "8", "--kenlm-weight", "1"],
    ],
)
def test_fairseq_generate_prints_wer_and_rtf(demo_corpus, finetuned, decoder_args):
    output = generate(demo_corpus, finetuned, *[a.format(work=finetuned) for a in decoder_args])
    assert re.search(r"real-time factor so far: [\d.]+", output)
    results = open(finetuned / "gen" / "generate-test.txt").read()  # --results-path gets the WER line
    assert re.search(r"Generate test with beam=\d+: WER: [\d.]+", results)
    assert results.count("\nT-") + results.startswith("T-") == 8 and "H-" in results


def test_transcribe_one_waveform_and_tune(demo_corpus, finetuned, capsys):
    asr = Transcriber(str(finetuned / "ft" / "checkpoint_best.pt"), data_dir=demo_corpus)
    wave, rate = sf.read(os.path.join(demo_corpus, "wav", "test_0000.wav"), dtype="float32")
    assert rate == 16000
    assert isinstance(asr.transcribe(wave), str)
    asr.configure(decoder="lexicon_beam", lm_path=str(finetuned / "lm.arpa"), lexicon=str(finetuned / "lexicon.txt"))
    text = asr.transcribe(wave)
    lexicon_words = {line.split("\t")[0] for line in open(finetuned / "lexicon.txt")}
    assert set(text.split()) <= lexicon_words  # the lexicon decoder only emits known words


def test_tuning_command_reports_the_best_pair(demo_corpus, finetuned):
    proc = run_cli([sys.executable, "-m", "d2v_fairseq.decoding.transcribe", "tune", f"{finetuned}/ft/checkpoint_best.pt",
                    str(demo_corpus), "--subset", "valid", "--lm-path", f"{finetuned}/lm.arpa",
                    "--lexicon", f"{finetuned}/lexicon.txt", "--beam", "8", "--lm-weights", "0", "1",
                    "--word-scores", "0"])
    assert len(re.findall(r"lm_weight +[\d.]+ +word_score +[-\d.]+ +WER", proc.stdout)) == 2
    assert re.search(r"best: lm_weight [\d.]+ word_score [-\d.]+: WER [\d.]+ on valid", proc.stdout)


def test_finetuning_rejects_bad_labels(demo_corpus, tmp_path):
    from d2v_fairseq.tasks.audio_ctc import AudioCtcConfig, AudioCtcTask

    data = tmp_path / "data"
    shutil.copytree(demo_corpus, data, ignore=shutil.ignore_patterns("wav"))
    lines = (data / "valid.ltr").read_text().splitlines()
    lines[2] = "A B 7 |"
    (data / "valid.ltr").write_text("\n".join(lines) + "\n")
    task = setup_task(AudioCtcTask, AudioCtcConfig, data=str(data), labels="ltr")
    with pytest.raises(ManifestError, match=r"valid.ltr:3: \['7'\] not in the dictionary"):
        task.load_dataset("valid")


def test_released_format_finetuned_checkpoint_decodes(demo_corpus, finetuned):
    """A fine-tuned checkpoint as fairseq's own recipes write it (task audio_finetuning, its
    w2v_args naming audio_pretraining and data2vec_audio) decodes with our task."""
    import torch

    state = torch.load(finetuned / "ft" / "checkpoint_best.pt", weights_only=False)
    ours = {"check_audio_files", "decoder", "kenlm_model", "lexicon", "ctc_beam", "ctc_beam_threshold",
            "ctc_beam_size_token", "kenlm_weight", "word_score", "sil_score", "unk_score"}
    state["cfg"]["task"] = {k: v for k, v in state["cfg"]["task"].items() if k not in ours}
    state["cfg"]["task"]["_name"] = "audio_finetuning"
    w2v_task = state["cfg"]["model"]["w2v_args"]["task"]
    state["cfg"]["model"]["w2v_args"]["task"] = {k: v for k, v in w2v_task.items() if k != "check_audio_files"}
    state["cfg"]["model"]["w2v_args"]["task"]["_name"] = "audio_pretraining"
    released = finetuned / "released_format.pt"
    torch.save(state, released)
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-generate"), str(demo_corpus), "--user-dir", f"{REPO}/d2v_fairseq",
                    "--task", "d2v_audio_ctc", "--path", str(released), "--gen-subset", "test", "--scoring", "wer",
                    "--post-process", "letter", "--labels", "ltr", "--cpu", "--results-path", f"{finetuned}/gen_released",
                    "--max-tokens", "1000000"], cwd=finetuned)
    released_results = open(finetuned / "gen_released" / "generate-test.txt").read()
    assert re.search(r"WER: [\d.]+", released_results)
    # same weights, same decoder: the same hypotheses as our own checkpoint gives
    generate(demo_corpus, finetuned, "--decoder", "viterbi")
    ours_results = open(finetuned / "gen" / "generate-test.txt").read()
    hypos = lambda text: sorted(l.split("\t")[-1] for l in text.splitlines() if l.startswith("D-"))
    assert hypos(released_results) == hypos(ours_results)


def test_finetuning_starts_from_a_released_format_pretrained_checkpoint(demo_corpus, tmp_path):
    """model.w2v_path may point at a checkpoint written by fairseq's own data2vec_audio."""
    run_cli([sys.executable, os.path.join(REPO, "tests", "helpers", "reference_audio_checkpoint.py"), str(tmp_path)])
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", f"{REPO}/examples/audio/finetuning",
                    "--config-name", "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={demo_corpus}",
                    f"model.w2v_path={tmp_path}/checkpoint.pt", f"checkpoint.save_dir={tmp_path}/ft",
                    "optimization.max_update=4", "dataset.validate_interval_updates=4", "model.freeze_finetune_updates=2",
                    "model.mask_channel_length=4"], cwd=tmp_path)
    assert re.search(r"valid on 'valid' subset .*\| wer [\d.]+", proc.stdout + proc.stderr)
