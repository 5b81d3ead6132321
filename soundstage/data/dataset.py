"""Torch dataset over an FOA dataset folder (manifest.jsonl + 4-channel AmbiX FLACs), for training.

Items are a pure function of ``(seed, index)``: ``__getitem__`` takes any non-negative stream index, picks clip
``index % len(dataset)`` and draws every random choice from ``numpy.random.default_rng((seed, index))``, so a trainer
that replays its stream indices after a restart gets exactly the same items.

Non-spatial items. A configurable share of items is non-spatial, so that models also learn sounds without
direction. A mono (non-spatial) sound is represented in FOA as an omnidirectional signal: the mono signal in W and
X = Y = Z = 0. That field has zero active intensity (no direction of arrival) and decodes to the same signal in
every direction. We use the W channel of a dataset clip (the clip's reverberant omni signal) or, when ``dry_root``
points at the mono corpus, the dry source clip. Their caption is the plain semantic caption and their spatial
labels are NaN.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..common.audio import load_audio
from .manifest import SPLITS, read_manifest

logger = logging.getLogger(__name__)

LABEL_KEYS = ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")


class FOADataset(Dataset):
    """Random crops of FOA clips of one split, with spatial labels and captions.

    Args:
        folder: dataset folder with ``manifest.jsonl`` (shared/DESIGN.md section 5).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        sample_rate: Hz; clips stored at another rate are resampled on load.
        crop_seconds: crop length; shorter clips are zero-padded at the end.
        nonspatial_share: probability in [0, 1] that an item is non-spatial (see the module docstring).
        seed: seeds every item together with its index.
        cache_size: number of decoded clips kept in memory (LRU, per worker process); 0 disables the cache.
        dry_root: optional mono corpus folder; non-spatial items then use the dry ``source_clip`` instead of W.

    Items (``dataset[i]``) are dicts:
        ``audio`` ``(4, crop)`` float32 AmbiX; ``caption`` (spatial caption, or the plain caption for non-spatial
        items); ``semantic_caption``; ``azimuth_deg``, ``elevation_deg`` (degrees), ``distance_m`` (m),
        ``floor_area_m2`` (m2), ``t30_s`` (s): 0-dim float32 tensors, NaN for non-spatial items; ``is_spatial``
        0-dim bool tensor; ``path``: the clip's manifest path.
    """

    def __init__(
        self,
        folder: str | Path,
        split: str,
        sample_rate: int,
        crop_seconds: float,
        nonspatial_share: float = 0.0,
        seed: int = 0,
        cache_size: int = 0,
        dry_root: str | Path | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= nonspatial_share <= 1.0:
            raise ValueError(f"nonspatial_share must be in [0, 1], got {nonspatial_share}")
        if crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be positive, got {crop_seconds}")
        self.folder = Path(folder)
        self.records = [r for r in read_manifest(self.folder, spatial=True) if r["split"] == split]
        if not self.records:
            raise ValueError(f"{self.folder}: no clips in split {split!r}")
        self.split = split
        self.sample_rate = int(sample_rate)
        self.crop_frames = round(crop_seconds * sample_rate)
        self.nonspatial_share = float(nonspatial_share)
        self.seed = int(seed)
        self.cache_size = int(cache_size)
        self.dry_root = Path(dry_root) if dry_root is not None else None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, path: Path, mono: bool) -> np.ndarray:
        """Decoded ``(C, T)`` float32 audio at ``self.sample_rate``, through the LRU cache."""
        key = f"{path}|{mono}"
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        audio, _ = load_audio(path, sample_rate=self.sample_rate, mono=mono, channels=None if mono else 4)
        if self.cache_size > 0:
            self._cache[key] = audio
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return audio

    def _crop(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(C, T)`` -> ``(C, crop)``: a uniform random window, zero-padded when the clip is shorter."""
        frames = audio.shape[-1]
        if frames <= self.crop_frames:
            rng.integers(0, 1)  # same number of draws for every clip
            out = np.zeros((audio.shape[0], self.crop_frames), dtype=np.float32)
            out[:, :frames] = audio
            return out
        start = int(rng.integers(0, frames - self.crop_frames + 1))
        return np.ascontiguousarray(audio[:, start : start + self.crop_frames], dtype=np.float32)

    def _nonspatial_audio(self, record: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """``(4, crop)``: a mono signal in W, zeros in Y, Z, X (an omnidirectional field)."""
        dry = self.dry_root / record["source_clip"] if self.dry_root and "source_clip" in record else None
        if dry is not None and dry.exists():
            mono = self._crop(self._load(dry, mono=True), rng)[0]
        else:
            mono = self._crop(self._load(self.folder / record["path"], mono=False), rng)[0]
        out = np.zeros((4, self.crop_frames), dtype=np.float32)
        out[0] = mono
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f"index must be a non-negative int, got {index!r}")
        record = self.records[int(index) % len(self.records)]
        rng = np.random.default_rng((self.seed, int(index)))
        is_spatial = bool(rng.random() >= self.nonspatial_share)
        if is_spatial:
            audio = self._crop(self._load(self.folder / record["path"], mono=False), rng)
            labels = {k: float(record[k]) for k in LABEL_KEYS}
            caption = record["spatial_caption"]
        else:
            audio = self._nonspatial_audio(record, rng)
            labels = {k: math.nan for k in LABEL_KEYS}
            caption = record["caption"]
        item: dict[str, Any] = {
            "audio": torch.from_numpy(audio),
            "caption": caption,
            "semantic_caption": record["caption"],
            "is_spatial": torch.tensor(is_spatial),
            "path": record["path"],
        }
        item.update({k: torch.tensor(v, dtype=torch.float32) for k, v in labels.items()})
        return item


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors along a new batch axis (``audio`` -> ``(B, 4, crop)``, labels -> ``(B,)``); strings -> lists."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else list(values)
    return out
