"""Per-channel latent normalisation: known statistics, the codec's encode/decode, the direction clamp, export by
``calibrate``, and the latent folder that carries it to the DiT."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from soundstage.codec import CODEC_PRESETS, FOACodec, codec_fingerprint
from soundstage.codec.calibrate import calibrate_latent_statistics
from soundstage.codec.direction_latents import DIRECTION_GAIN, NUM_DIRECTION_CHANNELS
from soundstage.codec.latent_norm import MIN_STD, LatentNormalizer, measure_latent_statistics
from soundstage.common.audio import load_audio
from soundstage.data.latents import read_latents_info
from soundstage.data.manifest import read_manifest
from soundstage.foa import encode_mono
from soundstage.train.latents import encode_latents

from .synthetic import make_dataset, synthetic_foa


def tiny_codec(seed: int = 0) -> FOACodec:
    torch.manual_seed(seed)
    return FOACodec(CODEC_PRESETS["tiny"]).eval()


def test_measured_statistics_are_the_known_ones_and_the_map_round_trips() -> None:
    g = torch.Generator().manual_seed(0)
    mu, sigma = torch.tensor([1.5, -0.2, 0.0]), torch.tensor([0.3, 2.0, 1.0])
    batches = [mu[:, None] + sigma[:, None] * torch.randn(4, 3, 500, generator=g) for _ in range(5)]
    mean, std = measure_latent_statistics(batches)
    assert (np.abs(np.array(mean) - mu.numpy()) < 0.03 * sigma.numpy()).all()
    np.testing.assert_allclose(std, sigma.numpy(), rtol=0.02)
    norm = LatentNormalizer.from_statistics(3, 0.5, mean, std)
    z = norm.normalize(torch.cat(batches))
    np.testing.assert_allclose(z.mean((0, 2)).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std((0, 2)).numpy(), 1.0, atol=1e-3)
    assert torch.allclose(norm.denormalize(z), torch.cat(batches), atol=1e-5)
    pooled = LatentNormalizer.from_statistics(3, 0.5)  # no statistics: the pooled latent_scale, as before
    assert torch.equal(pooled.normalize(batches[0]), batches[0] * 0.5)
    assert measure_latent_statistics([torch.ones(1, 2, 10)])[1] == (MIN_STD, MIN_STD)  # a constant channel


@pytest.mark.parametrize(("mean", "std", "message"), [
    ([0.0] * 7, [1.0] * 8, "one value per latent channel \\(8\\), got 7 and 8"),
    ([0.0] * 8, [], "one value per latent channel"),
    ([0.0] * 7 + [float("nan")], [1.0] * 8, "finite"),
    ([0.0] * 8, [1.0] * 7 + [0.0], ">= 0.0001"),
])
def test_bad_statistics_are_refused_by_the_config(mean: list[float], std: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CODEC_PRESETS["tiny"], latent_mean=mean, latent_std=std)


def test_encode_is_unit_spread_per_channel_and_decode_undoes_it(tmp_path: Path) -> None:
    codec = tiny_codec()
    rng = np.random.default_rng(3)
    clips = [torch.from_numpy(synthetic_foa(rng, 0.5, 8000, az, 10.0)) for az in (-120.0, -30.0, 40.0, 100.0)]
    with torch.no_grad():
        before = [codec.decode(codec.encode(c), c.shape[-1]) for c in clips]
        raw = torch.cat([codec.posterior(c[None])[0] for c in clips], dim=-1)
    fingerprint = codec_fingerprint(codec)
    codec.set_latent_statistics(*measure_latent_statistics([raw]))
    assert codec_fingerprint(codec) != fingerprint  # another latent space: DiTs of the old one are refused
    with torch.no_grad():
        z = torch.cat([codec.encode(c) for c in clips], dim=-1)[0]
        after = [codec.decode(codec.encode(c), c.shape[-1]) for c in clips]
    np.testing.assert_allclose(z.mean(-1).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(-1, unbiased=False).numpy(), 1.0, atol=1e-3)
    for a, b in zip(before, after):  # normalisation changes the latents, not the audio
        assert torch.allclose(a, b, atol=1e-5)
    codec.save_pretrained(tmp_path / "codec")
    loaded = FOACodec.from_pretrained(tmp_path / "codec")
    assert loaded.config.latent_std == codec.config.latent_std and codec_fingerprint(loaded) == codec_fingerprint(codec)


@pytest.mark.parametrize("per_channel", [False, True], ids=["pooled scale", "per-channel"])
def test_decode_clamps_an_overshooting_direction_track_to_the_unit_ball(per_channel: bool) -> None:
    codec = tiny_codec()
    if per_channel:
        codec.set_latent_statistics([0.1] * 5 + [0.5, -0.4, 0.2], [0.8] * 5 + [1.7, 2.2, 0.9])
    raw = torch.randn(1, 8, 6, generator=torch.Generator().manual_seed(1))
    unit = torch.tensor([0.6, 0.0, 0.8])[None, :, None]
    k = NUM_DIRECTION_CHANNELS
    at_one, at_three = raw.clone(), raw.clone()
    at_one[:, -k:], at_three[:, -k:] = DIRECTION_GAIN * unit, 3 * DIRECTION_GAIN * unit
    norm = codec.latent_normalizer
    with torch.no_grad():
        audio = codec.decode(norm.normalize(at_three), 1536)
        assert torch.allclose(audio, codec.decode(norm.normalize(at_one), 1536), atol=1e-9)
        overshoot = codec.decode_unscaled(at_three, 1536)  # unclamped: X, Y, Z three times as loud
    assert (audio - overshoot).abs().max() > 0.5 * audio.abs().max()


def test_calibration_turns_clips_to_random_yaws_so_direction_has_no_azimuth_bias() -> None:
    codec = tiny_codec()
    n = 8000 // 4
    tone = np.sin(2 * np.pi * 440.0 * np.arange(n) / 8000).astype(np.float32)
    clips = [torch.from_numpy(encode_mono(0.1 * tone, 90.0, 0.0)) for _ in range(64)]  # every clip from the left
    y = CODEC_PRESETS["tiny"].latent_channels - 2  # the direction track's y channel
    unrotated_mean, _ = measure_latent_statistics(codec.posterior(c[None])[0] for c in clips)
    assert unrotated_mean[y] == pytest.approx(DIRECTION_GAIN, rel=0.02)  # a plane wave from +y: d = (0, 1, 0)
    result = calibrate_latent_statistics(codec, clips, seed=0)
    stats = result["channels"]
    for ch in (y - 1, y):  # x and y: a plane wave at a uniform yaw has mean 0 and std GAIN / sqrt(2)
        assert abs(stats[ch]["mean"]) < 0.2 * DIRECTION_GAIN
        assert stats[ch]["std"] == pytest.approx(DIRECTION_GAIN / np.sqrt(2), rel=0.2)
    assert codec.config.latent_mean == tuple(s["mean"] for s in stats)


def test_a_latent_folder_carries_the_statistics_to_the_dit(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "foa", sample_rate=8000, clips={"train": 2, "valid": 1, "test": 1}, seconds=1.0)
    codec = tiny_codec()
    codec.set_latent_statistics([0.1 * i for i in range(8)], [0.5 + 0.1 * i for i in range(8)])
    encode_latents(codec, data, tmp_path / "latents", rotations=1, progress=False)
    info = read_latents_info(tmp_path / "latents")
    assert info.latent_mean == codec.config.latent_mean and info.latent_std == codec.config.latent_std
    record = read_manifest(tmp_path / "latents")[0]
    stored = load_file(str(tmp_path / "latents" / record["path"]))["mean"]
    audio = torch.from_numpy(load_audio(data / record["audio_path"], channels=4)[0])
    with torch.no_grad():  # what the DiT learns from a stored item is what the codec's encode returns
        assert torch.allclose(info.normalizer.normalize(stored[None]), codec.encode(audio), atol=1e-5)
