"""A latent folder (written by ``soundstage data encode``) as DiT training data, without loading any model.

Layout::

    latents.json              which codec made it (fingerprint, latent normalisation, channels, hop, rate), rotations,
                              seed
    manifest.jsonl            one record per item: the source manifest's keys for the rotated clip, ``yaw_deg``,
                              ``latent_frames``, ``audio_path`` (the source clip) and ``path`` -> latents/<key>.safetensors
    latents/<key>.safetensors ``mean``, ``std``: the codec's UNSCALED posterior, ``(C, L)`` float32

:class:`LatentDataset` items are a pure function of ``(seed, stream index)`` (like :mod:`.dataset`): index ``i``
takes record ``i % N`` and a crop drawn from ``default_rng((seed, i))``, so a resumed run sees the same items.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from ..codec.latent_norm import LatentNormalizer, check_latent_statistics
from ..common.errors import SoundstageError
from .dataset import crop_or_pad, random_offset
from .manifest import split_records

LATENTS_INFO_NAME = "latents.json"
LATENTS_SUBDIR = "latents"


class LatentFolderError(SoundstageError, ValueError):
    """A latent folder that is missing, malformed, or made by another codec or with other settings."""


@dataclass(frozen=True)
class LatentsInfo:
    """``latents.json``: what made a latent folder; ``hop`` in samples at ``sample_rate`` Hz."""

    codec_fingerprint: str  # soundstage.codec.codec_fingerprint of the encoder
    latent_scale: float  # multiply the stored (unscaled) latents by this for ~unit variance
    latent_channels: int
    hop: int
    sample_rate: int
    rotations: int  # yaw versions per clip (version 0 = the clip as recorded)
    seed: int  # seeds the yaws and the regenerated captions
    source_dataset: str  # the FOA dataset folder that was encoded
    # the codec's per-channel statistics of the stored latents, when it has them (they then replace latent_scale)
    latent_mean: tuple[float, ...] = ()
    latent_std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_latent_statistics(self.latent_channels, self.latent_mean, self.latent_std)

    @property
    def normalizer(self) -> LatentNormalizer:
        """Stored (raw) latents -> what the DiT learns, as the codec's ``encode`` normalises them."""
        return LatentNormalizer.from_statistics(self.latent_channels, self.latent_scale, self.latent_mean,
                                                self.latent_std)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop


def read_latents_info(folder: str | Path) -> LatentsInfo:
    """The ``latents.json`` of a latent folder; LatentFolderError naming the folder when missing or malformed."""
    path = Path(folder) / LATENTS_INFO_NAME
    if not path.exists():
        raise LatentFolderError(f"{folder}: no {LATENTS_INFO_NAME}; make a latent folder with `soundstage data encode`")
    try:
        values = json.loads(path.read_text())
        for key in ("latent_mean", "latent_std"):
            values[key] = tuple(values.get(key, ()))
        return LatentsInfo(**values)
    except (json.JSONDecodeError, TypeError, AttributeError, ValueError) as exc:
        raise LatentFolderError(f"{path}: not a valid {LATENTS_INFO_NAME} ({exc})") from exc


def write_latents_info(folder: Path, info: LatentsInfo) -> None:
    """Write ``latents.json`` atomically; a temporary name per process, so that shards started together do not move
    each other's file."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{LATENTS_INFO_NAME}.{os.getpid()}.part"
    tmp.write_text(json.dumps(dataclasses.asdict(info), indent=2) + "\n")
    tmp.replace(folder / LATENTS_INFO_NAME)


class LatentDataset(Dataset):
    """Random crops of at most ``crop_frames`` latent frames of one split's items (shorter items whole).

    ``dataset[i]`` (any non-negative stream index) is ``dict(mean (C, l), std (C, l) float32 unscaled, frames=l,
    record=the manifest record, seed=int)``; from ``default_rng((seed, i))`` it draws the crop start, then ``seed``,
    which seeds whatever else the consumer draws per item (posterior sample, noise, dropout).
    """

    def __init__(self, folder: str | Path, split: str, crop_frames: int, seed: int) -> None:
        if crop_frames < 1:
            raise ValueError(f"crop_frames must be >= 1, got {crop_frames}")
        self.folder, self.crop_frames, self.seed = Path(folder), int(crop_frames), int(seed)
        self.info = read_latents_info(self.folder)
        self.records: list[dict[str, Any]] = split_records(self.folder, split)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f"index must be a non-negative int, got {index!r}")
        rng = np.random.default_rng((self.seed, int(index)))
        record = self.records[int(index) % len(self.records)]
        tensors = load_file(str(self.folder / record["path"]))
        frames = tensors["mean"].shape[-1]
        length = min(frames, self.crop_frames)
        offset = random_offset(rng, frames, length)
        mean, std = (torch.from_numpy(crop_or_pad(tensors[k].numpy(), length, offset)) for k in ("mean", "std"))
        return {"mean": mean, "std": std, "frames": length, "record": record, "seed": int(rng.integers(2**63 - 1))}


def collate_latents(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad to the longest item: ``mean``, ``std`` ``(B, C, L)`` (zeros after each item's end; std padded with 1),
    ``frame_mask`` ``(B, L)`` bool (True = a real frame), ``frames`` ``(B,)`` long, ``records`` and ``seeds`` (lists)."""
    longest = max(item["frames"] for item in items)
    mean = torch.zeros(len(items), items[0]["mean"].shape[0], longest)
    std = torch.ones_like(mean)
    mask = torch.zeros(len(items), longest, dtype=torch.bool)
    for i, item in enumerate(items):
        mean[i, :, : item["frames"]] = item["mean"]
        std[i, :, : item["frames"]] = item["std"]
        mask[i, : item["frames"]] = True
    frames = torch.tensor([item["frames"] for item in items], dtype=torch.long)
    return {"mean": mean, "std": std, "frame_mask": mask, "frames": frames, "records": [it["record"] for it in items],
            "seeds": [it["seed"] for it in items]}
