"""Tiny synthetic FOA datasets for ELSA tests: a few sound kinds, placed as plane waves in a diffuse reverberant field,
with captions from :mod:`soundstage.data.captions`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from soundstage.common.audio import save_audio
from soundstage.data.captions import spatial_caption
from soundstage.data.manifest import write_manifest
from soundstage.foa import encode_mono

KINDS = ("a low rumble", "a steady beep", "a rising whistle", "rapid clicking")


def source_signal(kind: int, seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    if kind == 0:
        signal = np.convolve(rng.standard_normal(n), np.ones(16) / 16, mode="same")
    elif kind == 1:
        signal = np.sin(2 * np.pi * rng.uniform(400, 900) * t)
    elif kind == 2:
        signal = np.sin(2 * np.pi * (300 + 1500 * t / seconds) * t)
    else:
        signal = np.zeros(n)
        signal[:: sample_rate // 20] = 1.0
        signal = np.convolve(signal, rng.standard_normal(32), mode="same")
    return (signal / (np.abs(signal).max() + 1e-9)).astype(np.float32)


def spatial_scene(
    source: np.ndarray, azimuth: float, elevation: float, distance: float, t30: float, sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(4, T)``: the direct sound at 1/distance plus an exponentially decaying diffuse tail (SN3D: X, Y, Z carry a
    third of W's power each)."""
    direct = np.asarray(encode_mono(source, azimuth, elevation)) / distance
    n = source.shape[-1]
    decay = np.exp(-6.9 * np.arange(n) / (t30 * sample_rate))
    tail = rng.standard_normal((4, n)) * np.array([[1.0], [0.577], [0.577], [0.577]])
    diffuse = np.stack([fftconvolve(source, decay[: sample_rate // 4] * tail[c, : sample_rate // 4], "same")
                        for c in range(4)])
    diffuse *= 0.3 / (np.abs(diffuse[0]).max() + 1e-9)
    foa = direct + diffuse
    return (0.3 * foa / np.abs(foa).max()).astype(np.float32)


def make_elsa_dataset(
    folder: Path, sample_rate: int = 16000, clips: dict[str, int] | None = None, seconds: float = 1.5, seed: int = 0,
    azimuths: tuple[float, ...] | None = None,
) -> Path:
    """Write ``manifest.jsonl`` + 4-channel FLACs; ``clips`` maps split -> count (default 12 / 4 / 4).

    ``azimuths`` (degrees) are used in turn within each split instead of random ones."""
    clips = clips or {"train": 12, "valid": 4, "test": 4}
    rng = np.random.default_rng(seed)
    records = []
    for split, count in clips.items():
        for i in range(count):
            kind = i % len(KINDS)
            az, el = float(rng.uniform(-180, 180)), float(rng.uniform(-45, 45))
            az = az if azimuths is None else azimuths[i % len(azimuths)]
            dist, area, t30 = float(rng.uniform(0.5, 4.0)), float(rng.uniform(14, 270)), float(rng.uniform(0.15, 2.5))
            audio = spatial_scene(source_signal(kind, seconds, sample_rate, rng), az, el, dist, t30, sample_rate, rng)
            path = f"audio/{split}_{i:03d}.flac"
            save_audio(folder / path, audio, sample_rate)
            records.append({
                "path": path, "sample_rate": sample_rate, "num_frames": audio.shape[-1], "caption": KINDS[kind],
                "spatial_caption": spatial_caption(KINDS[kind], az, el, dist, area, t30, rng=i),
                "azimuth_deg": az, "elevation_deg": el, "distance_m": dist, "floor_area_m2": area, "t30_s": t30,
                "source": "synthetic", "licence": "CC0", "split": split,
            })
    write_manifest(folder, records)
    return folder
