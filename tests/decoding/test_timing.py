"""Word timings from a CTC frame path, the windows of a long recording, SRT and JSON output."""

import json

import pytest

from d2v_fairseq.decoding.timing import TimedWord, to_json, to_srt, windows, word_timings
from d2v_fairseq.modules.errors import InputError

SYMBOLS = ["<s>", "<pad>", "</s>", "<unk>", "|", "A", "B", "C"]
BLANK, SILENCE = 0, 4


def test_words_start_at_their_first_letter_and_end_after_their_last():
    #         0  1  2  3  4  5  6  7  8  9 10 11 12 13
    frames = [0, 0, 5, 5, 0, 6, 4, 4, 0, 7, 7, 0, 5, 0]
    words = word_timings(frames, BLANK, SILENCE, SYMBOLS, 0.02)
    assert [w.word for w in words] == ["AB", "CA"]
    assert words[0].start == pytest.approx(2 * 0.02) and words[0].end == pytest.approx(6 * 0.02)
    assert words[1].start == pytest.approx(9 * 0.02) and words[1].end == pytest.approx(13 * 0.02)
    # a repeated letter needs a blank between its two frames, and stays two letters
    assert [w.word for w in word_timings([5, 0, 5, 4], BLANK, SILENCE, SYMBOLS, 0.02)] == ["AA"]
    assert word_timings([0, 0, 4, 0], BLANK, SILENCE, SYMBOLS, 0.02) == []


@pytest.mark.parametrize("samples", [1000, 48000, 48001, 160000, 999999])
def test_windows_keep_every_sample_once_with_context_on_both_sides(samples):
    window, context = 48000, 8000
    cuts = windows(samples, window, context)
    assert cuts[0][2] == 0 and cuts[-1][3] == samples
    for (_, _, _, end), (_, _, start, _) in zip(cuts, cuts[1:], strict=False):
        assert end == start  # kept parts tile the recording
    for read_start, read_end, keep_start, keep_end in cuts:
        assert read_end - read_start <= window and read_start <= keep_start < keep_end <= read_end
        assert keep_start - read_start >= (context if read_start > 0 else 0)  # left context, except at the start
        assert read_end - keep_end >= (context if read_end < samples else 0)
    if samples <= window:
        assert cuts == [(0, samples, 0, samples)]  # a recording that fits is read whole
    with pytest.raises(InputError, match="window"):
        windows(100000, 16000, 8000)


def test_srt_cues_and_json_lines():
    words = [TimedWord("HELLO", 0.5, 0.9), TimedWord("THERE", 1.0, 1.42), TimedWord("AGAIN", 3.5, 4.0)]
    srt = to_srt(words, words_per_cue=8, max_gap=1.0)
    assert srt == ("1\n00:00:00,500 --> 00:00:01,420\nHELLO THERE\n\n"
                   "2\n00:00:03,500 --> 00:00:04,000\nAGAIN\n\n")  # the 2.1-s pause starts a new cue
    assert to_srt(words, words_per_cue=1).count("-->") == 3
    line = json.loads(to_json("a.wav", "HELLO THERE AGAIN", words))
    assert line["file"] == "a.wav" and line["words"][1] == {"word": "THERE", "start": 1.0, "end": 1.42}
