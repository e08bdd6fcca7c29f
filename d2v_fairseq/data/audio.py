"""Reading audio as the models take it: 16 kHz mono float32, from any rate and channel count
soundfile reads (wav, flac, ogg, mp3, ...)."""

import os
import struct
from typing import Optional

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


def wav_shortfall(path: str) -> Optional[str]:
    """Why a RIFF WAV holds fewer samples than its header says (a file cut short: a copy or a
    download that stopped), or None (complete, or not a WAV). soundfile counts the samples the
    file holds and says nothing of the ones its header promised."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            block_align = 0
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = f.read(length + (length & 1))
                    block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
                elif name == b"data":
                    held = size - f.tell()
                    if length == 0xFFFFFFFF or length <= held or not block_align:
                        return None  # complete (or a streamed WAV of unknown length)
                    return (f"cut short: its header says {length // block_align} samples, the file holds "
                            f"{held // block_align} ({held} of {length} data bytes)")
                else:
                    f.seek(length + (length & 1), os.SEEK_CUR)
    except OSError:
        return None
