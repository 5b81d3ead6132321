"""Manifest validation names the line and the problem; attribute ranges come from docs/conventions.md section 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soundstage.data.manifest import ManifestError, check_attribute, read_manifest, write_manifest

GOOD = {
    "path": "audio/a.flac", "sample_rate": 24000, "num_frames": 48000, "caption": "a dog barks",
    "spatial_caption": "a dog barks to the left", "azimuth_deg": 90.0, "elevation_deg": 0.0, "distance_m": 1.5,
    "floor_area_m2": 40.0, "t30_s": 0.5, "source": "test", "licence": "CC0", "split": "train",
}


def test_round_trip(tmp_path: Path) -> None:
    write_manifest(tmp_path, [GOOD, {**GOOD, "path": "audio/b.flac"}])
    assert [r["path"] for r in read_manifest(tmp_path)] == ["audio/a.flac", "audio/b.flac"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"distance_m": 9.0}, r"distance_m=9.0 is out of range; valid range is \[0.5, 4.0\]"),
        ({"caption": "  "}, "'caption' must be a non-empty string"),
        ({"split": "dev"}, "'split' must be one of"),
        ({"path": "/abs/a.flac"}, "'path' must be a non-empty relative path"),
    ],
)
def test_invalid_record_names_the_line(tmp_path: Path, change: dict, message: str) -> None:
    write_manifest(tmp_path, [GOOD, {**GOOD, **change}])
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: " + message):
        read_manifest(tmp_path)


def test_broken_json_and_missing_keys(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(ManifestError, match=":2: not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({k: v for k, v in GOOD.items() if k != "t30_s"}) + "\n")
    with pytest.raises(ManifestError, match=r":1: missing keys \['t30_s'\]"):
        read_manifest(tmp_path, spatial=True)


def test_azimuth_wraps_and_ranges_are_enforced() -> None:
    assert check_attribute("azimuth_deg", 180.0) == -180.0 and check_attribute("azimuth_deg", -190.0) == 170.0
    assert check_attribute("azimuth_deg", 270.0) == -90.0
    with pytest.raises(ValueError, match=r"t30_s=3.0 is out of range; valid range is \[0.14, 2.67\]"):
        check_attribute("t30_s", 3.0)
