"""Text end to end, as a user runs it: fairseq-hydra-train with our user-dir and tiny_cpu.yaml
on binarized WordNet glosses; a killed and resumed run equals an uninterrupted one."""

import os
import re
import shutil

import pytest
import torch

from .conftest import REPO, VENV_BIN, assert_same_student_and_teacher, run_cli

pytestmark = pytest.mark.slow  # end to end: training runs

CONFIG_DIR = os.path.join(REPO, "examples", "text", "pretraining")


def train(cwd, data, save_dir, max_update, *extra):
    proc = run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", CONFIG_DIR, "--config-name",
                    "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq/", f"task.data={data}",
                    f"checkpoint.save_dir={save_dir}", f"optimization.max_update={max_update}",
                    "model.transformer.encoder.layers=2", "model.average_top_k_layers=2", "lr_scheduler.warmup_updates=2",
                    "+lr_scheduler.lr_period_updates=20", "dataset.disable_validation=true", "common.log_interval=4",
                    *extra], cwd=cwd)
    return proc.stdout + proc.stderr


def test_text_pretraining_logs_and_saves_teacher(text_corpus, tmp_path):
    log = train(tmp_path, text_corpus, tmp_path / "ckpt", 8)
    assert "ema_decay=0.99" in log and "target_var=" in log and "pred_var=" in log and "num_updates=8" in log
    state = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=False)
    assert state["cfg"]["model"]["_name"] == "data2vec_text"
    assert "encoder.sentence_encoder.layers.0.fc1.weight" in state["model"]
    assert "encoder.regression_head.0.weight" in state["model"]
    assert "_ema" in state["model"] and "_ema_updates" not in state["model"]


def test_text_resumed_run_ends_like_an_uninterrupted_one(text_corpus, tmp_path):
    train(tmp_path, text_corpus, tmp_path / "straight", 10)
    train(tmp_path, text_corpus, tmp_path / "resumed", 5)
    train(tmp_path, text_corpus, tmp_path / "resumed", 10)  # picks up checkpoint_last.pt at 5
    assert_same_student_and_teacher(tmp_path / "straight" / "checkpoint_last.pt", tmp_path / "resumed" / "checkpoint_last.pt")


FINETUNE_DIR = os.path.join(REPO, "examples", "text", "finetuning")


def finetune(cwd, data, save_dir, restore, *extra):
    return run_cli([os.path.join(VENV_BIN, "fairseq-hydra-train"), "--config-dir", FINETUNE_DIR, "--config-name",
                    "tiny_cpu", f"common.user_dir={REPO}/d2v_fairseq", f"task.data={data}", "task.num_classes=2",
                    f"checkpoint.save_dir={save_dir}", f"checkpoint.restore_file={restore}",
                    "model.transformer.encoder.layers=2", "optimization.max_update=6", "lr_scheduler.warmup_updates=2",
                    "lr_scheduler.total_num_update=6", "common.log_interval=2", "dataset.validate_interval_updates=3",
                    *extra], cwd=cwd)


def test_sentence_pair_finetuning_from_our_checkpoint(text_corpus, rte_bin, tmp_path):
    """fairseq's sentence_prediction on GLUE-format RTE pairs, started from a data2vec_text
    checkpoint: the pre-trained body is loaded, the head is new, accuracy is logged."""
    train(tmp_path, text_corpus, tmp_path / "pre", 4)
    proc = finetune(tmp_path, rte_bin, tmp_path / "ft", tmp_path / "pre" / "checkpoint_last.pt", "optimization.lr=[0.0003]")
    log = proc.stdout + proc.stderr
    assert re.search(r"valid on 'valid' subset .*\| accuracy [\d.]+", log)
    pre = torch.load(tmp_path / "pre" / "checkpoint_last.pt", weights_only=False)["model"]
    ft = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)["model"]
    assert "_ema" not in ft and not any(k.startswith("encoder.regression_head") for k in ft)
    assert "classification_heads.sentence_classification_head.out_proj.weight" in ft
    key = "encoder.sentence_encoder.layers.1.fc1.weight"
    # started from the pre-trained weights: 6 Adam steps of lr <= 3e-4 move a weight by < 0.002,
    # while two N(0, 0.02) initializations of this matrix differ by ~0.1 somewhere
    assert (ft[key] - pre[key]).abs().max() < 0.01


def test_finetuning_with_another_dictionary_says_which_sizes_differ(text_corpus, rte_bin, tmp_path):
    train(tmp_path, text_corpus, tmp_path / "pre", 2)
    data = tmp_path / "data"
    shutil.copytree(rte_bin, data)
    lines = (data / "input0" / "dict.txt").read_text().splitlines()
    (data / "input0" / "dict.txt").write_text("\n".join(lines[:-20]) + "\n")
    with pytest.raises(AssertionError, match=r"vocabulary has \d+ entries, this task's dictionary \d+"):
        finetune(tmp_path, data, tmp_path / "ft", tmp_path / "pre" / "checkpoint_last.pt")


def test_text_models_export_to_transformers(text_corpus, rte_bin, tmp_path):
    """data2vec_text -> Data2VecTextModel and the fine-tuned one -> ...ForSequenceClassification:
    transformers' own classes and tokenizer, loaded with from_pretrained, give our features and
    logits on padded sentence pairs."""
    transformers = pytest.importorskip("transformers")
    from d2v_fairseq.hub import load_checkpoint
    from d2v_fairseq.interop import export

    train(tmp_path, text_corpus, tmp_path / "pre", 2)
    finetune(tmp_path, rte_bin, tmp_path / "ft", tmp_path / "pre" / "checkpoint_last.pt",
             "optimization.max_update=2", "lr_scheduler.total_num_update=2")
    sp_model = os.path.join(text_corpus, "sentencepiece.bpe.model")
    pairs = [("a small bird that sings", "a bird"), ("the act of moving quickly from one place to another", "moving")]
    for kind, checkpoint, hf_class in (("pre", tmp_path / "pre" / "checkpoint_last.pt", "Data2VecTextModel"),
                                       ("ft", tmp_path / "ft" / "checkpoint_best.pt",
                                        "Data2VecTextForSequenceClassification")):
        written, out_dir = export(str(checkpoint), str(tmp_path / f"hf_{kind}"), sp_model=sp_model)
        assert written == hf_class
        tokenizer = transformers.AutoTokenizer.from_pretrained(out_dir)
        hf = getattr(transformers, hf_class).from_pretrained(out_dir).eval()
        ours, _, task = load_checkpoint(str(checkpoint), arg_overrides={"data": str(rte_bin if kind == "ft" else text_corpus)})
        ours.eval()
        batch = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
        # the tokenizer gives the ids fairseq gives: <s> A </s> </s> B </s>, pieces from our BPE
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=sp_model)
        d = task.source_dictionary
        a = [d.index(p) for p in sp.encode(pairs[0][0], out_type=str)]
        b = [d.index(p) for p in sp.encode(pairs[0][1], out_type=str)]
        expected_ids = [d.bos(), *a, d.eos(), d.eos(), *b, d.eos()]
        assert batch.input_ids[0, :len(expected_ids)].tolist() == expected_ids
        tokens = batch.input_ids.masked_fill(batch.input_ids >= len(d), d.unk())  # pieces fairseq reads as <unk>
        with torch.no_grad():
            if kind == "pre":
                got = hf(**batch).last_hidden_state
                want, _ = ours(tokens, features_only=True)
                real = batch.attention_mask.bool()
                assert torch.allclose(got[real], want[real], atol=1e-4)
                # every layer, as d2v_fairseq.hub.load gives them, equals transformers' hidden states
                from d2v_fairseq.hub import load

                reps = load(str(checkpoint), sp_model=sp_model)
                theirs = hf(**batch, output_hidden_states=True).hidden_states
                mine, padding = reps.hidden_states(tokens)
                assert len(mine) == len(theirs) == reps.num_layers and reps.downsample_rate == 1
                for layer, (m, t) in enumerate(zip(mine, theirs, strict=False)):
                    assert torch.allclose(m[real], t[real], atol=1e-4), (layer, (m[real] - t[real]).abs().max())
                # one sentence alone, through the checkpoint's BPE and dictionary
                single, _ = reps.batch([pairs[0][0]])
                alone, _ = reps.hidden_states(single)
                assert single[0].tolist() == [d.bos(), *a, d.eos()]
                theirs_alone = hf(input_ids=single, output_hidden_states=True).hidden_states
                assert torch.allclose(alone[-1], theirs_alone[-1], atol=1e-4)
            if kind == "pre":  # d2v features on a text file: one (layers, tokens, C) array per line
                (tmp_path / "lines.txt").write_text(f"{pairs[0][0]}\n{pairs[1][0]}\n")
                run_cli([os.path.join(VENV_BIN, "d2v"), "features", str(checkpoint), str(tmp_path / "lines.txt"),
                         str(tmp_path / "feats"), "--sp-model", sp_model])
                import numpy as np

                first = np.load(tmp_path / "feats" / "000001.npy")
                assert first.shape == (reps.num_layers, len(single[0]), mine[0].size(-1))
                assert np.abs(first[-1] - alone[-1][0].numpy()).max() < 1e-4
            else:
                got = hf(**batch).logits
                want, _ = ours(tokens, features_only=True, classification_head_name="sentence_classification_head")
                assert torch.allclose(got, want, atol=1e-4)
    assert hf.config.layer_norm_eps == 1e-5 and hf.config.max_position_embeddings == 128 + 2
