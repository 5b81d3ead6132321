"""Synthetic audio with known answers for the evaluation tests (no files; the same numbers on every machine)."""

from __future__ import annotations

import numpy as np

FIXTURE_RATE = 44100


def aisfx_fixture(seconds: float = 5.0) -> tuple[np.ndarray, int]:
    """A mono sound-effect-like test signal as int16 samples (exactly what a 16-bit WAV holds) and its rate: a
    rising chirp, a decaying harmonic tone and three noise bursts. ``tools/convert_aisfx.py`` wrote the package's
    embedding of it to ``data/aisfx_reference.npy``."""
    t = np.arange(round(seconds * FIXTURE_RATE)) / FIXTURE_RATE
    chirp = 0.25 * np.sin(2 * np.pi * (200.0 * t + 400.0 * t**2)) * (t < 2.0)
    tone = sum(0.15 / k * np.sin(2 * np.pi * 330.0 * k * t) for k in range(1, 6)) * np.exp(-1.5 * np.maximum(t - 2.0, 0))
    tone = tone * (t >= 2.0)
    noise = np.random.default_rng(0).standard_normal(t.size)
    bursts = sum(np.exp(-30.0 * np.maximum(t - start, 0)) * (t >= start) for start in (0.5, 2.5, 4.0))
    signal = chirp + tone + 0.3 * noise * bursts
    return np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16), FIXTURE_RATE
