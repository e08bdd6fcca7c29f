"""Kaldi-style MFCCs with deltas: the features of HuBERT's first iteration.

fairseq's ``examples/hubert/simple_kmeans/dump_mfcc_feature.py`` computes them with torchaudio
(``compliance.kaldi.mfcc`` with its defaults, then two ``compute_deltas``); torchaudio does not
load beside this package's CPU torch, so this module computes the same recipe in torch: 25 ms
frames every 10 ms (``snip_edges``: frames that fit whole), DC offset removed, pre-emphasis 0.97,
Povey window, 512-point power spectrum, 23 triangular mel bins from 20 Hz to Nyquist, log, the
orthonormal DCT's first 13 coefficients, cepstral lifter 22; then deltas and delta-deltas over
+-2 frames (edges repeated). Waveforms are floats in [-1, 1], as fairseq reads them.
"""

import math

import torch

SAMPLE_RATE = 16_000
FRAME = 400  # 25 ms
SHIFT = 160  # 10 ms
FFT = 512  # the frame length rounded up to a power of two
MEL_BINS, CEPS, LIFTER, LOW_HZ = 23, 13, 22.0, 20.0


def mel(hz):
    return 1127.0 * torch.log1p(torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_banks() -> torch.Tensor:
    """(MEL_BINS, FFT // 2 + 1) triangular filters, equally spaced on the mel scale."""
    low, high = mel(LOW_HZ), mel(SAMPLE_RATE / 2)
    edges = low + (high - low) * torch.arange(MEL_BINS + 2, dtype=torch.float64) / (MEL_BINS + 1)
    bins = mel(torch.arange(FFT // 2, dtype=torch.float64) * SAMPLE_RATE / FFT)  # the Nyquist bin gets no weight
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (bins - left) / (centre - left), (right - bins) / (right - centre)
    banks = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).float()


def dct_matrix() -> torch.Tensor:
    """(MEL_BINS, CEPS): the orthonormal DCT-II's first CEPS basis vectors as columns."""
    n = torch.arange(MEL_BINS, dtype=torch.float64)[:, None]
    k = torch.arange(CEPS, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi / MEL_BINS * (n + 0.5) * k) * math.sqrt(2.0 / MEL_BINS)
    basis[:, 0] = math.sqrt(1.0 / MEL_BINS)
    return basis.float()


def frames(wave: torch.Tensor) -> torch.Tensor:
    """(S,) -> (T, FRAME), T = 1 + (S - FRAME) // SHIFT (0 when shorter than a frame)."""
    if wave.numel() < FRAME:
        return wave.new_zeros(0, FRAME)
    return wave.unfold(0, FRAME, SHIFT)


def mfcc(wave: torch.Tensor) -> torch.Tensor:
    """(S,) float waveform at 16 kHz -> (T, CEPS) MFCCs."""
    x = frames(wave.double())
    if x.shape[0] == 0:
        return torch.zeros(0, CEPS)
    x = x - x.mean(dim=1, keepdim=True)
    x = torch.cat([x[:, :1] * (1 - 0.97), x[:, 1:] - 0.97 * x[:, :-1]], dim=1)
    window = torch.hann_window(FRAME, periodic=False, dtype=torch.float64).pow(0.85)
    power = torch.fft.rfft(x * window, n=FFT).abs().pow(2)
    energies = power.float() @ mel_banks().T
    log_mel = torch.log(torch.clamp(energies, min=torch.finfo(torch.float32).eps))
    ceps = log_mel @ dct_matrix()
    lifter = 1.0 + 0.5 * LIFTER * torch.sin(math.pi * torch.arange(CEPS, dtype=torch.float32) / LIFTER)
    return ceps * lifter


def deltas(features: torch.Tensor, reach: int = 2) -> torch.Tensor:
    """(T, C) -> (T, C): sum_n n (f[t+n] - f[t-n]) / (2 sum_n n^2), n = 1..reach, edges repeated."""
    padded = torch.cat([features[:1].expand(reach, -1), features, features[-1:].expand(reach, -1)])
    length = features.shape[0]
    total = sum(n * (padded[reach + n:reach + n + length] - padded[reach - n:reach - n + length])
                for n in range(1, reach + 1))
    return total / (2 * sum(n * n for n in range(1, reach + 1)))


def mfcc_with_deltas(wave: torch.Tensor) -> torch.Tensor:
    """(S,) -> (T, 3 * CEPS): MFCCs, their deltas and delta-deltas, as HuBERT's first labels use."""
    ceps = mfcc(wave)
    if ceps.shape[0] == 0:
        return torch.zeros(0, 3 * CEPS)
    first = deltas(ceps)
    return torch.cat([ceps, first, deltas(first)], dim=1)
