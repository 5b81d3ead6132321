"""Dataset manifests (docs/conventions.md section 4): ``manifest.jsonl``, one JSON object per clip.

Mono source corpora carry the common keys; FOA datasets add the spatial keys. Extra keys are kept as they are.
Validation names the file and line of the first problem of each record, so a user can fix the folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from soundstage.common.errors import SoundstageError, UsageError
from soundstage.foa import wrap_degrees

MANIFEST_NAME = "manifest.jsonl"

COMMON_KEYS = ("path", "sample_rate", "num_frames", "caption", "source", "licence")
SPATIAL_KEYS = ("spatial_caption", "azimuth_deg", "elevation_deg", "distance_m", "floor_area_m2", "t30_s", "split")
SPLITS = ("train", "valid", "test")

# Room and source statistics of ELSA's simulated set (docs/conventions.md section 2): inclusive (low, high).
# Azimuth is periodic and wrapped to [-180, 180) rather than range-checked.
ATTRIBUTE_RANGES: dict[str, tuple[float, float]] = {
    "elevation_deg": (-47.5, 48.7),
    "distance_m": (0.5, 4.0),
    "floor_area_m2": (13.3, 277.4),
    "t30_s": (0.14, 2.67),
}


class ManifestError(SoundstageError, ValueError):
    """A manifest or a record in it that fails validation; the message names the file and line."""


def check_attribute(name: str, value: float, tolerance: float = 1e-6) -> float:
    """Return ``value`` if it lies in the range of ``name`` (docs/conventions.md section 2); otherwise raise naming
    the valid range."""
    if name == "azimuth_deg":
        if not math.isfinite(value):
            raise ValueError(f"azimuth_deg must be a finite number of degrees, got {value}")
        return wrap_degrees(value)
    low, high = ATTRIBUTE_RANGES[name]
    if not (math.isfinite(value) and low - tolerance <= value <= high + tolerance):
        raise ValueError(f"{name}={value} is out of range; valid range is [{low}, {high}]")
    return float(value)


def validate_record(record: Any, spatial: bool) -> None:
    """Raise ValueError describing the first problem of one manifest record."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    keys = COMMON_KEYS + (SPATIAL_KEYS if spatial else ())
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"missing keys {missing}")
    if not isinstance(record["path"], str) or not record["path"] or Path(record["path"]).is_absolute():
        raise ValueError(f"'path' must be a non-empty relative path, got {record['path']!r}")
    for key in ("sample_rate", "num_frames"):
        if not isinstance(record[key], int) or record[key] <= 0:
            raise ValueError(f"'{key}' must be a positive integer, got {record[key]!r}")
    for key in ("caption",) + (("spatial_caption",) if spatial else ()):
        if not isinstance(record[key], str) or not record[key].strip():
            raise ValueError(f"'{key}' must be a non-empty string")
    if spatial:
        if record["split"] not in SPLITS:
            raise ValueError(f"'split' must be one of {SPLITS}, got {record['split']!r}")
        for key in ("azimuth_deg",) + tuple(ATTRIBUTE_RANGES):
            if not isinstance(record[key], (int, float)):
                raise ValueError(f"'{key}' must be a number, got {record[key]!r}")
            check_attribute(key, float(record[key]), tolerance=1e-3)


def read_manifest(folder_or_file: str | Path, spatial: bool | None = None) -> list[dict[str, Any]]:
    """Read and validate a manifest; ``spatial=None`` infers it from the first record.

    Raises:
        ManifestError: naming the file and 1-based line of the first invalid record.
    """
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: no manifest found (a dataset folder holds {MANIFEST_NAME} and its audio)")
    records: list[dict[str, Any]] = []
    for line_no, record in jsonl_rows(path):
        if spatial is None:
            spatial = isinstance(record, dict) and "spatial_caption" in record
        try:
            validate_record(record, spatial)
        except ValueError as exc:
            raise ManifestError(f"{path}:{line_no}: {exc}") from exc
        records.append(record)
    if not records:
        raise ManifestError(f"{path}: the manifest has no records")
    return records


def split_records(folder: str | Path, split: str, max_clips: int | None = None) -> list[dict[str, Any]]:
    """The spatial records of one split (``train``, ``valid``, ``test``) of a dataset folder, the first ``max_clips``
    of them when given; ManifestError if there are none, UsageError if ``max_clips < 1``."""
    if max_clips is not None and max_clips < 1:
        raise UsageError(f"max_clips must be at least 1, got {max_clips}")
    records = [r for r in read_manifest(folder, spatial=True) if r["split"] == split]
    if not records:
        raise ManifestError(f"{folder}: the manifest has no clips in split {split!r}")
    return records[:max_clips]


def write_manifest(folder_or_file: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records atomically (a killed writer leaves the old manifest intact)."""
    path = Path(folder_or_file)
    if path.is_dir() or not path.suffix:
        path = path / MANIFEST_NAME
    write_jsonl(path, records)
    return path


def jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(1-based line, value)`` for each non-blank line of a JSON-lines file.

    Raises:
        ManifestError: naming the file and line of the first line that is not valid JSON.
    """
    with Path(path).open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line through a ``.part`` file, so a killed writer leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)

