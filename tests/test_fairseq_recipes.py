"""fairseq's own recipe files (shipped inside the installed fairseq, not copies) run with
``common.user_dir`` pointing at this package; only paths, sizes and hardware are overridden."""

import os
import re

import fairseq
import pytest
import torch

from .conftest import REPO, VENV_BIN, run_cli

pytestmark = pytest.mark.slow  # end to end: training runs

FAIRSEQ_EXAMPLES = os.path.join(os.path.dirname(fairseq.__file__), "examples")
SPEECH_PRETRAINING = os.path.join(FAIRSEQ_EXAMPLES, "data2vec", "config", "audio", "pretraining")
CTC_FINETUNING = os.path.join(FAIRSEQ_EXAMPLES, "wav2vec", "config", "finetuning")

# hardware: one CPU process, no fp16, no worker processes
CPU = ["common.fp16=false", "common.cpu=true", "distributed_training.distributed_world_size=1",
       "dataset.num_workers=0", "common.log_interval=5", "common.log_format=simple"]
# sizes: a narrow model (keys the recipe does not set take hydra's "+"), short utterances
TINY_SPEECH_MODEL = ['+model.conv_feature_layers="[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2"',
                     "+model.encoder_layers=2", "model.encoder_embed_dim=64", "+model.encoder_ffn_embed_dim=128",
                     "+model.encoder_attention_heads=4", "model.average_top_k_layers=2", "model.conv_pos=15",
                     "+model.conv_pos_groups=4"]


def hydra_train(config_dir, config_name, cwd, *overrides):
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", config_dir,
                    "--config-name", config_name, f"common.user_dir={REPO}/d2v_fairseq", *CPU, *overrides], cwd=cwd)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def recipe_pretrained(demo_corpus, tmp_path_factory):
    """fairseq's data2vec base_librispeech.yaml (criterion: model) on the demo corpus."""
    work = tmp_path_factory.mktemp("recipe")
    log = hydra_train(SPEECH_PRETRAINING, "base_librispeech", work, f"task.data={demo_corpus}",
                      f"checkpoint.save_dir={work}/pre", "dataset.max_tokens=150000", "task.min_sample_size=8000",
                      "optimization.max_update=15", *TINY_SPEECH_MODEL)
    return work, log


def test_fairseq_data2vec_speech_recipe_logs_its_keys_and_saves(recipe_pretrained):
    work, log = recipe_pretrained
    # criterion: model logs the loss and the recipe's log_keys
    lines = re.findall(r"num_updates=\d+", log)
    assert lines, log[-3000:]
    for key in ("loss", "ema_decay", "target_var", "pred_var"):
        assert re.search(rf"\b{key}=[\d.]+", log), key
    assert "num_updates=15" in log
    state = torch.load(work / "pre" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["criterion"]["_name"] == "model"
    assert state["cfg"]["model"]["_name"] == "data2vec_audio" and state["cfg"]["task"]["_name"] == "audio_pretraining"
    assert "_ema" in state["model"] and "_ema_updates" not in state["model"]


def test_fairseq_wav2vec_ctc_recipe_finetunes_our_checkpoint_and_decodes(demo_corpus, recipe_pretrained):
    """wav2vec's base_10h.yaml (audio_finetuning, wav2vec_ctc, ctc) from the recipe-pretrained
    checkpoint, then fairseq-generate with this package's task."""
    work, _ = recipe_pretrained
    log = hydra_train(CTC_FINETUNING, "base_10h", work, f"task.data={demo_corpus}", "task.normalize=true",
                      f"model.w2v_path={work}/pre/checkpoint_last.pt", f"checkpoint.save_dir={work}/ft",
                      "dataset.max_tokens=150000", "dataset.valid_subset=valid", "dataset.validate_after_updates=0",
                      "dataset.validate_interval_updates=10", "optimization.max_update=20", "optimization.update_freq=[1]",
                      "model.freeze_finetune_updates=5", "model.mask_channel_length=4")
    assert len(re.findall(r"valid on 'valid' subset .*\| wer [\d.]+", log)) == 2
    state = torch.load(work / "ft" / "checkpoint_best.pt", weights_only=False)
    assert state["cfg"]["task"]["_name"] == "audio_finetuning"
    assert state["cfg"]["model"]["w2v_args"]["model"]["_name"] == "data2vec_audio"
    run_cli([os.path.join(VENV_BIN, "fairseq-generate"), str(demo_corpus), "--user-dir", f"{REPO}/d2v_fairseq",
             "--task", "d2v_audio_ctc", "--path", f"{work}/ft/checkpoint_best.pt", "--gen-subset", "test",
             "--scoring", "wer", "--post-process", "letter", "--labels", "ltr", "--cpu",
             "--results-path", f"{work}/gen", "--max-tokens", "1000000"], cwd=work)
    results = open(work / "gen" / "generate-test.txt").read()
    assert re.search(r"WER: [\d.]+", results) and results.count("D-") == 8


def test_fairseq_data2vec_text_recipe(text_corpus, tmp_path):
    """fairseq's data2vec text base.yaml (masked_lm with the release's span masking,
    criterion: model) with this package's data2vec_text."""
    text_pretraining = os.path.join(FAIRSEQ_EXAMPLES, "data2vec", "config", "text", "pretraining")
    log = hydra_train(text_pretraining, "base", tmp_path, f"task.data={text_corpus}",
                      f"checkpoint.save_dir={tmp_path}/pre", "dataset.max_tokens=1024", "task.tokens_per_sample=64",
                      "model.transformer.max_source_positions=64", "model.transformer.encoder.embed_dim=32",
                      "model.transformer.encoder.ffn_embed_dim=64", "model.transformer.encoder.layers=2",
                      "model.transformer.encoder.attention_heads=4", "model.average_top_k_layers=2",
                      "lr_scheduler.warmup_updates=5", "optimization.max_update=10")
    assert re.search(r"num_updates=10\b", log) and re.search(r"\bloss=[\d.]+", log)
    state = torch.load(tmp_path / "pre" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["criterion"]["_name"] == "model" and state["cfg"]["task"]["mask_prob"] == 0.35
    assert state["cfg"]["model"]["_name"] == "data2vec_text" and "_ema" in state["model"]
