
import pytest
import torch

from d2v_fairseq.decoding.ctc import (
    DecoderOptions,
    DecodingInputError,
    LexiconBeamDecoder,
    LexiconFreeBeamDecoder,
    ViterbiDecoder,
    collapse,
    read_lexicon,
)
from d2v_fairseq.decoding.lm import KneserNeyLM, write_lexicon

# fairseq's letter dictionary layout: <s> (the CTC blank), <pad>, </s>, <unk>, then letters
SYMBOLS = ["<s>", "<pad>", "</s>", "<unk>", "|", "A", "B", "C"]
BLANK, SIL, A, B, C = 0, 4, 5, 6, 7


def emissions_from(frames, floor=1e-4):
    """Log-probabilities (T, V) from a list of {token: prob} per frame."""
    probs = torch.full((len(frames), len(SYMBOLS)), floor)
    for t, frame in enumerate(frames):
        for token, p in frame.items():
            probs[t, token] = p
    return (probs / probs.sum(-1, keepdim=True)).log()


def test_collapse_merges_repeats_then_drops_blanks():
    assert collapse([A, A, BLANK, A, B, B, BLANK, BLANK, SIL, C], BLANK) == [A, A, B, SIL, C]
    assert collapse([BLANK, BLANK], BLANK) == []


def test_viterbi_on_a_hand_made_emission_matrix():
    em = emissions_from([{A: 0.9}, {A: 0.8}, {BLANK: 0.9}, {A: 0.7}, {B: 0.6, C: 0.3}, {SIL: 0.9},
                         {C: 0.9}, {C: 0.5, BLANK: 0.4}])
    hypo = ViterbiDecoder(BLANK, SIL, SYMBOLS).decode(em)
    assert hypo["tokens"].tolist() == [A, A, B, SIL, C]
    assert hypo["words"] == ["AAB", "C"]
    assert hypo["score"] == pytest.approx(float(em.max(-1).values.sum()))


@pytest.fixture
def toy_lm(tmp_path):
    # the LM has seen "AB" far more often than "CB"
    sentences = [["AB"]] * 20 + [["CB"]] + [["AB", "AB"]] * 5
    KneserNeyLM(sentences, order=2).write_arpa(str(tmp_path / "lm.arpa"))
    write_lexicon(["AB", "CB"], str(tmp_path / "lexicon.txt"))
    return tmp_path


def test_lm_decode_flips_what_viterbi_gets_wrong(toy_lm):
    # acoustically "C" narrowly beats "A" in the first letter
    em = emissions_from([{C: 0.5, A: 0.45}, {B: 0.9}, {SIL: 0.9}])
    assert ViterbiDecoder(BLANK, SIL, SYMBOLS).decode(em)["words"] == ["CB"]
    options = DecoderOptions(beam=10, lm_weight=2.0, word_score=0.0)
    lexicon = LexiconBeamDecoder(SYMBOLS, BLANK, SIL, str(toy_lm / "lexicon.txt"), str(toy_lm / "lm.arpa"), options)
    hypo = lexicon.decode(em)
    assert hypo["words"] == ["AB"]
    assert hypo["tokens"].tolist() == [A, B, SIL]
    # without the LM the acoustics win again
    no_lm = LexiconBeamDecoder(SYMBOLS, BLANK, SIL, str(toy_lm / "lexicon.txt"), str(toy_lm / "lm.arpa"),
                               DecoderOptions(beam=10, lm_weight=0.0, word_score=0.0))
    assert no_lm.decode(em)["words"] == ["CB"]


def test_lexicon_free_decoder_with_a_letter_lm(tmp_path):
    letters = [["A", "B", "|"]] * 20 + [["C", "B", "|"]]
    KneserNeyLM(letters, order=3).write_arpa(str(tmp_path / "letters.arpa"))
    em = emissions_from([{C: 0.5, A: 0.45}, {B: 0.9}, {SIL: 0.9}])
    decoder = LexiconFreeBeamDecoder(SYMBOLS, BLANK, SIL, str(tmp_path / "letters.arpa"),
                                     DecoderOptions(beam=10, lm_weight=2.0))
    assert decoder.decode(em)["words"] == ["AB"]


def test_missing_lm_and_lexicon_files_are_named(toy_lm, tmp_path):
    with pytest.raises(DecodingInputError, match="KenLM language model not found: .*nope.arpa"):
        LexiconBeamDecoder(SYMBOLS, BLANK, SIL, str(toy_lm / "lexicon.txt"), str(tmp_path / "nope.arpa"))
    with pytest.raises(DecodingInputError, match="lexicon not found: .*nope.txt"):
        LexiconBeamDecoder(SYMBOLS, BLANK, SIL, str(tmp_path / "nope.txt"), str(toy_lm / "lm.arpa"))
    with pytest.raises(DecodingInputError, match="lexicon is required"):
        LexiconBeamDecoder(SYMBOLS, BLANK, SIL, None, str(toy_lm / "lm.arpa"))


def test_bad_lexicon_and_lm_contents(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("AB\tA B |\nXY\tX Y |\n")
    with pytest.raises(DecodingInputError, match=r"lexicon.txt:2: 'XY' is spelled with \['X', 'Y'\] not in the target dictionary"):
        read_lexicon(str(lexicon), SYMBOLS)
    lexicon.write_text("AB\n")
    with pytest.raises(DecodingInputError, match="lexicon.txt:1: expected 'WORD<TAB>spelling'"):
        read_lexicon(str(lexicon), SYMBOLS)
    lexicon.write_text("AB\tA B |\n")
    bad_lm = tmp_path / "lm.arpa"
    bad_lm.write_text("this is not an ARPA file\n")
    with pytest.raises(DecodingInputError, match="lm.arpa:1: not an ARPA language model"):
        LexiconBeamDecoder(SYMBOLS, BLANK, SIL, str(lexicon), str(bad_lm))
