"""The demo spoken corpus: short sentences over a small vocabulary, spoken by espeak-ng with
several voices, rates and pitches, resampled to 16 kHz mono. Deterministic from a seed.

    d2v prepare demo-speech OUT_DIR [--train 320 --valid 40 --test 40 --seed 1]

writes OUT_DIR/wav/*.wav and, in fairseq's wav2vec format, OUT_DIR/{train,valid,test}.tsv,
.wrd and .ltr, dict.ltr.txt, plus lm.txt (training transcripts, for a language model).
"""

import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from math import gcd
from typing import List, Tuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ..data.manifest import SAMPLE_RATE, write_letter_dict, write_split

logger = logging.getLogger(__name__)

VOCABULARY = (
    "zero one two three four five six seven eight nine "
    "red green blue yellow black white "
    "go stop left right up down yes no "
    "open close the door window light music"
).upper().split()
VOICES = ("en-us", "en-gb", "en-us+m3", "en-us+f2", "en-gb+m7", "en-us+f4")
RATES = (130, 150, 170, 190)
PITCHES = (30, 45, 60, 75)


def plan_utterances(count: int, rng: random.Random) -> List[dict]:
    """``count`` utterance specs: 2-5 words, a voice, a rate and a pitch each."""
    return [
        {
            "text": " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(2, 5))),
            "voice": rng.choice(VOICES),
            "rate": rng.choice(RATES),
            "pitch": rng.choice(PITCHES),
        }
        for _ in range(count)
    ]


def synthesize(spec: dict, out_path: str) -> int:
    """Speaks ``spec`` with espeak-ng into ``out_path`` (16 kHz mono 16-bit). Returns samples."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
        subprocess.run(
            ["espeak-ng", "-v", spec["voice"], "-s", str(spec["rate"]), "-p", str(spec["pitch"]),
             "-w", raw.name, spec["text"].lower()],
            check=True, capture_output=True,
        )
        audio, rate = sf.read(raw.name, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    g = gcd(SAMPLE_RATE, rate)
    audio = resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)
    audio = np.clip(audio, -1.0, 1.0)
    sf.write(out_path, audio, SAMPLE_RATE, subtype="PCM_16")
    return len(audio)


def build_corpus(out_dir: str, train: int = 320, valid: int = 40, test: int = 40, seed: int = 1) -> str:
    """Builds the corpus in ``out_dir`` unless an identical one (same sizes and seed) is there."""
    stamp = os.path.join(out_dir, "corpus.json")
    settings = {"train": train, "valid": valid, "test": test, "seed": seed, "version": 1}
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == settings:
                logger.info(f"demo corpus already built in {out_dir}")
                return out_dir
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is needed to synthesize the demo corpus: apt-get install espeak-ng")
    rng = random.Random(seed)
    wav_dir = os.path.join(out_dir, "wav")
    os.makedirs(wav_dir, exist_ok=True)
    splits = {name: plan_utterances(n, rng) for name, n in (("train", train), ("valid", valid), ("test", test))}
    jobs: List[Tuple[str, int, dict]] = [(name, i, spec) for name, specs in splits.items() for i, spec in enumerate(specs)]
    paths = {(name, i): f"{name}_{i:04d}.wav" for name, i, _ in jobs}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        lengths = list(pool.map(lambda job: synthesize(job[2], os.path.join(wav_dir, paths[job[:2]])), jobs))
    samples = {job[:2]: n for job, n in zip(jobs, lengths, strict=True)}
    for name, specs in splits.items():
        items = [(paths[(name, i)], samples[(name, i)], spec["text"]) for i, spec in enumerate(specs)]
        write_split(out_dir, name, wav_dir, items)
    write_letter_dict(out_dir, [s["text"] for s in splits["train"]])
    with open(os.path.join(out_dir, "lm.txt"), "w", encoding="utf-8") as f:
        f.writelines(s["text"] + "\n" for s in splits["train"])
    hours = sum(lengths) / SAMPLE_RATE / 3600
    logger.info(f"demo corpus: {len(jobs)} utterances, {hours * 60:.1f} minutes, in {out_dir}")
    with open(stamp, "w") as f:
        json.dump(settings, f)
    return out_dir
