"""The two folders ``soundstage evaluate generated`` compares: reading and checking them, and per-file embedding caches.

``--gen`` is a folder written by ``soundstage generate --batch`` (``manifest.jsonl`` rows with ``path``, ``prompt``
and the request) or a dataset folder (docs/conventions.md section 4: its labels are the requests and its
``spatial_caption`` the prompt); ``--ref`` is a dataset folder. Every file is checked before any work, and each
problem is an error naming the file: a missing or unreadable file, not 4 channels, or another sample rate than the
first clip's (both sets must share one rate: a distance between sets at two bandwidths measures the bandwidth).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from soundstage.common.audio import AudioError, audio_info
from soundstage.common.errors import SoundstageError
from soundstage.data.manifest import MANIFEST_NAME, ManifestError, jsonl_rows, read_manifest

REQUEST_KEYS = ("azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s")


class EvaluationInputError(SoundstageError, ValueError):
    """A folder, manifest or file that ``evaluate generated`` cannot use; the message names it."""


@dataclass
class Clip:
    """One audio file of a set and what it was asked to be."""

    path: Path
    text: str  # the prompt scored by spatial CLAP: the spatial caption when there is one, else the prompt
    request: dict[str, float | None]  # REQUEST_KEYS -> value, None when not requested
    moving: bool = False  # a trajectory was requested: no single direction to score
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> tuple[float, float] | None:
        """The requested (azimuth, elevation) in degrees; elevation 0 when only the azimuth was given."""
        azimuth = self.request.get("azimuth_deg")
        if azimuth is None or self.moving:
            return None
        elevation = self.request.get("elevation_deg")
        return float(azimuth), float(elevation) if elevation is not None else 0.0


@dataclass
class ClipSet:
    folder: Path
    kind: str  # "batch" (soundstage generate --batch) or "dataset"
    clips: list[Clip]
    sample_rate: int


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _dataset_clip(folder: Path, record: dict[str, Any]) -> Clip:
    return Clip(folder / record["path"], record["spatial_caption"],
                {key: _number(record.get(key)) for key in REQUEST_KEYS}, record=record)


def _batch_clip(folder: Path, manifest: Path, line: int, record: Any) -> Clip:
    if not isinstance(record, dict):
        raise EvaluationInputError(f"{manifest}:{line}: expected a JSON object, got {type(record).__name__}")
    for key in ("path", "prompt"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise EvaluationInputError(f"{manifest}:{line}: no '{key}' (a `soundstage generate --batch` manifest row "
                                       "has path, prompt and the request)")
    text = record.get("spatial_caption") if isinstance(record.get("spatial_caption"), str) else record["prompt"]
    return Clip(folder / record["path"], text, {key: _number(record.get(key)) for key in REQUEST_KEYS},
                moving=bool(record.get("trajectory")), record=record)


def _read_batch(folder: Path) -> list[Clip]:
    manifest = folder / MANIFEST_NAME
    try:
        return [_batch_clip(folder, manifest, line, record) for line, record in jsonl_rows(manifest)]
    except ManifestError as exc:
        raise EvaluationInputError(str(exc)) from None


def read_clip_set(folder: str | Path, option: str, split: str | None = None, dataset_only: bool = False) -> ClipSet:
    """The clips of ``folder`` (``split`` of a dataset; all of them when None), checked file by file.

    ``option`` (``--gen`` or ``--ref``) names the folder in messages; ``dataset_only`` refuses a batch folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationInputError(f"{option} {folder}: no such folder")
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        audio = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))[:3]
        found = f" (it holds {', '.join(audio)}...)" if audio else " (it is empty)" if not any(folder.iterdir()) else ""
        raise EvaluationInputError(
            f"{option} {folder}: no {MANIFEST_NAME}{found}; expected the output folder of `soundstage generate --batch`"
            f"{'' if dataset_only else ' or a dataset folder'} (docs/conventions.md section 4)")
    first_line = next((t for t in manifest.read_text(encoding="utf-8").splitlines() if t.strip()), None)
    try:
        first = None if first_line is None else json.loads(first_line)
    except json.JSONDecodeError as exc:
        raise EvaluationInputError(f"{option} {manifest}: the first record is not valid JSON ({exc.msg})") from None
    if first is None:
        raise EvaluationInputError(f"{option} {manifest}: the manifest has no records")
    is_dataset = isinstance(first, dict) and "spatial_caption" in first and "split" in first
    if dataset_only and not is_dataset:
        raise EvaluationInputError(f"{option} {folder}: not a FOA dataset folder (its {MANIFEST_NAME} rows have no "
                                   "spatial_caption and split); the reference set must be real clips with labels")
    if is_dataset:
        try:
            records = read_manifest(folder, spatial=True)
        except ManifestError as exc:
            raise EvaluationInputError(f"{option}: {exc}") from None
        if split is not None:
            records = [r for r in records if r["split"] == split]
            if not records:
                raise EvaluationInputError(f"{option} {folder}: no clips in split {split!r}")
        clips = [_dataset_clip(folder, r) for r in records]
    else:
        if split is not None:
            raise EvaluationInputError(f"{option} {folder}: a split was given but this is a generated (batch) folder, "
                                       "which has none")
        clips = _read_batch(folder)
        if not clips:
            raise EvaluationInputError(f"{option} {manifest}: the manifest has no records")
    return ClipSet(folder, "dataset" if is_dataset else "batch", clips, check_files(clips, option))


def check_files(clips: list[Clip], option: str, sample_rate: int | None = None) -> int:
    """The common sample rate of the clips' files (or ``sample_rate`` when given); an error naming the first file
    that is missing, unreadable, not 4-channel FOA, or at another rate."""
    for clip in clips:
        try:
            info = audio_info(clip.path)
        except AudioError as exc:
            raise EvaluationInputError(f"{option}: {exc}") from None
        if info.channels != 4:
            kind = {1: "mono", 2: "stereo"}.get(info.channels, f"{info.channels}-channel")
            raise EvaluationInputError(f"{option}: {clip.path}: {kind} audio; expected 4-channel first-order "
                                       "ambisonics (AmbiX W, Y, Z, X)")
        if info.num_frames == 0:
            raise EvaluationInputError(f"{option}: {clip.path}: empty audio (0 samples)")
        if sample_rate is None:
            sample_rate = info.sample_rate
        elif info.sample_rate != sample_rate:
            raise EvaluationInputError(f"{option}: {clip.path}: {info.sample_rate} Hz, but the clips are at "
                                       f"{sample_rate} Hz; resample so that both sets share one rate")
    assert sample_rate is not None
    return sample_rate


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "soundstage" / "embeddings"


class EmbeddingCache:
    """Arrays keyed by (model id, file content hash) in ``root/<model id>/<hash[:2]>/<hash>.npy``; ``root=None``
    keeps nothing. A renamed or copied file hits the cache; a changed file or model misses it."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(root)
        self.hits = self.misses = 0

    def _path(self, model_id: str, sha: str) -> Path:
        assert self.root is not None
        return self.root / model_id / sha[:2] / f"{sha}.npy"

    def get(self, model_id: str, sha: str) -> np.ndarray | None:
        if self.root is not None:
            path = self._path(model_id, sha)
            if path.is_file():
                try:
                    value = np.load(path, allow_pickle=False)
                    self.hits += 1
                    return value
                except (OSError, ValueError):
                    pass  # a truncated entry: compute it again
        self.misses += 1
        return None

    def put(self, model_id: str, sha: str, value: np.ndarray) -> None:
        if self.root is None:
            return
        path = self._path(model_id, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.part.npy")
        np.save(tmp, np.asarray(value), allow_pickle=False)
        tmp.replace(path)
