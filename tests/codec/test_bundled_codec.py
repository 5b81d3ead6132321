"""The bundled small codec (``soundstage/pretrained/small/codec``) keeps where a source is and how loud it is, pitched
sound included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soundstage.codec import FOACodec
from soundstage.codec.evaluate import reconstruct
from soundstage.foa import broadband_doa, encode_mono, great_circle_deg
from soundstage.metrics.audio_metrics import level_error_db
from soundstage.sample import parse_trajectory, trajectory_frame_errors, trajectory_vectors
from soundstage.sample.direction import lock_direction


@pytest.fixture(scope="module")
def bundled() -> FOACodec:
    return FOACodec.from_pretrained("small")


def test_the_bundled_codec_has_direction_latents(bundled: FOACodec) -> None:
    assert bundled.config.direction_latents and bundled.config.latent_channels == 16
    assert 0.05 < float(bundled.latent_scale) < 5.0


@pytest.mark.parametrize(("azimuth", "elevation"), [(90.0, 0.0), (-135.0, 40.0), (10.0, -60.0)])
def test_a_plane_wave_comes_back_from_its_direction_at_its_level(bundled: FOACodec, azimuth: float,
                                                                  elevation: float) -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(2 * bundled.sample_rate).astype(np.float32)
    envelope = np.repeat(rng.uniform(0.2, 1.0, 16), noise.size // 16).astype(np.float32)  # a rough, bursty source
    mono = 0.1 * noise * envelope / np.sqrt(np.mean((noise * envelope) ** 2))  # -20 dBFS RMS, the dataset's level
    foa = torch.from_numpy(encode_mono(mono, azimuth, elevation))
    recon = reconstruct(bundled, foa)
    measured = broadband_doa(recon)
    assert float(great_circle_deg(*measured, torch.tensor(azimuth), torch.tensor(elevation))) < 3.0
    assert abs(level_error_db(recon[0], foa[0])) < 3.0


@pytest.mark.parametrize("frequency", [100.0, 1000.0, 8000.0])
def test_a_steady_tone_comes_back_at_its_level_and_direction(bundled: FOACodec, frequency: float) -> None:
    # issue 18: the codec before v5 returned a 1 kHz tone ~34 dB down and an 8 kHz one ~63 dB down
    t = np.arange(2 * bundled.sample_rate) / bundled.sample_rate
    mono = (0.1 * math.sqrt(2) * np.sin(2 * math.pi * frequency * t)).astype(np.float32)  # -20 dBFS RMS
    foa = torch.from_numpy(encode_mono(mono, 60.0, 20.0))
    recon = reconstruct(bundled, foa)
    assert abs(level_error_db(recon[0], foa[0])) < 3.0
    assert float(great_circle_deg(*broadband_doa(recon), torch.tensor(60.0), torch.tensor(20.0))) < 3.0


def test_a_decaying_harmonic_note_comes_back_at_its_level(bundled: FOACodec) -> None:
    # 220 Hz with 8 partials falling 0.6x each, decaying like a plucked string (the old codec: ~27 dB down)
    t = np.arange(2 * bundled.sample_rate) / bundled.sample_rate
    note = sum(0.6 ** k * np.sin(2 * math.pi * 220.0 * (k + 1) * t) for k in range(8)) * np.exp(-1.5 * t)
    mono = (0.1 * note / np.sqrt(np.mean(note ** 2))).astype(np.float32)
    foa = torch.from_numpy(encode_mono(mono, -120.0, 0.0))
    recon = reconstruct(bundled, foa)
    assert abs(level_error_db(recon[0], foa[0])) < 3.0
    assert float(great_circle_deg(*broadband_doa(recon), torch.tensor(-120.0), torch.tensor(0.0))) < 3.0


def test_a_track_turned_along_a_path_is_followed_inside_every_latent_frame(bundled: FOACodec) -> None:
    # a plane wave from the front whose direction track is turned onto a sweep from left to right: the bundled codec
    # pans each eighth of a latent frame (direction_subframes = 8), so every 40-ms frame points along the path;
    # panning whole latent frames leaves the decoder's own direction (the front) inside them
    assert bundled.config.direction_subframes == 8
    sr = bundled.sample_rate
    mono = (0.1 * np.random.default_rng(0).standard_normal(2 * sr)).astype(np.float32)
    trajectory = "0:90:0,2:-90:0"
    coarse = FOACodec.from_pretrained("small").eval()
    coarse.config.direction_subframes = 1
    with torch.no_grad():
        latent = bundled.encode(torch.from_numpy(encode_mono(mono, 0.0, 0.0)))
        path = trajectory_vectors(parse_trajectory(trajectory), latent.shape[-1], sr / bundled.hop)
        latent = lock_direction(latent, path, bundled.latent_normalizer)
        errors = {name: trajectory_frame_errors(codec.decode(latent, length=mono.size)[0].numpy(), sr, trajectory)
                  for name, codec in (("fine", bundled), ("coarse", coarse))}
    assert np.median(errors["fine"]) < 0.3 and np.max(errors["fine"]) < 1.5
    assert np.median(errors["coarse"]) > 2 * np.median(errors["fine"])  # v5: 0.29 against 0.08 deg
