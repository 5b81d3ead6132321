"""The bundled small codec (``soundstage/pretrained/small/codec``) keeps where a source is and how loud it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundstage.codec import FOACodec
from soundstage.codec.evaluate import reconstruct
from soundstage.foa import broadband_doa, encode_mono, great_circle_deg
from soundstage.metrics.audio_metrics import level_error_db


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
