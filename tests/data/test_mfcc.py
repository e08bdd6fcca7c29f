"""Kaldi-style MFCCs with deltas (d2v_fairseq.data.mfcc): frame count, the cepstrum against a
direct per-frame computation, gain only moving c0, the mel filters' centres, deltas of a ramp."""

import math

import numpy as np
import torch

from d2v_fairseq.data import mfcc as m


def direct_mfcc(frame: np.ndarray) -> np.ndarray:
    """One 400-sample frame's 13 MFCCs, written out step by step in numpy (float64)."""
    x = frame - frame.mean()
    x = np.concatenate([[x[0] * 0.03], x[1:] - 0.97 * x[:-1]])
    n = np.arange(400)
    x = x * (0.5 - 0.5 * np.cos(2 * math.pi * n / 399)) ** 0.85
    power = np.abs(np.fft.rfft(x, 512)) ** 2
    mel = lambda f: 1127 * np.log(1 + f / 700)  # noqa: E731
    edges = np.linspace(mel(20), mel(8000), 25)
    energies = []
    for b in range(23):
        weights = [max(0.0, min((mel(k * 31.25) - edges[b]) / (edges[b + 1] - edges[b]),
                                (edges[b + 2] - mel(k * 31.25)) / (edges[b + 2] - edges[b + 1]))) for k in range(256)]
        energies.append(np.dot(weights, power[:256]))
    log_mel = np.log(np.maximum(energies, np.finfo(np.float32).eps))
    ceps = [np.sqrt(1 / 23) * log_mel.sum()] + [
        np.sqrt(2 / 23) * sum(log_mel[j] * math.cos(math.pi / 23 * (j + 0.5) * k) for j in range(23)) for k in range(1, 13)]
    return np.array(ceps) * (1 + 11 * np.sin(math.pi * np.arange(13) / 22))


def test_frames_that_fit_whole_every_10_ms():
    assert m.mfcc(torch.randn(16_000)).shape == (1 + (16_000 - 400) // 160, 13)
    assert m.mfcc(torch.randn(399)).shape == (0, 13)
    assert m.mfcc_with_deltas(torch.randn(8_000)).shape == (48, 39)


def test_the_cepstrum_equals_a_direct_computation_frame_by_frame():
    rng = np.random.default_rng(0)
    t = np.arange(1200) / 16_000
    wave = 0.3 * np.sin(2 * math.pi * 440 * t) + 0.05 * rng.standard_normal(1200)
    ours = m.mfcc(torch.from_numpy(wave).float()).numpy()
    for i in (0, 3, 5):
        np.testing.assert_allclose(ours[i], direct_mfcc(wave[i * 160:i * 160 + 400]), rtol=1e-3, atol=1e-3)


def test_a_louder_recording_moves_only_c0():
    wave = torch.randn(4_000) * 0.1
    quiet, loud = m.mfcc(wave), m.mfcc(wave * 4)
    assert torch.allclose(loud[:, 1:], quiet[:, 1:], atol=1e-3)
    assert torch.allclose(loud[:, 0] - quiet[:, 0], torch.full_like(quiet[:, 0], math.log(16) * math.sqrt(23)), atol=1e-3)


def test_each_mel_filter_peaks_at_its_centre_and_they_climb_in_frequency():
    banks = m.mel_banks()
    assert banks.shape == (23, 257) and float(banks[:, -1].abs().sum()) == 0.0  # no weight on Nyquist
    peaks = banks.argmax(dim=1)
    assert bool((peaks[1:] > peaks[:-1]).all()) and float(banks.max()) <= 1.0


def test_deltas_of_a_ramp_are_its_slope_with_the_edges_repeated():
    ramp = torch.arange(10, dtype=torch.float32)[:, None] * torch.tensor([[1.0, -2.0]])
    d = m.deltas(ramp)
    assert torch.allclose(d[2:-2], torch.tensor([[1.0, -2.0]]).expand(6, 2))
    assert torch.allclose(d[0], torch.tensor([0.5, -1.0]))  # (1*1 + 2*2) / 10 with the first frame repeated
