"""Reading audio as the models take it: 16 kHz mono float32, from any rate and channel count
soundfile reads (wav, flac, ogg, mp3, ...)."""

import os

import numpy as np
import soundfile as sf

from ..modules.errors import InputError

SAMPLE_RATE = 16000


def read_audio(path: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(S,) float32 samples of ``path`` at ``sample_rate``: channels averaged, resampled with soxr
    (as ``d2v prepare speech`` converts); ``InputError`` naming the file if it is missing,
    unreadable or empty."""
    import soxr

    if not os.path.isfile(path):
        raise InputError("no such audio file", path=path)
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise InputError(f"cannot read audio: {error}", path=path) from None
    if audio.shape[0] == 0:
        raise InputError("empty audio (0 samples)", path=path)
    audio = audio.mean(axis=1)  # (S, channels) -> (S,)
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ").astype(np.float32)
    return audio
