"""Codec with band-level latents: the measured levels, the decoder obeying them, config checks, repurposing."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from soundstage.codec import CODEC_PRESETS, FOACodec
from soundstage.codec.band_levels import LEVEL_STD, band_centres_hz, band_weights, frame_band_levels, impose_band_levels
from soundstage.foa import broadband_doa, encode_mono

SR, N_FFT, STFT_HOP, HOP = 24_000, 1024, 256, 512
TINY = dataclasses.replace(CODEC_PRESETS["tiny"], level_bands=2)  # 8 channels: 3 learned, 2 levels, 3 direction


def _plane_wave(mono: np.ndarray, azimuth: float) -> torch.Tensor:
    return torch.from_numpy(encode_mono(mono.astype(np.float32), azimuth, 0.0))


def test_the_band_weights_partition_every_bin_and_peak_at_their_centres() -> None:
    weights = band_weights(8, N_FFT, SR)
    assert weights.shape == (8, N_FFT // 2 + 1) and (weights >= 0).all()
    torch.testing.assert_close(weights.sum(0), torch.ones(N_FFT // 2 + 1))
    centre_bins = np.round(band_centres_hz(8, SR) * N_FFT / SR).astype(int)
    assert (weights[:, centre_bins].argmax(0) == torch.arange(8)).all()
    with pytest.raises(ValueError, match="at least 2 bands"):
        band_centres_hz(1, SR)


def test_the_band_levels_of_a_tone_add_up_to_its_power_and_peak_in_its_band() -> None:
    t = np.arange(40 * HOP) / SR
    w = torch.from_numpy(0.2 * np.sin(2 * math.pi * 1000.0 * t)).float()[None]
    levels = frame_band_levels(w, band_weights(8, N_FFT, SR), N_FFT, STFT_HOP, HOP)[0, :, 4:-4]  # (8, frames)
    total_db = 10 * torch.log10(torch.pow(10.0, 2 * levels).sum(0))
    torch.testing.assert_close(total_db, torch.full_like(total_db, 20 * math.log10(0.2 / math.sqrt(2))), atol=0.2,
                               rtol=0)
    nearest = int(np.abs(np.log(band_centres_hz(8, SR) / 1000.0)).argmin())
    assert (levels.argmax(0) == nearest).all()


def test_imposed_levels_are_met_and_the_direction_is_kept() -> None:
    rng = np.random.default_rng(0)
    foa = _plane_wave(0.05 * rng.standard_normal(40 * HOP), 90.0)[None]
    weights = band_weights(8, N_FFT, SR)
    offsets_db = torch.tensor([0.0, 6.0, 0.0, -6.0, 0.0, 10.0, 0.0, -10.0])[None, :, None]
    target = frame_band_levels(foa[:, 0], weights, N_FFT, STFT_HOP, HOP) + offsets_db / 20
    out = impose_band_levels(foa, target, weights, N_FFT, STFT_HOP, HOP)
    reached = frame_band_levels(out[:, 0], weights, N_FFT, STFT_HOP, HOP)
    error_db = 20 * (reached - target)[..., 4:-4]
    assert error_db.abs().median() < 1.0 and error_db.abs().max() < 3.0  # noise: levels vary within a frame
    azimuth, elevation = broadband_doa(out[0])
    assert float(azimuth) == pytest.approx(90.0, abs=0.5) and float(elevation) == pytest.approx(0.0, abs=0.5)
    # a latent frame asking for more than MAX_GAIN_DB gets that much, not more
    loud = impose_band_levels(foa, target + 3.0, weights, N_FFT, STFT_HOP, HOP)
    assert 20 * torch.log10(loud.std() / foa.std()) == pytest.approx(24.0, abs=1.0)


def test_level_bands_need_the_stft_arch_two_bands_and_a_learned_channel() -> None:
    with pytest.raises(ValueError, match="level_bands needs the stft arch"):
        dataclasses.replace(CODEC_PRESETS["paper"], level_bands=8)
    with pytest.raises(ValueError, match="at least 2 bands"):
        dataclasses.replace(CODEC_PRESETS["tiny"], level_bands=1)
    assert dataclasses.replace(CODEC_PRESETS["tiny"], level_bands=5, direction_latents=False).level_bands == 5
    with pytest.raises(ValueError, match="8 of 8 latent channels measured"):
        dataclasses.replace(CODEC_PRESETS["tiny"], level_bands=5)


def test_the_codec_writes_the_measured_levels_and_its_decoder_follows_them() -> None:
    torch.manual_seed(0)
    codec = FOACodec(TINY).eval()
    with torch.no_grad():  # an untrained decoder is ~50 dB quiet; this one is within MAX_GAIN_DB of the input
        codec.decoder.head.bias[: codec.decoder.bins].fill_(1.0)
    assert codec.level_channels == slice(3, 5)
    rng = np.random.default_rng(1)
    foa = _plane_wave(0.05 * rng.standard_normal(24 * TINY.hop), 30.0)[None]
    mean, std = codec.posterior(foa)
    c = TINY
    expected = frame_band_levels(foa[:, 0], band_weights(2, c.n_fft, c.sample_rate), c.n_fft, c.stft_hop, c.hop)
    torch.testing.assert_close(mean[:, 3:5], expected)
    assert torch.equal(std[:, 3:5], torch.full_like(expected, LEVEL_STD))
    with torch.no_grad():
        base = codec.decode_unscaled(mean)
        louder = mean.clone()
        louder[:, 3:5] += 0.3  # +6 dB in both bands
        raised = codec.decode_unscaled(louder)
    inner = slice(4 * c.hop, -4 * c.hop)
    level_error_db = 20 * torch.log10(base[0, 0, inner].std() / foa[0, 0, inner].std())
    assert float(level_error_db) == pytest.approx(0.0, abs=1.0)
    gain_db = 20 * torch.log10(raised[0, 0, inner].std() / base[0, 0, inner].std())
    assert float(gain_db) == pytest.approx(6.0, abs=0.5)


def test_a_trained_codec_repurposes_learned_channels_as_band_levels() -> None:
    torch.manual_seed(0)
    plain = FOACodec(CODEC_PRESETS["tiny"]).eval()  # 5 learned channels, then 3 direction channels
    converted = FOACodec(plain.config).eval()
    converted.load_state_dict(plain.state_dict())
    converted.repurpose_as_level_latents((3, 1, 4), bands=2)
    assert converted.config.level_bands == 2 and converted.level_channels == slice(3, 5)
    foa = 0.1 * torch.randn(1, 4, 24 * plain.hop)
    with torch.no_grad():
        before, after = plain.posterior(foa)[0], converted.posterior(foa)[0]
        torch.testing.assert_close(after[:, :3], before[:, [3, 1, 4]])
        torch.testing.assert_close(after[:, 5:], before[:, 5:])  # the direction channels stay last
        # the decoder network ignores the new channels: it gives what the old one gave with them at zero
        silenced = before.clone()
        silenced[:, [0, 2]] = 0.0
        torch.testing.assert_close(converted.decoder(after), plain.decoder(silenced), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="without band levels"):
        converted.repurpose_as_level_latents((0, 1, 2), bands=2)
    with pytest.raises(ValueError, match="keep 3 distinct learned channels"):
        plain.repurpose_as_level_latents((0, 0, 1), bands=2)
