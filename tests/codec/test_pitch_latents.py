"""Codec with pitch latents: the measured pitch channels and the harmonic branch of the decoder."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from soundstage.codec import CODEC_PRESETS, FOACodec
from soundstage.codec.evaluate import reconstruct
from soundstage.codec.pitch_track import PITCH_STD
from soundstage.foa import broadband_doa, encode_mono

TINY = dataclasses.replace(CODEC_PRESETS["tiny"], pitch_latents=True, harmonics=4)
SR, HOP = TINY.sample_rate, TINY.hop


def _tone(freq: float, azimuth: float, frames: int = 24, amplitude: float = 0.2) -> torch.Tensor:
    t = np.arange(frames * HOP) / SR
    return torch.from_numpy(encode_mono((amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32), azimuth, 0.0))


def test_pitch_latents_need_the_stft_arch_and_direction_latents() -> None:
    with pytest.raises(ValueError, match="pitch_latents needs the stft arch, direction_latents"):
        dataclasses.replace(CODEC_PRESETS["tiny"], pitch_latents=True, direction_latents=False)
    with pytest.raises(ValueError, match="pitch_latents needs"):
        dataclasses.replace(CODEC_PRESETS["paper"], pitch_latents=True)


def test_the_pitch_channels_hold_the_measured_f0_and_periodicity() -> None:
    codec = FOACodec(TINY).eval()
    mean, std = codec.posterior(_tone(300.0, 45.0)[None])
    pitch = mean[0, -5:-3, 4:-4]  # the two channels before the direction channels
    assert torch.allclose(250.0 * torch.exp2(pitch[0]), torch.tensor(300.0), rtol=2e-3)
    assert (pitch[1] > 0.9).all()  # periodicity near 1, mapped to 2 p - 1
    assert torch.equal(std[0, -5:-3], torch.full_like(std[0, -5:-3], PITCH_STD))


def test_the_harmonic_branch_synthesises_the_tracked_tone_at_its_level_and_direction() -> None:
    codec = FOACodec(TINY).eval()
    decoder = codec.decoder
    with torch.no_grad():  # a known decoder: the STFT head silent, harmonic 1 at amplitude 0.2, the others silent
        decoder.head.weight.zero_()
        decoder.head.bias.zero_()
        decoder.head.bias[: decoder.bins].fill_(-30.0)
        decoder.harmonic_head.weight.zero_()
        decoder.harmonic_head.bias.copy_(torch.tensor([math.log(0.2), -30.0, -30.0, -30.0]))
    foa = _tone(300.0, 90.0)
    recon = reconstruct(codec, foa)
    inner = slice(4 * HOP, -4 * HOP)
    level_db = 20 * math.log10(recon[0, inner].pow(2).mean().sqrt() / foa[0, inner].pow(2).mean().sqrt())
    assert abs(level_db) < 0.1
    spectrum = torch.fft.rfft(recon[0, inner]).abs()
    assert spectrum.argmax().item() * SR / recon[0, inner].numel() == pytest.approx(300.0, abs=SR / 4096)
    azimuth, _ = broadband_doa(recon[:, inner])  # panned by the direction track: a source at 90 deg is at 90 deg
    assert float(azimuth) == pytest.approx(90.0, abs=1.0)


def test_a_codec_with_pitch_latents_saves_and_loads(tmp_path: Path) -> None:
    codec = FOACodec(TINY).eval()
    codec.save_pretrained(tmp_path / "codec")
    loaded = FOACodec.from_pretrained(tmp_path / "codec").eval()
    assert loaded.config.pitch_latents and loaded.config.harmonics == 4
    foa = _tone(440.0, -30.0)
    assert torch.equal(reconstruct(codec, foa), reconstruct(loaded, foa))
