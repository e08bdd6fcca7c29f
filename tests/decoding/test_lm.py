import math

import pytest

from d2v_fairseq.decoding.lm import FALLBACK_DISCOUNTS, KneserNeyLM, discounts, read_sentences

CORPUS = [["A", "B"], ["A", "C"], ["B", "C"]]


def test_probabilities_match_a_hand_computation():
    lm = KneserNeyLM(CORPUS, order=2)
    # adjusted unigram counts = distinct left contexts: A {<s>}, B {<s>, A}, C {A, B}, </s> {B, C}
    assert dict(lm.counts[1]) == {("A",): 1, ("B",): 2, ("C",): 2, ("</s>",): 2}
    d1, d2, _ = FALLBACK_DISCOUNTS  # too few counts of counts to estimate them
    assert lm.discount[1] == FALLBACK_DISCOUNTS
    # unigrams: total 7; gamma = (D1 * one singleton + D2 * three doubletons) / 7; uniform over
    # 5 entries (A, B, C, </s>, <unk>)
    gamma = (d1 * 1 + d2 * 3) / 7
    p_a = (1 - d1) / 7 + gamma / 5
    p_b = (2 - d2) / 7 + gamma / 5
    assert lm.logprob("A", []) == pytest.approx(math.log10(p_a))
    assert lm.logprob("B", []) == pytest.approx(math.log10(p_b))
    assert lm.logprob("ZZZ", []) == pytest.approx(math.log10(gamma / 5))  # <unk>
    # bigram after <s>: raw counts A 2, B 1 (n-grams starting with <s> keep raw counts)
    gamma_s = (d1 * 1 + d2 * 1) / 3
    assert lm.logprob("A", ["<s>"]) == pytest.approx(math.log10((2 - d2) / 3 + gamma_s * p_a))
    # unseen bigram "C A": C is followed only by </s>, twice (raw count at the top order), so
    # gamma(C) = D2 * 1 / 2 and p(A | C) = gamma(C) * p(A)
    assert lm.counts[2][("C", "</s>")] == 2
    assert lm.logprob("A", ["C"]) == pytest.approx(math.log10(d2 / 2 * p_a))


def test_arpa_loads_in_kenlm_with_the_same_scores(tmp_path):
    kenlm_module = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import Dictionary

    lm = KneserNeyLM(CORPUS * 3 + [["A", "B", "C"]], order=3)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(str(path))
    words = Dictionary()
    for w in ["<unk>", "A", "B", "C"]:
        words.add_entry(w)
    kenlm = kenlm_module.KenLM(str(path), words)
    state = kenlm.start(False)
    history = ["<s>"]
    for word in ["A", "C", "B", "A"]:
        state, score = kenlm.score(state, words.get_index(word))
        assert score == pytest.approx(lm.logprob(word, history), abs=1e-5), (word, history)
        history.append(word)
    _, score = kenlm.finish(state)
    assert score == pytest.approx(lm.logprob("</s>", history), abs=1e-5)


def test_discounts_from_counts_of_counts():
    counts = {(str(i),): c for i, c in enumerate([1] * 10 + [2] * 5 + [3] * 3 + [4] * 2)}
    y = 10 / (10 + 2 * 5)
    assert discounts(counts) == pytest.approx((1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3))


def test_empty_line_in_lm_text_is_named(tmp_path):
    text = tmp_path / "lm.txt"
    text.write_text("A B\n\nC\n")
    with pytest.raises(ValueError, match="lm.txt:2: empty line"):
        read_sentences(str(text))
