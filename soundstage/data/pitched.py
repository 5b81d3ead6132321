"""Synthetic pitched FOA for codec training: tones, harmonic notes and chirps, placed as plane waves with a diffuse
tail, alone or over a real crop.

Sound-effect corpora hold few steady pitched sounds, and a codec trained only on them learns to drop narrow spectral
peaks (docs/codec.md). :class:`PitchedMixDataset` replaces a fraction of a dataset's training crops with
:func:`synthetic_pitched_foa`, a pure function of its random generator, so a run that mixes them still resumes
exactly (the stream index and the seed decide every draw).

What is drawn (all independent):

- kind: steady sinusoid (0.3), harmonic note of 2-16 partials with amplitudes ``k ** -rolloff`` and a little
  stretch (0.5), or a logarithmic chirp between two frequencies (0.2);
- fundamental log-uniform in 60 Hz - 4 kHz (partials stop below 0.45 x the sample rate); vibrato for a third of the
  notes (4-7 Hz, up to 0.6 semitone);
- envelope: steady, or 1-3 notes with a 2-40 ms attack and an exponential decay of 0.1-1.5 s;
- direction: azimuth uniform, elevation uniform in [-45, 45] deg; a diffuse tail (independent noises with the
  isotropic field's 1/3 energy in X, Y, Z, decaying with a T60 of 0.1-1.5 s) mixed at a direct-to-reverberant
  ratio of 0-20 dB, or no tail for a quarter of the crops;
- level: W RMS of -30 to -14 dBFS (the dataset's loudness is about -20); over a real crop for half of them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from soundstage.foa import encode_mono

FUNDAMENTAL_RANGE_HZ = (60.0, 4000.0)  # drawn log-uniformly


def _fundamental_track(rng: np.random.Generator, kind: str, samples: int, sample_rate: int) -> np.ndarray:
    """Instantaneous fundamental frequency ``(samples,)`` in Hz."""
    low, high = (math.log(f) for f in FUNDAMENTAL_RANGE_HZ)
    f0 = math.exp(rng.uniform(low, high))
    if kind == "chirp":
        f1 = math.exp(rng.uniform(low, high))
        return np.exp(np.linspace(math.log(f0), math.log(f1), samples))
    track = np.full(samples, f0)
    if kind == "harmonic" and rng.random() < 1 / 3:
        t = np.arange(samples) / sample_rate
        depth = rng.uniform(0.1, 0.6) / 12.0  # octaves
        track = track * 2.0 ** (depth * np.sin(2 * math.pi * rng.uniform(4.0, 7.0) * t + rng.uniform(0, 2 * math.pi)))
    return track


def note_envelope(t: np.ndarray, onset_s: float, attack_s: float, decay_s: float) -> np.ndarray:
    """A struck or plucked note's envelope at times ``t`` (s): 0 before ``onset_s``, a linear rise over ``attack_s``,
    then an exponential decay with time constant ``decay_s``."""
    rel = t - onset_s
    return np.where(rel < 0, 0.0, np.minimum(rel / attack_s, 1.0) * np.exp(-np.maximum(rel - attack_s, 0.0) / decay_s))


def _envelope(rng: np.random.Generator, samples: int, sample_rate: int) -> np.ndarray:
    if rng.random() < 0.4:
        return np.ones(samples)
    env = np.zeros(samples)
    t = np.arange(samples) / sample_rate
    for _ in range(int(rng.integers(1, 4))):
        onset = rng.uniform(-0.3, 0.8) * samples / sample_rate
        env = np.maximum(env, note_envelope(t, onset, rng.uniform(0.002, 0.04), rng.uniform(0.1, 1.5)))
    return env


def synthetic_pitched_mono(rng: np.random.Generator, samples: int, sample_rate: int) -> np.ndarray:
    """One pitched mono signal ``(samples,)`` float64 with a W RMS of 1 (before level and tail)."""
    kind = str(rng.choice(["tone", "harmonic", "chirp"], p=[0.3, 0.5, 0.2]))
    track = _fundamental_track(rng, kind, samples, sample_rate)
    phase = 2 * math.pi * np.cumsum(track) / sample_rate
    nyquist_limit = 0.45 * sample_rate
    if kind == "harmonic":
        partials, rolloff, stretch = int(rng.integers(2, 17)), rng.uniform(0.5, 2.0), rng.uniform(0.0, 0.002)
        signal = np.zeros(samples)
        for k in range(1, partials + 1):
            ratio = k * (1.0 + stretch * (k * k - 1))
            if track.max() * ratio >= nyquist_limit:
                break
            signal += k ** -rolloff * np.sin(ratio * phase + rng.uniform(0, 2 * math.pi))
    else:
        signal = np.sin(phase + rng.uniform(0, 2 * math.pi))
        signal[track >= nyquist_limit] = 0.0
    signal = signal * _envelope(rng, samples, sample_rate)
    rms = math.sqrt(float(np.mean(signal**2)))
    return signal / rms if rms > 0 else signal


def diffuse_tail(rng: np.random.Generator, dry: np.ndarray, t60_s: float, sample_rate: int) -> np.ndarray:
    """``(4, T)`` AmbiX diffuse reverberation of mono ``dry`` ``(T,)``: exponentially decaying independent noises,
    X, Y and Z with a third of W's energy (an isotropic field in SN3D), normalised to the dry signal's energy."""
    samples = dry.shape[0]
    length = min(samples, round(1.2 * t60_s * sample_rate))
    decay = np.exp(-6.9 * np.arange(length) / (t60_s * sample_rate))  # -60 dB at t60
    noise = rng.standard_normal((4, length)) * decay
    noise[1:] *= math.sqrt(1.0 / 3.0)
    n = samples + length
    wet = np.fft.irfft(np.fft.rfft(noise, n) * np.fft.rfft(dry, n), n)[:, :samples]
    energy = float(np.mean(wet[0] ** 2))
    return wet * math.sqrt(float(np.mean(dry**2)) / energy) if energy > 0 else wet


def synthetic_pitched_foa(rng: np.random.Generator, samples: int, sample_rate: int) -> np.ndarray:
    """A ``(4, samples)`` float32 AmbiX crop of one synthetic pitched source (module doc for what is drawn)."""
    mono = synthetic_pitched_mono(rng, samples, sample_rate)
    azimuth, elevation = rng.uniform(-180.0, 180.0), rng.uniform(-45.0, 45.0)
    foa = encode_mono(torch.from_numpy(mono), azimuth, elevation).numpy()
    if rng.random() >= 0.25:
        drr_db = rng.uniform(0.0, 20.0)
        foa = foa + 10 ** (-drr_db / 20) * diffuse_tail(rng, mono, rng.uniform(0.1, 1.5), sample_rate)
    rms = math.sqrt(float(np.mean(foa[0] ** 2)))
    gain = 10 ** (rng.uniform(-30.0, -14.0) / 20) / rms if rms > 0 else 0.0
    return (foa * gain).astype(np.float32)


class PitchedMixDataset(Dataset):
    """``base`` training crops ``(4, T)`` with a ``fraction`` of them replaced by synthetic pitched FOA, half of those
    laid over the base crop (the base crop's own level). Item ``i`` is a pure function of ``(seed, i)``."""

    def __init__(self, base: Dataset, fraction: float, crop_samples: int, sample_rate: int, seed: int) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
        self.base, self.fraction, self.seed = base, float(fraction), int(seed)
        self.crop_samples, self.sample_rate = int(crop_samples), int(sample_rate)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng((self.seed, int(index), 7))  # 7: a stream apart from the base dataset's
        if rng.random() >= self.fraction:
            return self.base[index]
        pitched = synthetic_pitched_foa(rng, self.crop_samples, self.sample_rate)
        if rng.random() < 0.5:
            pitched = pitched + self.base[index].numpy()
        return torch.from_numpy(pitched)


__all__ = ["PitchedMixDataset", "diffuse_tail", "note_envelope", "synthetic_pitched_foa", "synthetic_pitched_mono"]
