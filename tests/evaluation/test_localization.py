"""The direction measures of `evaluate generated` on plane waves from known directions."""

from __future__ import annotations

import numpy as np
import pytest

from soundstage.foa import encode_mono
from soundstage.metrics.spatial_metrics import (
    azimuth_error_deg,
    doa_deg,
    framewise_direction_error_deg,
    gated_framewise_diffuseness,
    gated_framewise_doa,
)


@pytest.mark.parametrize(("azimuth", "elevation"), [(90.0, 0.0), (-135.0, 30.0), (10.0, -40.0), (-180.0, 0.0)])
def test_a_plane_wave_gives_its_direction(azimuth: float, elevation: float) -> None:
    noise = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    foa = encode_mono(noise, azimuth, elevation)
    measured_az, measured_el = doa_deg(foa)
    assert float(azimuth_error_deg(measured_az, azimuth)) < 0.1 and abs(measured_el - elevation) < 0.1
    assert framewise_direction_error_deg(foa, 24000, azimuth, elevation) < 0.1
    assert framewise_direction_error_deg(foa, 24000, azimuth + 30.0, elevation) == pytest.approx(
        float(np.degrees(np.arccos(np.cos(np.radians(elevation)) ** 2 * np.cos(np.radians(30.0))
                                   + np.sin(np.radians(elevation)) ** 2))), abs=0.1)


def test_the_framewise_gate_drops_quiet_frames() -> None:
    loud = encode_mono(np.random.default_rng(1).standard_normal(12000).astype(np.float32) * 0.1, 90.0, 0.0)
    quiet = encode_mono(np.random.default_rng(2).standard_normal(12000).astype(np.float32) * 1e-3, -90.0, 0.0)
    foa = np.concatenate([loud, quiet], axis=-1)  # 0.5 s at +90, then 0.5 s 40 dB down at -90
    _, _, keep = gated_framewise_doa(foa, 24000)
    assert keep[:11].all() and not keep[13:].any()
    assert framewise_direction_error_deg(foa, 24000, 90.0, 0.0) < 0.1  # the quiet opposite half does not count


def test_gated_framewise_diffuseness_measures_the_loud_frames_only() -> None:
    rng = np.random.default_rng(3)
    loud = encode_mono(rng.standard_normal(12000).astype(np.float32) * 0.1, 90.0, 0.0)
    diffuse = rng.standard_normal((4, 12000)).astype(np.float32)
    diffuse[1:] /= 3**0.5  # SN3D: each first-order channel of an isotropic field holds a third of W's power
    assert gated_framewise_diffuseness(np.concatenate([loud, diffuse * 1e-3], -1), 24000) < 0.01  # 40 dB down: gated
    assert gated_framewise_diffuseness(np.concatenate([loud * 1e-3, diffuse * 0.1], -1), 24000) > 0.8


def test_azimuth_error_wraps() -> None:
    assert azimuth_error_deg(170.0, -170.0) == pytest.approx(20.0)
    assert azimuth_error_deg(np.array([0.0, 180.0]), np.array([359.0, -180.0])) == pytest.approx([1.0, 0.0])
