"""Tiny synthetic FOA dataset folders for codec tests (a plane-wave source plus a decorrelated reverberant tail)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundstage.common.audio import save_audio
from soundstage.data.manifest import write_manifest
from soundstage.foa import encode_mono


def synthetic_foa(rng: np.random.Generator, seconds: float, sample_rate: int, azimuth: float, elevation: float,
                  reverb: float = 0.2) -> np.ndarray:
    """``(4, T)`` float32: an amplitude-modulated noise + tone source from one direction, plus diffuse noise."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t) ** 2
    source = envelope * (0.6 * rng.standard_normal(n) + np.sin(2 * np.pi * rng.uniform(100, 1000) * t))
    direct = np.asarray(encode_mono(source.astype(np.float32), azimuth, elevation))
    diffuse = rng.standard_normal((4, n)) * np.array([[1.0], [0.577], [0.577], [0.577]])
    foa = direct + reverb * diffuse
    return (0.25 * foa / np.abs(foa).max()).astype(np.float32)


def make_dataset(folder: Path, sample_rate: int = 8000, clips: dict[str, int] | None = None,
                 seconds: float = 1.0, seed: int = 0) -> Path:
    """Write ``manifest.jsonl`` + FLACs; ``clips`` maps split -> count (default train 4, valid 2, test 2)."""
    clips = clips or {"train": 4, "valid": 2, "test": 2}
    rng = np.random.default_rng(seed)
    records = []
    for split, count in clips.items():
        for i in range(count):
            az, el = float(rng.uniform(-180, 180)), float(rng.uniform(-40, 40))
            path = f"{split}/{i:03d}.flac"
            save_audio(folder / path, synthetic_foa(rng, seconds, sample_rate, az, el), sample_rate)
            records.append({
                "path": path, "sample_rate": sample_rate, "num_frames": int(seconds * sample_rate),
                "caption": "a noise", "spatial_caption": "a noise somewhere", "azimuth_deg": az, "elevation_deg": el,
                "distance_m": 1.5, "floor_area_m2": 40.0, "t30_s": 0.5, "source": "synthetic", "licence": "CC0",
                "split": split,
            })
    write_manifest(folder, records)
    return folder
