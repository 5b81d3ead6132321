"""Metric functions with known answers (SI-SDR, mel and STFT distances, 1/3-octave levels, angles)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soundstage.foa import FOAInputError, encode_mono
from soundstage.metrics.audio_metrics import (
    mel_distance,
    multi_resolution_stft_distance,
    si_sdr,
    third_octave_band_energy_error_db,
    third_octave_centers,
)
from soundstage.metrics.spatial_metrics import broadband_direction_error_deg, diffuseness_error, localization_summary


def test_si_sdr_known_answers() -> None:
    rng = np.random.default_rng(0)
    s = rng.standard_normal(48000).astype(np.float32)
    n = rng.standard_normal(48000).astype(np.float32)
    n -= n.mean() + (n @ (s - s.mean())) / ((s - s.mean()) @ (s - s.mean())) * (s - s.mean())  # orthogonal to s
    n *= np.linalg.norm(s - s.mean()) / np.linalg.norm(n) / math.sqrt(10.0)  # 10 dB below s
    assert float(si_sdr(s + n, s)) == pytest.approx(10.0, abs=1e-2)
    assert float(si_sdr(0.3 * (s + n), s)) == pytest.approx(10.0, abs=1e-2)  # scale-invariant
    assert si_sdr(torch.from_numpy(np.stack([s, s])), torch.from_numpy(np.stack([s, s]))).shape == (2,)


def test_mel_and_stft_distances() -> None:
    x = np.random.default_rng(1).standard_normal((2, 16000)).astype(np.float32)
    np.testing.assert_allclose(mel_distance(x, x, 16000), 0.0, atol=1e-6)
    np.testing.assert_allclose(mel_distance(x * math.sqrt(10.0), x, 16000), 1.0, atol=1e-3)  # 10x power
    np.testing.assert_allclose(multi_resolution_stft_distance(x, x), 0.0, atol=1e-6)
    # amplitude x2: spectral convergence 1 + |log 2|, per resolution
    np.testing.assert_allclose(multi_resolution_stft_distance(2 * x, x), 1.0 + math.log(2.0), atol=1e-3)


def test_third_octave_band_error() -> None:
    centers = third_octave_centers(48000)
    assert centers[0] == pytest.approx(1000 * 2 ** (-13 / 3)) and 1000.0 in centers and centers[-1] < 20000
    x = np.random.default_rng(2).standard_normal(48000).astype(np.float32)
    error = third_octave_band_energy_error_db(2.0 * x, x, 48000)
    np.testing.assert_allclose(error, 20 * math.log10(2.0), atol=1e-3)  # +6.02 dB in every band
    signed = third_octave_band_energy_error_db(0.5 * x, x, 48000, signed=True)
    np.testing.assert_allclose(signed, -20 * math.log10(2.0), atol=1e-3)  # too quiet: negative
    # a tone: bands far from it are empty (60 dB below the loudest): NaN, not errors
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    error = third_octave_band_energy_error_db(tone, tone, 48000)
    assert np.nanmax(error) == pytest.approx(0.0, abs=1e-4) and np.isnan(error[-3:]).all()


def test_broadband_direction_and_diffuseness_errors_of_plane_waves() -> None:
    signal = np.random.default_rng(3).standard_normal(16000).astype(np.float32)
    a, b = encode_mono(signal, 30.0, 0.0), encode_mono(signal, 60.0, 0.0)
    assert float(broadband_direction_error_deg(a, b)) == pytest.approx(30.0, abs=0.1)
    assert float(broadband_direction_error_deg(a, a)) == pytest.approx(0.0, abs=0.1)
    assert float(diffuseness_error(a, b)) == pytest.approx(0.0, abs=1e-3)  # both plane waves

    batch = torch.from_numpy(np.stack([a, a]))
    assert broadband_direction_error_deg(batch, batch).shape == (2,)  # (B, 4, T) -> (B,); (4, T) -> ()
    assert np.asarray(broadband_direction_error_deg(a, b)).shape == ()


@pytest.mark.parametrize(("bad", "match"), [
    (np.zeros((4, 100), dtype=np.int16), "float audio"),
    (np.zeros((2, 100), dtype=np.float32), "stereo"),
    (np.full((4, 100), np.nan, dtype=np.float32), "NaN"),
])
def test_spatial_metrics_refuse_what_the_models_refuse(bad: np.ndarray, match: str) -> None:
    good = np.zeros((4, 100), dtype=np.float32)
    with pytest.raises(FOAInputError, match="estimate: .*" + match):
        broadband_direction_error_deg(bad, good)
    with pytest.raises(FOAInputError, match="reference: .*" + match):
        diffuseness_error(good, bad)


def test_localization_error_wraps_at_180() -> None:
    summary = localization_summary([179.0, 10.0, 0.0], [0.0, 0.0, 0.0], [-179.0, 0.0, 90.0], [0.0, 0.0, 0.0],
                                   [1.0, 2.0, 3.0], [1.5, 2.0, 1.0])
    assert summary["angle_error_mean_deg"] == pytest.approx((2 + 10 + 90) / 3, abs=1e-3)
    assert summary["angle_error_median_deg"] == pytest.approx(10.0, abs=1e-3)
    assert summary["distance_error_mean_m"] == pytest.approx((0.5 + 0 + 2) / 3)
    assert summary["distance_error_median_m"] == pytest.approx(0.5)
