"""FOADataset: shapes and labels, index -> item determinism, non-spatial items, resampling, collate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundstage.data.dataset import LABEL_KEYS, FOADataset, collate
from soundstage.data.manifest import write_manifest

SR = 8000


def _write_clip(folder: Path, name: str, seconds: float, seed: int) -> tuple[str, int]:
    rng = np.random.default_rng(seed)
    foa = (0.2 * rng.standard_normal((4, int(seconds * SR)))).astype(np.float32)
    foa[0] += 0.3  # W carries a recognisable offset
    sf.write(folder / "audio" / name, foa.T, SR, subtype="FLOAT" if name.endswith(".wav") else "PCM_24")
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


def test_items_have_shapes_labels_and_captions(folder: Path) -> None:
    data = FOADataset(folder, "train", SR, crop_seconds=1.0)
    assert len(data) == 3
    item = data[1]
    assert item["audio"].shape == (4, SR) and item["audio"].dtype == torch.float32
    assert item["is_spatial"].dtype == torch.bool and bool(item["is_spatial"])
    assert item["caption"] == "sound 1 to the left" and item["semantic_caption"] == "sound 1"
    assert item["azimuth_deg"].item() == pytest.approx(10.0) and item["distance_m"].item() == pytest.approx(1.5)
    assert all(item[k].shape == () and item[k].dtype == torch.float32 for k in LABEL_KEYS)
    assert FOADataset(folder, "test", SR, 1.0)[0]["semantic_caption"] == "sound 3"


def test_crop_is_a_window_of_the_clip(folder: Path) -> None:
    full, _ = sf.read(folder / "audio" / "c0.flac", dtype="float32")
    item = FOADataset(folder, "train", SR, crop_seconds=0.25)[0]
    window = item["audio"].numpy()
    starts = [s for s in range(full.shape[0] - window.shape[1] + 1) if np.array_equal(full[s, :], window[:, 0])]
    assert len(starts) == 1
    np.testing.assert_array_equal(full[starts[0] : starts[0] + window.shape[1]].T, window)


def test_short_clips_are_zero_padded(folder: Path) -> None:
    item = FOADataset(folder, "train", SR, crop_seconds=1.0)[2]  # a 0.5 s clip
    assert item["audio"].shape == (4, SR)
    assert torch.all(item["audio"][:, SR // 2 :] == 0) and torch.any(item["audio"][:, : SR // 2] != 0)


def test_index_to_item_is_deterministic_and_wraps(folder: Path) -> None:
    a = FOADataset(folder, "train", SR, 0.5, nonspatial_share=0.3, seed=4)
    b = FOADataset(folder, "train", SR, 0.5, nonspatial_share=0.3, seed=4, cache_size=2)
    for index in (0, 5, 1000, 123457):
        x, y = a[index], b[index]
        assert torch.equal(x["audio"], y["audio"]) and x["caption"] == y["caption"]
        assert x["semantic_caption"] == a.records[index % len(a)]["caption"]
    assert not torch.equal(a[1]["audio"], a[4]["audio"])  # same clip, a different stream index: another crop
    other_seed = FOADataset(folder, "train", SR, 0.5, nonspatial_share=0.3, seed=5)
    assert not torch.equal(a[0]["audio"], other_seed[0]["audio"])
    with pytest.raises(IndexError):
        a[-1]


def test_nonspatial_items_are_omnidirectional(folder: Path) -> None:
    data = FOADataset(folder, "train", SR, 0.5, nonspatial_share=1.0)
    full, _ = sf.read(folder / "audio" / "c0.flac", dtype="float32")
    item = data[0]
    assert not bool(item["is_spatial"]) and item["caption"] == "sound 0"
    assert torch.all(item["audio"][1:] == 0) and torch.any(item["audio"][0] != 0)
    w = full[:, 0]
    window = item["audio"][0].numpy()
    assert any(np.array_equal(w[s : s + window.size], window) for s in range(w.size - window.size + 1))
    assert all(math.isnan(item[k].item()) for k in LABEL_KEYS)


def test_nonspatial_share_is_respected(folder: Path) -> None:
    data = FOADataset(folder, "train", SR, 0.1, nonspatial_share=0.25, seed=1)
    flags = [bool(data[i]["is_spatial"]) for i in range(400)]
    assert 0.18 < 1.0 - np.mean(flags) < 0.32
    assert all(bool(FOADataset(folder, "train", SR, 0.1)[i]["is_spatial"]) for i in range(20))


def test_dry_sources_are_used_when_available(folder: Path, tmp_path: Path) -> None:
    data = FOADataset(folder, "train", SR, 0.5, nonspatial_share=1.0, dry_root=tmp_path)
    records = data.records
    dry = np.full(SR, 0.125, dtype=np.float32)
    sf.write(tmp_path / "dry0.wav", dry, SR, subtype="FLOAT")
    for record in records:
        record["source_clip"] = "dry0.wav"
    item = data[0]
    np.testing.assert_allclose(item["audio"][0].numpy(), 0.125)


def test_resampled_on_load(folder: Path) -> None:
    item = FOADataset(folder, "train", 16000, crop_seconds=0.5)[0]
    assert item["audio"].shape == (4, 8000)


def test_collate_stacks_tensors_and_lists_strings(folder: Path) -> None:
    data = FOADataset(folder, "train", SR, 0.5, nonspatial_share=0.5, seed=2)
    batch = collate([data[i] for i in range(6)])
    assert batch["audio"].shape == (6, 4, SR // 2)
    assert batch["azimuth_deg"].shape == (6,) and batch["is_spatial"].shape == (6,)
    assert isinstance(batch["caption"], list) and len(batch["caption"]) == 6
    loader = torch.utils.data.DataLoader(data, batch_size=3, collate_fn=collate)
    assert next(iter(loader))["audio"].shape == (3, 4, SR // 2)


def test_bad_arguments_are_refused(folder: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        FOADataset(folder, "dev", SR, 1.0)
    with pytest.raises(ValueError, match="no clips"):
        FOADataset(folder, "valid", SR, 1.0)
    with pytest.raises(ValueError, match="nonspatial_share"):
        FOADataset(folder, "train", SR, 1.0, nonspatial_share=1.5)
