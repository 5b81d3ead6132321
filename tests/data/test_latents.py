"""Reading a latent folder: items are a pure function of (seed, index), crops are windows of the stored latents
(short items whole), the collate pads and masks, and a folder without latents.json is refused."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from soundstage.data.latents import (
    LatentDataset,
    LatentFolderError,
    LatentsInfo,
    collate_latents,
    read_latents_info,
    write_latents_info,
)
from soundstage.data.manifest import write_manifest

C = 4
FRAMES = [5, 12, 30]  # one shorter than the crop, one equal, one longer


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("latents")
    write_latents_info(root, LatentsInfo(codec_fingerprint="0" * 16, latent_scale=2.0, latent_channels=C, hop=256,
                                         sample_rate=8000, rotations=1, seed=0, source_dataset="none"))
    (root / "latents").mkdir()
    records = []
    for i, frames in enumerate(FRAMES):
        # frame f of channel c holds 1000 * item + 10 * f + c: any window is recognisable
        mean = (1000.0 * i + 10.0 * torch.arange(frames)[None] + torch.arange(C)[:, None]).float()
        save_file({"mean": mean, "std": mean / 100.0 + 1.0}, str(root / f"latents/{i}.safetensors"))
        records.append({"path": f"latents/{i}.safetensors", "sample_rate": 8000, "num_frames": frames * 256,
                        "caption": "a noise", "spatial_caption": "a noise on the left", "azimuth_deg": 90.0,
                        "elevation_deg": 0.0, "distance_m": 1.0, "floor_area_m2": 40.0, "t30_s": 0.5,
                        "source": "synthetic", "licence": "CC0", "split": "train", "latent_frames": frames})
    write_manifest(root, records)
    return root


def test_items_are_a_pure_function_of_seed_and_index(folder: Path) -> None:
    a, b = LatentDataset(folder, "train", 12, seed=3), LatentDataset(folder, "train", 12, seed=3)
    for index in (0, 2, 5, 1000):
        x, y = a[index], b[index]
        assert torch.equal(x["mean"], y["mean"]) and torch.equal(x["std"], y["std"]) and x["seed"] == y["seed"]
    assert len({a[i]["seed"] for i in range(6)}) == 6  # one per stream index, even for the same record
    starts = {int(LatentDataset(folder, "train", 12, seed=s)[2]["mean"][0, 0]) for s in range(20)}
    assert len(starts) > 3  # the crop start does depend on the seed


@pytest.mark.parametrize("index", range(9))
def test_crops_are_windows_of_the_item_and_short_items_come_whole(folder: Path, index: int) -> None:
    item = LatentDataset(folder, "train", 12, seed=0)[index]
    which, frames = index % 3, FRAMES[index % 3]
    assert item["frames"] == min(frames, 12) == item["mean"].shape[-1] and item["record"]["latent_frames"] == frames
    start = (int(item["mean"][0, 0]) - 1000 * which) // 10
    expected = (1000.0 * which + 10.0 * torch.arange(start, start + item["frames"])[None]
                + torch.arange(C)[:, None])
    assert torch.equal(item["mean"], expected) and torch.equal(item["std"], expected / 100.0 + 1.0)


def test_collate_pads_to_the_longest_and_masks_the_padding(folder: Path) -> None:
    dataset = LatentDataset(folder, "train", 12, seed=0)
    batch = collate_latents([dataset[0], dataset[1], dataset[2]])
    assert batch["mean"].shape == batch["std"].shape == (3, C, 12)
    assert batch["frames"].tolist() == [5, 12, 12]
    assert batch["frame_mask"].tolist()[0] == [True] * 5 + [False] * 7 and batch["frame_mask"][1:].all()
    assert (batch["mean"][0, :, 5:] == 0).all() and (batch["std"][0, :, 5:] == 1).all()
    assert torch.equal(batch["mean"][0, :, :5], dataset[0]["mean"])
    assert [r["latent_frames"] for r in batch["records"]] == FRAMES
    assert batch["seeds"] == [dataset[i]["seed"] for i in range(3)]


def test_a_folder_without_latents_json_or_the_split_is_refused(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(LatentFolderError, match="soundstage data encode"):
        LatentDataset(tmp_path, "train", 12, seed=0)
    with pytest.raises(ValueError, match="no clips in split 'valid'"):
        LatentDataset(folder, "valid", 12, seed=0)
    with pytest.raises(ValueError, match="crop_frames"):
        LatentDataset(folder, "train", 0, seed=0)


def _write_info_repeatedly(folder: str, times: int) -> None:
    info = LatentsInfo(codec_fingerprint="0" * 16, latent_scale=2.0, latent_channels=C, hop=256, sample_rate=8000,
                       rotations=1, seed=0, source_dataset="none", latent_mean=(0.5,) * C, latent_std=(2.0,) * C)
    for _ in range(times):
        write_latents_info(Path(folder), info)


def test_shards_writing_latents_json_together_do_not_collide(tmp_path: Path) -> None:
    """Two shards started together both write latents.json: each through its own temporary file."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_info_repeatedly, args=(str(tmp_path), 200)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    info = read_latents_info(tmp_path)
    assert info.latent_mean == (0.5,) * C and info.normalizer.gain.tolist() == [0.5] * C
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents.json"]  # no temporary file left
