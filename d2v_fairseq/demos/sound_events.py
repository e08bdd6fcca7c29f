"""A small multi-label sound-event corpus from real recordings that install offline.

Debian's ``sound-theme-freedesktop`` holds about 35 short recordings (bell, alarm clock, camera
shutter, phone ringing, spoken channel names, ...). Identical recordings (the theme reuses some
under several names) become one class. Each clip mixes 1-3 of them, each at a random offset,
gain (-12..0 dB) and speed (0.9-1.1x, which also shifts the pitch), over background noise, at
16 kHz; its labels are the sounds present. Splits are written as audio manifests
(``SPLIT.tsv``), label files (``SPLIT.lbl``) and ``classes.txt``, as ``d2v prepare audioset``
writes them.
"""

import hashlib
import os
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

from ..modules.seeding import seeded_rng

SOUND_DIR = "/usr/share/sounds/freedesktop/stereo"
SAMPLE_RATE = 16000


def load_sounds(sound_dir: str = SOUND_DIR) -> Tuple[List[str], List[np.ndarray]]:
    """(class names, mono 16 kHz float32 waveforms), one per distinct recording."""
    from scipy.signal import resample_poly

    if not os.path.isdir(sound_dir):
        raise FileNotFoundError(f"{sound_dir}: missing; install Debian's sound-theme-freedesktop "
                                "(apt-get install sound-theme-freedesktop)")
    names, waves, seen = [], [], {}
    for file in sorted(os.listdir(sound_dir)):
        data, rate = sf.read(os.path.join(sound_dir, file), dtype="float32", always_2d=True)
        digest = hashlib.md5(data.tobytes()).hexdigest()
        if digest in seen:  # the same recording under another name
            continue
        seen[digest] = file
        mono = data.mean(axis=1)
        divisor = np.gcd(rate, SAMPLE_RATE)
        wave = resample_poly(mono, SAMPLE_RATE // divisor, rate // divisor).astype(np.float32)
        peak = np.abs(wave).max()
        names.append(os.path.splitext(file)[0])
        waves.append(wave / peak if peak > 0 else wave)
    return names, waves


def mix_clip(waves: List[np.ndarray], rng: np.random.Generator, length: int) -> Tuple[np.ndarray, List[int]]:
    """One clip (length,) of 1-3 distinct sounds over noise, and the sorted indices present."""
    noise = np.cumsum(rng.normal(size=length)).astype(np.float32)  # brown noise ...
    noise -= np.convolve(noise, np.ones(401) / 401, mode="same")  # ... without its slow drift
    clip = noise / (np.abs(noise).max() + 1e-8) * rng.uniform(0.01, 0.05)
    chosen = sorted(rng.choice(len(waves), size=int(rng.integers(1, 4)), replace=False).tolist())
    for index in chosen:
        wave = waves[index]
        speed = rng.uniform(0.9, 1.1)
        positions = np.arange(0, len(wave) - 1, speed)
        wave = np.interp(positions, np.arange(len(wave)), wave).astype(np.float32)
        if len(wave) > length:  # a long recording: a random stretch of it
            start = int(rng.integers(0, len(wave) - length + 1))
            wave = wave[start:start + length]
        offset = int(rng.integers(0, length - len(wave) + 1))
        clip[offset:offset + len(wave)] += wave * 10 ** (rng.uniform(-12, 0) / 20)
    return clip / max(1.0, np.abs(clip).max() / 0.9), chosen


def build_corpus(out_dir: str, counts: Dict[str, int], seconds: float = 2.0, seed: int = 1) -> str:
    """Writes OUT_DIR/wav/SPLIT/*.wav, SPLIT.tsv, SPLIT.lbl and classes.txt; returns out_dir."""
    names, waves = load_sounds()
    rng = seeded_rng(seed)
    length = int(seconds * SAMPLE_RATE)
    os.makedirs(out_dir, exist_ok=True)
    root = os.path.abspath(os.path.join(out_dir, "wav"))
    for split, count in counts.items():
        os.makedirs(os.path.join(root, split), exist_ok=True)
        with open(os.path.join(out_dir, f"{split}.tsv"), "w") as tsv, open(os.path.join(out_dir, f"{split}.lbl"), "w") as lbl:
            print(root, file=tsv)
            for i in range(count):
                clip, labels = mix_clip(waves, rng, length)
                rel = os.path.join(split, f"{i:05d}.wav")
                sf.write(os.path.join(root, rel), clip, SAMPLE_RATE, subtype="PCM_16")
                print(f"{rel}\t{len(clip)}", file=tsv)
                print(" ".join(map(str, labels)), file=lbl)
    with open(os.path.join(out_dir, "classes.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    return out_dir
