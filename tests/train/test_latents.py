"""soundstage data encode: stored posterior of each rotated clip, rotated labels (sign checked on a plane wave),
resumption, shards, refusal of another codec or rotation count, unreadable clips, the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from soundstage.cli import main
from soundstage.codec import CODEC_PRESETS, FOACodec, codec_fingerprint
from soundstage.codec.direction_latents import DIRECTION_GAIN, NUM_DIRECTION_CHANNELS
from soundstage.common.audio import load_audio
from soundstage.data.captions import direction_word
from soundstage.data.latents import LatentFolderError, read_latents_info
from soundstage.data.manifest import read_manifest
from soundstage.foa import broadband_doa, encode_mono, great_circle_deg, rotate_foa, vector_to_angles, wrap_degrees
from soundstage.train.latents import encode_latents, rotated_record
from tests.codec.synthetic import make_dataset

K = 3
CLIPS = {"train": 3, "valid": 1, "test": 1}


def tiny_codec(seed: int = 0) -> FOACodec:
    torch.manual_seed(seed)
    return FOACodec(CODEC_PRESETS["tiny"]).eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("foa"), sample_rate=8000, clips=CLIPS, seconds=1.0)


@pytest.fixture(scope="module")
def encoded(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lat") / "latents"
    report = encode_latents(tiny_codec(), data, out, rotations=K, progress=False)
    assert report.complete and report.encoded == report.items == 5 * K and report.skipped == 0
    return out


def test_stored_posterior_is_the_codecs_of_the_rotated_clip(data: Path, encoded: Path) -> None:
    codec = tiny_codec()
    info = read_latents_info(encoded)
    assert info.codec_fingerprint == codec_fingerprint(codec) and info.rotations == K
    assert (info.latent_channels, info.hop, info.sample_rate) == (8, 256, 8000)
    records = read_manifest(encoded)
    assert len(records) == 5 * K and sorted({r["split"] for r in records}) == ["test", "train", "valid"]
    for record in records:
        audio, _ = load_audio(data / record["audio_path"], channels=4)
        foa = rotate_foa(torch.from_numpy(audio), yaw_deg=record["yaw_deg"])
        with torch.no_grad():
            mean, std = codec.posterior(foa[None])
        stored = load_file(str(encoded / record["path"]))
        assert stored["mean"].dtype == torch.float32 and stored["mean"].shape == (8, record["latent_frames"])
        torch.testing.assert_close(stored["mean"], mean[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(stored["std"], std[0], rtol=0, atol=1e-5)


def test_rotated_labels_follow_the_direction_in_the_latents(data: Path, encoded: Path) -> None:
    sources = read_manifest(data)
    records = read_manifest(encoded)
    for i, source in enumerate(sources):
        versions = records[i * K:(i + 1) * K]
        assert [r["rotation"] for r in versions] == list(range(K))
        assert versions[0]["yaw_deg"] == 0.0 and versions[0]["spatial_caption"] == source["spatial_caption"]
        assert len({r["yaw_deg"] for r in versions}) == K
        for record in versions:
            assert record["azimuth_deg"] == pytest.approx(wrap_degrees(source["azimuth_deg"] + record["yaw_deg"]))
            assert record["elevation_deg"] == source["elevation_deg"]
            # the direction channels hold each frame's measured direction: their mean points at the label
            track = load_file(str(encoded / record["path"]))["mean"][-NUM_DIRECTION_CHANNELS:] / DIRECTION_GAIN
            az, el = vector_to_angles(track.mean(-1))
            assert great_circle_deg(float(az), float(el), record["azimuth_deg"], record["elevation_deg"]) < 15
            if record["rotation"] > 0:
                assert direction_word(record["azimuth_deg"]) in record["spatial_caption"].lower()


@pytest.mark.parametrize("azimuth", [30.0, 170.0, -60.0])
@pytest.mark.parametrize("version", [1, 2, 3])
def test_the_label_of_a_yawed_plane_wave_is_where_broadband_doa_measures_it(azimuth: float, version: int) -> None:
    record = {"path": "a.flac", "caption": "a dog barks", "spatial_caption": "", "azimuth_deg": azimuth,
              "elevation_deg": 10.0, "distance_m": 1.0, "floor_area_m2": 40.0, "t30_s": 0.5}
    rotated = rotated_record(record, 7, version, seed=0)
    assert rotated["yaw_deg"] != 0.0 and rotated["azimuth_deg"] != azimuth
    signal = torch.from_numpy(np.random.default_rng(version).standard_normal(8000).astype(np.float32))
    measured_az, measured_el = broadband_doa(rotate_foa(encode_mono(signal, azimuth, 10.0), yaw_deg=rotated["yaw_deg"]))
    assert great_circle_deg(float(measured_az), float(measured_el), rotated["azimuth_deg"], 10.0) < 0.5


def test_rerun_skips_done_items_and_rewrites_only_a_missing_one(data: Path, encoded: Path) -> None:
    records = read_manifest(encoded)
    stamps = {r["path"]: (encoded / r["path"]).stat().st_mtime_ns for r in records}
    missing = encoded / records[4]["path"]
    before = missing.read_bytes()
    missing.unlink()
    report = encode_latents(tiny_codec(), data, encoded, rotations=K, progress=False)
    assert (report.encoded, report.reused, report.complete) == (1, 5 * K - 1, True)
    assert missing.read_bytes() == before
    assert all((encoded / p).stat().st_mtime_ns == t for p, t in stamps.items() if p != records[4]["path"])
    assert read_manifest(encoded) == records


def test_shards_assemble_the_same_manifest(data: Path, encoded: Path, tmp_path: Path) -> None:
    first = encode_latents(tiny_codec(), data, tmp_path, rotations=K, shard=0, num_shards=2, progress=False)
    assert not first.complete and first.shard_clips == 3 and not (tmp_path / "manifest.jsonl").exists()
    second = encode_latents(tiny_codec(), data, tmp_path, rotations=K, shard=1, num_shards=2, progress=False)
    assert second.complete and second.shard_clips == 2
    assert (tmp_path / "manifest.jsonl").read_text() == (encoded / "manifest.jsonl").read_text()
    for record in read_manifest(tmp_path):
        assert (tmp_path / record["path"]).read_bytes() == (encoded / record["path"]).read_bytes()


def test_another_codec_or_rotation_count_is_refused_naming_both(data: Path, encoded: Path) -> None:
    other = tiny_codec(seed=1)
    with pytest.raises(LatentFolderError) as refusal:
        encode_latents(other, data, encoded, rotations=K, progress=False)
    assert codec_fingerprint(other) in str(refusal.value) and codec_fingerprint(tiny_codec()) in str(refusal.value)
    with pytest.raises(LatentFolderError, match=f"rotations: folder {K}, this run {K + 1}"):
        encode_latents(tiny_codec(), data, encoded, rotations=K + 1, progress=False)
    assert read_latents_info(encoded).rotations == K


def test_an_unreadable_clip_is_reported_and_skipped(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "foa", sample_rate=8000, clips={"train": 2, "valid": 1})
    bad = read_manifest(data)[1]["path"]
    (data / bad).write_bytes(b"not audio at all")
    report = encode_latents(tiny_codec(), data, tmp_path / "lat", rotations=2, progress=False)
    assert report.complete and report.skipped == 1 and report.skip_reasons == {"unreadable audio": 1}
    assert report.items == 4 and bad not in {r["audio_path"] for r in read_manifest(tmp_path / "lat")}
    skipped = [json.loads(line) for line in (tmp_path / "lat" / "skipped.jsonl").read_text().splitlines()]
    assert [s["path"] for s in skipped] == [bad]
    again = encode_latents(tiny_codec(), data, tmp_path / "lat", rotations=2, progress=False)
    assert (again.encoded, again.skipped, again.items) == (0, 1, 4)


def test_command_line_encodes_and_refuses_a_bad_shard(data: Path, tmp_path: Path, capsys) -> None:
    codec_dir = tiny_codec().save_pretrained(tmp_path / "codec")
    args = ["data", "encode", "--codec", str(codec_dir), "--data", str(data), "--out", str(tmp_path / "lat")]
    assert main([*args, "--rotations", "2"]) == 0
    assert "encoded 10 items" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "lat")) == 10
    assert main([*args, "--rotations", "2", "--shard", "2", "--num-shards", "2"]) == 2
    assert "shard must be in [0, num_shards=2), got 2" in capsys.readouterr().err
