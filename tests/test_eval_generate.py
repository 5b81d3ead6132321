"""benchmarks/eval_generate.py: its measures on known answers and a whole evaluation on a tiny pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from soundstage.common.audio import save_audio
from soundstage.foa import encode_mono, vector_to_angles
from soundstage.sample import SoundstagePipeline, parse_trajectory, trajectory_vectors

from .benchmark_scripts import benchmark_module
from .sample.conftest import tiny_components


@pytest.fixture(scope="module")
def ev() -> Iterator[ModuleType]:
    with benchmark_module("eval_generate") as module:
        yield module


def test_quadrant_edges(ev: ModuleType) -> None:
    assert [ev.quadrant(a) for a in (-90, 180, -180, 44, 46, -44, -46, 134, 136, 0, 450)] == [
        "right", "back", "back", "front", "left", "front", "right", "left", "back", "front", "left"]


def moving_plane_wave(trajectory: str, seconds: float, sample_rate: int, silent_tail_s: float) -> np.ndarray:
    """Noise encoded block by block (40 ms) at the trajectory's direction at each block's centre; silent tail."""
    hop = round(0.04 * sample_rate)
    blocks = round(seconds / 0.04)
    az, el = vector_to_angles(trajectory_vectors(parse_trajectory(trajectory), blocks, 25.0))
    noise = np.random.default_rng(0).standard_normal(blocks * hop).astype(np.float32)
    foa = np.concatenate([encode_mono(noise[i * hop:(i + 1) * hop], float(az[i]), float(el[i]))
                          for i in range(blocks)], axis=-1)
    return np.pad(foa, ((0, 0), (0, round(silent_tail_s * sample_rate))))


def test_trajectory_error_of_a_perfect_moving_plane_wave_is_zero(ev: ModuleType) -> None:
    foa = moving_plane_wave("0:90:0,4:-90:0", 4.0, 24000, silent_tail_s=0.4)
    errors = ev.trajectory_frame_errors(foa, 24000, "0:90:0,4:-90:0")
    assert errors.size == 100  # the 10 silent frames fall below the 30-dB gate
    assert np.median(errors) < 0.1 and errors.max() < 1.0
    shifted = ev.trajectory_frame_errors(foa, 24000, "0:60:0,4:-120:0")  # a wrong trajectory is 30 deg off
    assert np.median(shifted) == pytest.approx(30.0, abs=0.5)


def test_pick_examples_spreads_classes_and_directions(ev: ModuleType) -> None:
    records = [{"class": c, "azimuth_deg": a} for c, a in
               [("dog", 0), ("dog", 90), ("car", 90), ("bell", 180), ("rain", -90), ("car", 0)]]
    chosen = ev.pick_examples(records, 4)
    assert chosen == [0, 2, 3, 4]
    assert ev.pick_examples(records, 6) == list(range(6))


def write_dataset(folder: Path, sample_rate: int) -> None:
    """Two test clips and two training clips (one per class) of noise encoded at their labelled direction."""
    rows = [("test", "dog", "a dog barks", 90.0, 0.3), ("test", "bell", "a bell rings", -170.0, 1.2),
            ("train", "dog", "a small dog yaps", 0.0, 0.4), ("train", "bell", "a church bell", 45.0, 0.8)]
    rng = np.random.default_rng(1)
    records = []
    for i, (split, name, caption, azimuth, t30) in enumerate(rows):
        path = f"audio/{i}.wav"
        save_audio(folder / path, encode_mono(0.1 * rng.standard_normal(sample_rate), azimuth, 0.0), sample_rate,
                   subtype="FLOAT")
        records.append({"path": path, "sample_rate": sample_rate, "num_frames": sample_rate, "caption": caption,
                        "source": "synthetic", "licence": "CC0", "split": split, "class": name,
                        "spatial_caption": f"{caption} to the {'left' if azimuth > 0 else 'back'}",
                        "azimuth_deg": azimuth, "elevation_deg": 0.0, "distance_m": 1.5, "floor_area_m2": 40.0,
                        "t30_s": t30})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_evaluation_on_a_tiny_pipeline(ev: ModuleType, tmp_path: Path) -> None:
    pipe = SoundstagePipeline(*tiny_components())
    write_dataset(tmp_path / "data", pipe.sample_rate)
    settings = ev.EvalSettings(steps=2, max_seconds=0.8, trajectory="0:90:0,1:-90:0", moving_seconds=1.0,
                               moving_prompts=1)
    result = ev.run_evaluation(pipe, tmp_path / "data", "test", settings, examples=tmp_path / "examples")
    clips = result["clips"]
    assert [c["seconds"] for c in clips] == [0.8, 0.8] and [c["seed"] for c in clips] == [0, 1]
    # the lock imposes the requested direction (up to the STFT estimator's bias of several degrees on the tiny
    # codec, see tests/sample/test_pipeline.py); the untrained model has no direction of its own; the real clips are
    # plane waves from their labels
    assert max(c["lock_error_deg"] for c in clips) < 12.0
    assert all(c["no_lock_error_deg"] > 3 * c["lock_error_deg"] for c in clips)
    assert max(c["real_error_deg"] for c in clips) < 0.5
    assert result["parametric_lock"]["t30_le_0.5"]["clips"] == 1 and result["parametric_lock"]["all"]["clips"] == 2
    assert all("descriptive" in c and c["descriptive"]["label_quadrant"] in ("left", "back") for c in clips)
    assert all(c["descriptive"]["correct"] for c in clips)  # the captions' direction words, locked
    assert all(c["descriptive_no_lock"]["label_quadrant"] == c["descriptive"]["label_quadrant"] for c in clips)
    assert result["descriptive"]["accuracy"] == 1.0 and result["descriptive_no_lock"]["clips"] == 2
    assert result["semantics"]["classes"] == 2 and result["semantics"]["chance"] == 0.5
    assert result["moving"]["prompts"] == 1 and result["moving"]["frames"] > 0
    moving_diffuseness = result["moving_clips"][0]["framewise_diffuseness"]
    assert 0.0 <= moving_diffuseness <= 1.0 and result["moving"]["median_framewise_diffuseness"] == moving_diffuseness
    assert not any(k.startswith("_") for c in clips for k in c)
    json.dumps(result)  # every value is JSON
    files = sorted(p.name for p in (tmp_path / "examples").iterdir())
    assert len(result["examples"]) == 3 and "examples.json" in files
    assert sum(f.endswith(".binaural.wav") for f in files) == 3 and sum(f.endswith(".png") for f in files) == 3
    assert ev.format_table(result).count("\n") >= 8
    # --max-clips limits the split clips, not the moving prompts (the first distinct captions of the whole split)
    settings = ev.EvalSettings(steps=2, max_seconds=0.8, trajectory="0:90:0,1:-90:0", moving_seconds=1.0,
                               moving_prompts=2)
    short = ev.run_evaluation(pipe, tmp_path / "data", "test", settings, max_clips=1)
    assert len(short["clips"]) == 1
    assert [m["prompt"] for m in short["moving_clips"]] == ["a dog barks", "a bell rings"]
    assert [m["t30_s"] for m in short["moving_clips"]] == [0.3, 1.2]  # each in the room of its caption's clip
