"""data2vec_text on the shared core: masking from fairseq's masked_lm, targets, loss, teacher."""

import copy

import pytest
import torch
import torch.nn.functional as F
from fairseq.models import MODEL_REGISTRY

from d2v_fairseq.models.data2vec_text import Data2VecTextModel

from ..conftest import masked_lm_task, tiny_text_model


@pytest.fixture(scope="module")
def task(text_corpus):
    t = masked_lm_task(text_corpus)
    t.load_dataset("train")
    return t


def batch(task, n=8, epoch=1):
    """The first ``n`` samples that fit the model's 64 positions (complete_doc keeps a
    sentence longer than a block whole; training skips those)."""
    dataset = task.dataset("train")
    dataset.set_epoch(epoch)
    fitting = [i for i in range(len(dataset)) if dataset.size(i) <= 64][:n]
    return dataset.collater([dataset[i] for i in fitting])


def test_registered_under_the_released_name():
    assert MODEL_REGISTRY["data2vec_text"] is Data2VecTextModel


def test_bert_masking_fractions(task):
    """15% of the real tokens chosen; of those 80% <mask>, 10% random, 10% unchanged."""
    dataset, pad, mask_idx = task.dataset("train"), task.source_dictionary.pad(), task.mask_idx
    chosen = masked = kept = real = 0
    for epoch in (1, 2, 3):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            item = dataset[i]
            src, tgt = item["net_input.src_tokens"], item["target"]
            sel = tgt.ne(pad)
            real += int(src.ne(pad).sum()) - 2  # <s> and </s> are never chosen
            chosen += int(sel.sum())
            masked += int(src[sel].eq(mask_idx).sum())
            kept += int(src[sel].eq(tgt[sel]).sum())
    assert chosen > 20000
    assert abs(chosen / real - 0.15) < 0.01
    assert abs(masked / chosen - 0.8) < 0.03 and abs(kept / chosen - 0.1) < 0.03
    assert abs((chosen - masked - kept) / chosen - 0.1) < 0.03  # random replacements


def test_teacher_sees_the_unmasked_tokens_and_student_the_masked(task):
    """Unlike fairseq's implementation (its teacher gets target_tokens: padding outside the
    masked positions, fairseq issue #4881), the teacher encodes the original sequence."""
    model = tiny_text_model(task).train()
    sample = batch(task)
    seen = {}
    encode_teacher = model.encode_teacher

    def spy(features, padding, blocks):
        seen["teacher_input"] = features
        return encode_teacher(features, padding, blocks)

    model.encode_teacher = spy
    model.set_num_updates(0)
    out = model(**sample["net_input"])
    src = sample["net_input"]["src_tokens"]
    full = torch.where(sample["target"].ne(task.source_dictionary.pad()), sample["target"], src)
    assert torch.equal(seen["teacher_input"], model.embed_tokens(full).detach().float())
    assert not torch.equal(full, src)
    assert out["sample_size"] == int(sample["target"].ne(task.source_dictionary.pad()).sum())


def test_targets_are_the_layer_normed_ffn_outputs_of_the_top_k_blocks(task):
    model = tiny_text_model(task, average_top_k_layers=2).eval()
    tokens = batch(task)["net_input"]["src_tokens"]
    features, padding = model.embed(tokens, None)
    targets = model.make_targets(features, padding)
    # by hand, with fairseq's own layer forward returning its fc2 result
    layers = copy.deepcopy(model.body.layers)
    x = features.masked_fill(padding.unsqueeze(-1), 0).transpose(0, 1) if padding is not None else features.transpose(0, 1)
    ffn = []
    for layer in layers:
        layer.return_fc = True
        x, fc = layer(x, padding)
        ffn.append(F.layer_norm(fc.transpose(0, 1), (32,)))
    expected = (ffn[-1] + ffn[-2]) / 2
    assert torch.allclose(targets, expected, atol=1e-5)


def test_smooth_l1_beta_4_scale_1_by_hand(task):
    model = tiny_text_model(task).train()
    model.set_num_updates(0)
    out = model(**batch(task)["net_input"])
    d = (out["pred"] - out["target"]).abs()
    by_hand = torch.where(d < 4, 0.5 * d ** 2 / 4, d - 2).sum()
    assert out["losses"]["regression"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert (model.cfg.loss_beta, model.cfg.loss_scale) == (4.0, 1.0)


def test_teacher_gets_no_gradient_and_shares_the_embeddings(task):
    model = tiny_text_model(task).train()
    model.set_num_updates(0)
    out = model(**batch(task)["net_input"])
    out["losses"]["regression"].backward()
    teacher = model.teacher.model
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(k.startswith("layers.") for k in teacher.state_dict())  # blocks only: embeddings shared
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert "encoder.sentence_encoder.embed_tokens.weight" in grads and "encoder.regression_head.0.weight" in grads
    # the EMA step moves the teacher towards the student
    before = copy.deepcopy(teacher.state_dict())
    with torch.no_grad():
        for p in model.body.layers.parameters():
            p.add_(1.0)
    model.set_num_updates(1)
    after, tau = teacher.state_dict(), model.ema_decay()
    assert tau == pytest.approx(0.999 + 0.0009 / 10)  # 0.999 -> 0.9999 over 10 updates
    key = "layers.0.fc1.weight"
    assert torch.allclose(after[key], before[key] * tau + (before[key] + 1.0) * (1 - tau), atol=1e-6)


def test_roberta_style_calls(task):
    model = tiny_text_model(task).eval()
    tokens = batch(task)["net_input"]["src_tokens"]
    x, extra = model(tokens, features_only=True)
    assert x.shape == (*tokens.shape, 32)
    y, states = model.extract_features(tokens, return_all_hiddens=True)
    assert torch.equal(x, y) and len(states["inner_states"]) == 4
    model.register_classification_head("demo", num_classes=5)
    logits, _ = model(tokens, features_only=True, classification_head_name="demo")
    assert logits.shape == (tokens.size(0), 5)
    with pytest.raises(ValueError, match="include_target_tokens"):
        model(tokens)


def test_mean_pooling_classifier_reads_the_mean_of_the_non_padding_outputs(task):
    model = tiny_text_model(task, classifier_pooling="mean").eval()
    tokens = batch(task)["net_input"]["src_tokens"]
    assert tokens.eq(task.dictionary.pad()).any()  # the batch has padding
    model.register_classification_head("demo", num_classes=3)
    logits, _ = model(tokens, features_only=True, classification_head_name="demo")
    x, _ = model(tokens, features_only=True)
    head = model.classification_heads["demo"]
    for row in range(tokens.size(0)):
        real = tokens[row].ne(task.dictionary.pad())
        mean = x[row][real].mean(0)
        expected = head.out_proj(torch.tanh(head.dense(mean)))
        torch.testing.assert_close(logits[row], expected, atol=1e-5, rtol=1e-5)


def test_span_masking_of_the_release_covers_about_31_percent(text_corpus):
    """The release's masking (the paper's "wav2vec 2.0 masking" row): mask_prob 0.35 in spans
    of 4, all <mask>; overlapping spans cover about 1 - (1 - 0.35/4)^4 = 31% of 512 tokens."""
    task = masked_lm_task(text_corpus, tokens_per_sample=512, mask_prob=0.35, mask_multiple_length=4,
                          leave_unmasked_prob=0.0, random_token_prob=0.0)
    task.load_dataset("train")
    dataset, pad = task.dataset("train"), task.source_dictionary.pad()
    fractions = []
    for i in range(len(dataset)):
        item = dataset[i]
        if len(item["target"]) == 512:
            chosen = item["target"].ne(pad)
            fractions.append(float(chosen.float().mean()))
            assert item["net_input.src_tokens"][chosen].eq(task.mask_idx).all()
    assert len(fractions) >= 5
    assert abs(sum(fractions) / len(fractions) - 0.31) < 0.02


def test_both_criteria_give_the_same_loss(task):
    """fairseq's ``criterion: model`` (the released text recipe's) and ``data2vec_regression``
    read the one loss the model computes."""
    from fairseq.criterions.model_criterion import ModelCriterion

    from d2v_fairseq.criterions.data2vec_regression import Data2VecRegressionConfig, Data2VecRegressionCriterion

    model = tiny_text_model(task).train()
    model.set_num_updates(0)
    sample = batch(task)
    torch.manual_seed(3)
    loss, size, _ = Data2VecRegressionCriterion(Data2VecRegressionConfig(), task=None)(model, sample)
    torch.manual_seed(3)
    their_loss, their_size, _ = ModelCriterion(task=None, loss_weights={}, log_keys=[])(model, sample)
    assert size == their_size > 0 and loss.item() == pytest.approx(their_loss.item(), rel=1e-6)


def test_one_sentence_per_sample_break_mode_loads(text_corpus):
    """``task.sample_break_mode=eos`` (one line per sample): fairseq's TokenBlockDataset reads
    np.compat, which NumPy 2 removed; the package gives it back, and each sample is one line."""
    from fairseq.data import data_utils

    task = masked_lm_task(text_corpus, sample_break_mode="eos")
    task.load_dataset("train")
    dataset, pad = task.dataset("train"), task.source_dictionary.pad()
    lines = data_utils.load_indexed_dataset(f"{text_corpus}/train", task.source_dictionary)
    assert len(dataset) == len(lines) == 1500
    for i in (0, 1, 700, 1499):
        item = dataset[i]
        original = torch.where(item["target"].ne(pad), item["target"], item["net_input.src_tokens"])
        assert original[0] == task.source_dictionary.bos()
        assert torch.equal(original[1:], lines[i])


def test_loss_scale_zero_reads_as_the_reference_reads_it_for_text_and_is_refused_elsewhere():
    import pytest as _pytest

    from d2v_fairseq.models.base import Data2VecModel
    from d2v_fairseq.models.data2vec_text import Data2VecTextModel

    from d2v_fairseq.modules.regression import checked_loss_scale

    text_default = Data2VecTextModel.nonpositive_loss_scale_is_default
    assert checked_loss_scale(0.0, text_default) is None  # 1/sqrt(dim)
    assert checked_loss_scale(1.0, text_default) == 1.0
    assert checked_loss_scale(None, Data2VecModel.nonpositive_loss_scale_is_default) is None
    with _pytest.raises(ValueError, match="loss_scale=0.0 makes the loss 0"):
        checked_loss_scale(0.0, Data2VecModel.nonpositive_loss_scale_is_default)
