"""The bundled small codec (``soundstage/pretrained/small/codec``) keeps where a source is and how loud it is, pitched
sound included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundstage.codec import FOACodec
from soundstage.codec.evaluate import harmonic_note_check, reconstruct, steady_tone_check
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


def test_steady_tones_and_a_harmonic_note_come_back_at_their_level_and_direction(bundled: FOACodec) -> None:
    # issue 18's checks (those `soundstage evaluate codec` prints): the codec before v5 returned a 1 kHz tone
    # 57 dB down, an 8 kHz one 82 dB down and the plucked note 27 dB down
    checks = {**steady_tone_check(bundled), "note": harmonic_note_check(bundled)}
    assert set(checks) == {"100_hz", "250_hz", "1000_hz", "4000_hz", "8000_hz", "note"}
    for name, check in checks.items():
        assert abs(check["level_error_db"]) < 3.0, name
        assert check["angle_error_deg"] < 3.0, name


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
