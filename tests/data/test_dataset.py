"""FOAClips, FOADataset and the cropping rules: windows of the clips, index -> item determinism, the draw order that
keeps a run's crops fixed, the int16 cache, resampling, centre crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundstage.data.dataset import FOAClips, FOADataset, centre_crops, centre_offset, crop_or_pad, random_offset
from soundstage.data.manifest import write_manifest
from soundstage.foa import rotate_foa

SR = 8000


def _write_clip(folder: Path, name: str, seconds: float, seed: int) -> tuple[str, int]:
    rng = np.random.default_rng(seed)
    foa = (0.2 * rng.standard_normal((4, int(seconds * SR)))).astype(np.float32)
    foa[0] += 0.3  # W carries a recognisable offset
    sf.write(folder / "audio" / name, foa.T, SR, subtype="PCM_16")
    return f"audio/{name}", foa.shape[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("foa_dataset")
    (root / "audio").mkdir()
    records = []
    for i, (seconds, split) in enumerate([(2.0, "train"), (1.5, "train"), (0.5, "train"), (1.0, "test")]):
        path, frames = _write_clip(root, f"c{i}.flac", seconds, i)
        records.append({
            "path": path, "sample_rate": SR, "num_frames": frames, "caption": f"sound {i}",
            "spatial_caption": f"sound {i} to the left", "azimuth_deg": 10.0 * i, "elevation_deg": -5.0 * i,
            "distance_m": 1.0 + i * 0.5, "floor_area_m2": 20.0 + i, "t30_s": 0.3 + 0.1 * i, "source": "synthetic",
            "licence": "CC0", "split": split,
        })
    write_manifest(root, records)
    return root


def _file(folder: Path, i: int) -> np.ndarray:
    return sf.read(folder / "audio" / f"c{i}.flac", dtype="float32")[0].T  # (4, T)


def test_clips_are_the_split_s_files_and_the_cache_is_lossless(folder: Path) -> None:
    clips = FOAClips(folder, "train", SR, cache_mb=1)
    assert len(clips) == 3 and [r["caption"] for r in clips.records] == ["sound 0", "sound 1", "sound 2"]
    first = clips.audio(0)
    assert 0 in clips.cache and clips.cache[0].dtype == np.int16
    np.testing.assert_array_equal(first, _file(folder, 0))  # 16-bit FLAC: int16 round trip is exact
    np.testing.assert_array_equal(clips.audio(0), first)
    assert FOAClips(folder, "test", SR).records[0]["caption"] == "sound 3"
    with pytest.raises(ValueError, match="no clips in split 'valid'"):
        FOAClips(folder, "valid", SR)


def test_the_cache_stops_at_its_budget(folder: Path) -> None:
    clips = FOAClips(folder, "train", SR, cache_mb=(2.0 * SR * 4 * 2) / 2**20)  # room for the 2 s clip only
    for i in range(3):
        np.testing.assert_array_equal(clips.audio(i), _file(folder, i))
    assert list(clips.cache) == [0] and clips.used == 2 * SR * 4 * 2
    uncached = FOAClips(folder, "train", SR)
    uncached.audio(1)
    assert not uncached.cache


def test_resampled_on_load(folder: Path) -> None:
    assert FOAClips(folder, "train", 16000).audio(2).shape == (4, 8000)
    assert FOADataset(FOAClips(folder, "train", 16000), crop_seconds=0.5, seed=0)[0].shape == (4, 8000)


def test_crop_rules() -> None:
    x = np.arange(10, dtype=np.float64).reshape(1, 10)
    np.testing.assert_array_equal(crop_or_pad(x, 4, 3), [[3, 4, 5, 6]])
    padded = crop_or_pad(x, 6, 7, fill=-1.0)
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded, [[7, 8, 9, -1, -1, -1]])
    assert crop_or_pad(np.zeros((2, 3, 5), dtype=np.float16), 8, 0).shape == (2, 3, 8)  # last axis only
    assert centre_offset(10, 4) == 3 and centre_offset(3, 4) == 0
    starts = {random_offset(np.random.default_rng(s), 10, 4) for s in range(200)}
    assert starts == set(range(7))  # every full window, uniformly drawn
    rng, reference = np.random.default_rng(1), np.random.default_rng(1)
    assert random_offset(rng, 3, 4) == 0
    reference.integers(0, 1)
    assert rng.random() == reference.random()  # a short clip still takes one draw


def test_items_are_rotated_windows_drawn_in_a_fixed_order(folder: Path) -> None:
    """Item i = crop at rng.integers, then a yaw from rng.uniform(-180, 180): a run's crops depend on this order."""
    data = FOADataset(FOAClips(folder, "train", SR), crop_seconds=0.25, seed=7)
    full = _file(folder, 1)
    for index in (1, 4, 1000):  # clip 1 for each
        rng = np.random.default_rng((7, index))
        start = int(rng.integers(0, full.shape[1] - data.crop_samples + 1))
        yaw = float(rng.uniform(-180.0, 180.0))
        expected = rotate_foa(torch.from_numpy(full[:, start : start + data.crop_samples]), yaw_deg=yaw)
        item = data[index]
        assert item.shape == (4, SR // 4) and item.dtype == torch.float32
        torch.testing.assert_close(item, expected, rtol=0, atol=0)
        torch.testing.assert_close(item[0], torch.from_numpy(full[0, start : start + data.crop_samples]))  # W stays


def test_index_to_item_is_deterministic_and_wraps(folder: Path) -> None:
    a = FOADataset(FOAClips(folder, "train", SR), 0.5, seed=4)
    b = FOADataset(FOAClips(folder, "train", SR, cache_mb=10), 0.5, seed=4)
    for index in (0, 5, 1000, 123457):
        assert torch.equal(a[index], b[index])
    assert not torch.equal(a[1], a[4])  # same clip, another stream index: another crop and yaw
    assert not torch.equal(a[0], FOADataset(FOAClips(folder, "train", SR), 0.5, seed=5)[0])
    with pytest.raises(IndexError):
        a[-1]
    with pytest.raises(ValueError, match="crop_seconds"):
        FOADataset(FOAClips(folder, "train", SR), 0.0, seed=0)


def test_short_clips_are_zero_padded(folder: Path) -> None:
    item = FOADataset(FOAClips(folder, "train", SR), crop_seconds=1.0, seed=0)[2]  # a 0.5 s clip
    assert item.shape == (4, SR)
    assert torch.all(item[:, SR // 2 :] == 0) and torch.any(item[0, : SR // 2] != 0)


def test_centre_crops_take_the_first_clips(folder: Path) -> None:
    clips = FOAClips(folder, "train", SR)
    crops = centre_crops(clips, 1.0, count=2)
    assert crops.shape == (2, 4, SR)
    np.testing.assert_array_equal(crops[0].numpy(), _file(folder, 0)[:, SR // 2 : SR // 2 + SR])
    assert centre_crops(clips, 1.0, count=10).shape == (3, 4, SR)
    assert torch.all(centre_crops(clips, 1.0, count=3)[2, :, SR // 2 :] == 0)
