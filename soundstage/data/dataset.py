"""The clips of an FOA dataset folder (manifest.jsonl + 4-channel AmbiX FLACs) as training data.

:class:`FOAClips` decodes the clips of one split at one sample rate (the one audio-loading layer of the training
tasks: the codec crops audio from it, ELSA computes its features from it); :class:`FOADataset` serves random crops
of those clips turned by a random yaw; :func:`random_offset`, :func:`centre_offset` and :func:`crop_or_pad` are
the cropping rules every task shares, on audio or on feature frames.

Items are a pure function of ``(seed, index)``: ``__getitem__`` takes any non-negative stream index, picks clip
``index % len(dataset)`` and draws every random choice from ``numpy.random.default_rng((seed, index))``, so a trainer
that replays its stream indices after a restart gets exactly the same items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..common.audio import load_audio
from ..foa import rotate_foa
from .manifest import split_records

LABEL_KEYS = ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")


def random_offset(rng: np.random.Generator, frames: int, length: int) -> int:
    """Uniform start of a ``length`` window in ``frames`` (0 when the clip is shorter); always one draw."""
    return int(rng.integers(0, max(1, frames - length + 1)))


def centre_offset(frames: int, length: int) -> int:
    """Start of the centred ``length`` window in ``frames`` (0 when the clip is shorter)."""
    return max(0, (frames - length) // 2)


def crop_or_pad(x: np.ndarray, length: int, offset: int, fill: float = 0.0) -> np.ndarray:
    """float32 ``x[..., offset:offset + length]``, padded at the end with ``fill`` when ``x`` is shorter."""
    out = np.asarray(x[..., offset : offset + length], dtype=np.float32)
    missing = length - out.shape[-1]
    if missing > 0:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, missing)], constant_values=fill)
    return np.ascontiguousarray(out)


class FOAClips:
    """The ``(4, T)`` float32 clips of one split, decoded at ``sample_rate`` (resampled when stored at another).

    Decoded clips are kept in memory as int16 up to ``cache_mb`` megabytes, so each file is decoded once per run.
    16-bit FLAC decodes to ``int / 32768`` exactly, so the cache is lossless for our datasets; a clip is returned from
    the cache on its first use too, so a resumed run (cold cache) sees the very same samples. Clips beyond the budget
    are decoded on every use.

    Raises:
        ValueError: the manifest has no clip in ``split``.
    """

    def __init__(self, folder: str | Path, split: str, sample_rate: int, cache_mb: float = 0.0) -> None:
        self.folder, self.sample_rate = Path(folder), int(sample_rate)
        self.records: list[dict[str, Any]] = split_records(self.folder, split)
        self.budget = int(cache_mb * 2**20)
        self.used = 0
        self.cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def audio(self, i: int) -> np.ndarray:
        """float32 ``(4, T)`` clip ``i``."""
        if i not in self.cache:
            audio, _ = load_audio(self.folder / self.records[i]["path"], sample_rate=self.sample_rate, channels=4)
            if self.used + audio.nbytes // 2 > self.budget:
                return audio
            self.cache[i] = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
            self.used += audio.nbytes // 2
        return self.cache[i].astype(np.float32) / 32768.0


class FOADataset(Dataset):
    """Random ``crop_seconds`` crops of ``clips``, each turned by a uniform random yaw (an exact FOA rotation, so
    every direction is seen equally often); ``dataset[i]`` is a float32 ``(4, crop)`` tensor for any stream index.

    Draws, in order: the crop start (:func:`random_offset`), then the yaw in degrees, uniform in [-180, 180).
    """

    def __init__(self, clips: FOAClips, crop_seconds: float, seed: int) -> None:
        if crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be positive, got {crop_seconds}")
        self.clips, self.seed = clips, int(seed)
        self.crop_samples = round(crop_seconds * clips.sample_rate)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f"index must be a non-negative int, got {index!r}")
        rng = np.random.default_rng((self.seed, int(index)))
        audio = self.clips.audio(int(index) % len(self.clips))
        crop = crop_or_pad(audio, self.crop_samples, random_offset(rng, audio.shape[-1], self.crop_samples))
        return rotate_foa(torch.from_numpy(crop), yaw_deg=float(rng.uniform(-180.0, 180.0)))


def centre_crops(clips: FOAClips, seconds: float, count: int) -> torch.Tensor:
    """``(N, 4, seconds * sample_rate)`` float32 centre crops of the first ``N = min(count, len(clips))`` clips
    (zero-padded when shorter)."""
    length = round(seconds * clips.sample_rate)
    crops = []
    for i in range(min(count, len(clips))):
        audio = clips.audio(i)
        crops.append(crop_or_pad(audio, length, centre_offset(audio.shape[-1], length)))
    return torch.from_numpy(np.stack(crops))
