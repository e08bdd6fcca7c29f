"""Word timings from a CTC alignment, and recordings longer than a window.

* ``word_timings``: the frame-level path of a decoder (one token per frame) -> words with the
  start of their first letter's first frame and the end of their last letter's last frame;
* ``windows``: where to cut a long recording: windows of ``window`` samples whose central
  ``window - 2 * context`` samples are kept, so that every kept frame saw ``context`` samples
  of audio on each side (as transformers' CTC pipeline strides its chunks);
* ``to_srt`` / ``to_json``: timed words as SubRip cues or JSON.
"""

import itertools
import json
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

from ..modules.errors import InputError


@dataclass
class TimedWord:
    """A word and where it is in the recording, in seconds."""
    word: str
    start: float
    end: float


def word_timings(frame_tokens: Sequence[int], blank: int, silence: Optional[int], symbols: Sequence[str],
                 seconds_per_frame: float) -> List[TimedWord]:
    """Words of a frame-level CTC path (``frame_tokens``, one per frame): letters between word
    boundaries (``silence``, the ``|`` token, or a blank run after it), each word from the
    first frame of its first letter to the end of the last frame of its last letter."""
    words: List[TimedWord] = []
    letters: List[str] = []
    start = end = 0
    frame = 0
    for token, run in itertools.groupby(frame_tokens):
        length = len(list(run))
        if token == silence:
            if letters:
                words.append(TimedWord("".join(letters), start * seconds_per_frame, end * seconds_per_frame))
                letters = []
        elif token != blank:
            if not letters:
                start = frame
            letters.append(symbols[token])
            end = frame + length
        frame += length
    if letters:
        words.append(TimedWord("".join(letters), start * seconds_per_frame, end * seconds_per_frame))
    return words


def windows(samples: int, window: int, context: int) -> List[Tuple[int, int, int, int]]:
    """(read start, read end, keep start, keep end) in samples for a recording of ``samples``:
    one window for a recording that fits, else windows of ``window`` samples that overlap by
    ``2 * context``, each keeping its centre (the first keeps its start, the last its end)."""
    if window <= 0 or samples <= window:
        return [(0, samples, 0, samples)]
    step = window - 2 * context
    if step <= 0:
        raise InputError(f"--window {window} samples leaves nothing between two contexts of {context}: "
                         "give a window longer than twice the context")
    cuts = []
    keep = 0
    while keep < samples:
        read_start = max(0, keep - context)
        read_end = min(samples, read_start + window)
        keep_end = samples if read_end == samples else read_end - context
        cuts.append((read_start, read_end, keep, keep_end))
        keep = keep_end
    return cuts


def _srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def to_srt(words: Sequence[TimedWord], words_per_cue: int = 8, max_gap: float = 1.0) -> str:
    """SubRip cues of up to ``words_per_cue`` words; a pause longer than ``max_gap`` seconds
    starts a new cue."""
    cues: List[List[TimedWord]] = []
    for word in words:
        if not cues or len(cues[-1]) >= words_per_cue or word.start - cues[-1][-1].end > max_gap:
            cues.append([])
        cues[-1].append(word)
    return "".join(f"{i}\n{_srt_time(cue[0].start)} --> {_srt_time(cue[-1].end)}\n{' '.join(w.word for w in cue)}\n\n"
                   for i, cue in enumerate(cues, 1))


def to_json(path: str, text: str, words: Sequence[TimedWord]) -> str:
    """One recording's transcript and timed words as a JSON line."""
    return json.dumps({"file": path, "text": text,
                       "words": [{**asdict(w), "start": round(w.start, 3), "end": round(w.end, 3)} for w in words]},
                      ensure_ascii=False)
