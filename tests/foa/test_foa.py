"""Physics of the FOA toolkit: encode -> DOA round trips, rotations, FuMa, intensity, diffuseness, decoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundstage.foa import (
    ambix_to_fuma,
    angle_between_deg,
    broadband_doa,
    decode_binaural,
    decode_stereo,
    diffuseness,
    direction_energy_map,
    direction_vector,
    encode_mono,
    framewise_diffuseness,
    framewise_doa,
    fuma_to_ambix,
    great_circle_deg,
    intensity_vectors,
    rotate_foa,
    rotation_matrix,
    wrap_degrees,
)

SR = 16000


def _noise(n: int = SR // 2, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(n).astype(np.float32))


def _great_circle(az1, el1, az2, el2) -> float:
    """The largest great-circle angle (degrees) of broadcast direction pairs."""
    return float(torch.as_tensor(great_circle_deg(az1, el1, az2, el2)).max())


def _sphere_directions(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A Fibonacci lattice over the whole sphere, poles and the +-180 seam included in spirit."""
    k = np.arange(n) + 0.5
    elevation = np.degrees(np.arcsin(1 - 2 * k / n))
    azimuth = (np.degrees(np.pi * (1 + 5**0.5) * k) + 180) % 360 - 180
    return azimuth, elevation


def test_plane_wave_gains_follow_the_design_convention() -> None:
    foa = encode_mono(torch.ones(4), 90.0, 0.0)  # left
    torch.testing.assert_close(foa[:, 0], torch.tensor([1.0, 1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    foa = encode_mono(torch.ones(4), 0.0, 90.0)  # up
    torch.testing.assert_close(foa[:, 0], torch.tensor([1.0, 0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    foa = encode_mono(torch.ones(4), 180.0, 0.0)  # back
    torch.testing.assert_close(foa[:, 0], torch.tensor([1.0, 0.0, 0.0, -1.0]), atol=1e-6, rtol=0)


def test_encode_then_doa_round_trip_over_the_sphere() -> None:
    azimuth, elevation = _sphere_directions()
    signal = _noise().expand(len(azimuth), -1)
    foa = encode_mono(signal, torch.from_numpy(azimuth), torch.from_numpy(elevation))
    est_az, est_el = broadband_doa(foa)
    assert foa.shape == (len(azimuth), 4, signal.shape[-1])
    assert _great_circle(torch.from_numpy(azimuth), torch.from_numpy(elevation), est_az, est_el) < 1.0


def test_wrap_degrees_keeps_the_kind_of_its_input() -> None:
    assert wrap_degrees(180.0) == -180.0 and wrap_degrees(-190.0) == 170.0 and wrap_degrees(90) == 90.0
    wrapped = wrap_degrees(torch.tensor([540.0, -180.0, 179.5]))
    assert isinstance(wrapped, torch.Tensor) and wrapped.tolist() == [-180.0, -180.0, 179.5]
    assert isinstance(wrap_degrees(np.array([360.0])), np.ndarray)


def test_great_circle_known_answers() -> None:
    assert great_circle_deg(0.0, 0.0, 90.0, 0.0) == pytest.approx(90.0)
    assert great_circle_deg(170.0, 0.0, -170.0, 0.0) == pytest.approx(20.0)  # across the back, not 340
    assert great_circle_deg(0.0, 89.0, 180.0, 89.0) == pytest.approx(2.0, abs=1e-4)  # over the pole
    assert great_circle_deg(0.0, 90.0, 123.0, 90.0) == pytest.approx(0.0, abs=1e-5)  # azimuth is moot at the pole
    assert great_circle_deg(0.0, 45.0, 180.0, 45.0) == pytest.approx(90.0, abs=1e-4)
    assert great_circle_deg(30.0, 0.0, 30.0, 0.0) == pytest.approx(0.0, abs=1e-5)
    assert isinstance(great_circle_deg(np.array([0.0, 1.0]), 0.0, 0.0, 0.0), np.ndarray)
    out = great_circle_deg(torch.tensor([0.0, 90.0]), torch.tensor([0.0, 0.0]), 0.0, -90.0)
    assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.tensor([90.0, 90.0]))
    assert float(angle_between_deg(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([-2.0, 0.0, 0.0]))) == pytest.approx(180)


def test_doa_wraps_azimuth_at_the_back() -> None:
    az, _el = broadband_doa(encode_mono(_noise(), -179.5, 0.0))
    assert -180.0 <= float(az) < 180.0 and abs(float(az) + 179.5) < 0.1


def test_numpy_in_numpy_out() -> None:
    foa = encode_mono(_noise().numpy(), 30.0, -10.0)
    assert isinstance(foa, np.ndarray) and foa.shape == (4, SR // 2)
    az, el = broadband_doa(foa)
    assert isinstance(az, np.ndarray) and abs(float(az) - 30.0) < 0.1 and abs(float(el) + 10.0) < 0.1


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll", "source", "expected"),
    [
        (90.0, 0.0, 0.0, (0.0, 0.0), (90.0, 0.0)),  # yaw turns the front to the left
        (0.0, 30.0, 0.0, (0.0, 0.0), (0.0, 30.0)),  # pitch raises the front
        (0.0, 0.0, 30.0, (90.0, 0.0), (90.0, 30.0)),  # roll raises the left side
    ],
)
def test_rotation_conventions(yaw, pitch, roll, source, expected) -> None:
    az, el = broadband_doa(rotate_foa(encode_mono(_noise(), *source), yaw, pitch, roll))
    assert _great_circle(az, el, *expected) < 0.05


def test_rotating_an_encoded_source_equals_encoding_the_rotated_direction() -> None:
    rng = np.random.default_rng(1)
    signal = _noise(2048)
    for _ in range(20):
        az, el = rng.uniform(-180, 180), rng.uniform(-90, 90)
        yaw, pitch, roll = rng.uniform(-180, 180, size=3)
        rotated_dir = rotation_matrix(yaw, pitch, roll) @ direction_vector(az, el)
        new_az = float(torch.rad2deg(torch.atan2(rotated_dir[1], rotated_dir[0])))
        new_el = float(torch.rad2deg(torch.asin(rotated_dir[2].clamp(-1, 1))))
        torch.testing.assert_close(
            rotate_foa(encode_mono(signal, az, el), yaw, pitch, roll), encode_mono(signal, new_az, new_el),
            atol=1e-4, rtol=1e-4,
        )


def test_rotation_matrix_is_orthonormal_and_keeps_w() -> None:
    r = rotation_matrix(33.0, -12.0, 71.0)
    torch.testing.assert_close(r @ r.T, torch.eye(3), atol=1e-6, rtol=0)
    foa = torch.randn(2, 4, 100)
    torch.testing.assert_close(rotate_foa(foa, 33.0, -12.0, 71.0)[:, 0], foa[:, 0])


def test_fuma_round_trip_and_channel_mapping() -> None:
    foa = torch.randn(3, 4, 64)
    torch.testing.assert_close(fuma_to_ambix(ambix_to_fuma(foa)), foa)
    fuma = ambix_to_fuma(encode_mono(torch.ones(1), 90.0, 0.0))  # left: FuMa Y (index 2) = 1, W = 1/sqrt(2)
    torch.testing.assert_close(fuma[:, 0], torch.tensor([2**-0.5, 0.0, 1.0, 0.0]), atol=1e-6, rtol=0)


def test_intensity_vectors_point_at_the_source_and_are_normalised() -> None:
    active, reactive = intensity_vectors(encode_mono(_noise(), 90.0, 0.0))
    assert active.shape[0] == 3 and active.shape == reactive.shape
    norm = active.norm(dim=0)
    assert float(norm.max()) <= 1.0 + 1e-5 and float((norm > 0.9).float().mean()) > 0.8
    direction = active[1][norm > 0.1] / norm[norm > 0.1]
    torch.testing.assert_close(direction, torch.ones_like(direction), atol=1e-4, rtol=0)
    assert reactive.abs().max() < 1e-4  # a single plane wave has no reactive intensity


def test_diffuseness_of_a_plane_wave_and_of_a_diffuse_field() -> None:
    assert float(diffuseness(encode_mono(_noise(), 10.0, 20.0))) < 1e-3
    rng = np.random.default_rng(2)
    diffuse = torch.from_numpy(rng.standard_normal((4, SR)).astype(np.float32))
    diffuse[1:] /= 3**0.5  # SN3D: each first-order channel of an isotropic field holds a third of W's power
    assert float(diffuseness(diffuse)) > 0.95


def test_framewise_doa_follows_a_moving_source() -> None:
    first = encode_mono(_noise(SR // 2, 3), -60.0, 0.0)
    second = encode_mono(_noise(SR // 2, 4), 60.0, 0.0)
    az, el, energy = framewise_doa(torch.cat([first, second], dim=-1))
    assert az.shape == el.shape == energy.shape
    assert abs(float(az[5]) + 60) < 1 and abs(float(az[-5]) - 60) < 1


def test_framewise_diffuseness_of_a_moving_plane_wave_stays_zero_where_the_clip_s_rises() -> None:
    moving = torch.cat([encode_mono(_noise(SR // 2, 3), -60.0, 0.0), encode_mono(_noise(SR // 2, 4), 60.0, 0.0)], -1)
    frames = framewise_diffuseness(moving)
    assert frames.shape == framewise_doa(moving)[0].shape
    assert float(frames[5]) < 1e-3 and float(frames[-5]) < 1e-3
    assert float(diffuseness(moving)) > 0.3  # the whole clip's net intensity halves: 1 - cos(60 deg) = 0.5


def test_direction_energy_map_peaks_at_the_source() -> None:
    energy, azimuths, elevations = direction_energy_map(encode_mono(_noise(), -120.0, 30.0))
    assert energy.shape == (len(elevations), len(azimuths))
    e, a = divmod(int(energy.argmax()), len(azimuths))
    assert abs(float(azimuths[a]) + 120) <= 5 and abs(float(elevations[e]) - 30) <= 5


def test_stereo_and_binaural_previews_put_a_left_source_on_the_left() -> None:
    foa = encode_mono(_noise(), 90.0, 0.0)
    stereo = decode_stereo(foa)
    binaural = decode_binaural(foa, SR)
    for preview in (stereo, binaural):
        left, right = preview.pow(2).mean(-1)
        assert preview.shape == (2, foa.shape[-1]) and left > 2 * right
    right_source = decode_binaural(encode_mono(_noise(), -90.0, 0.0), SR).pow(2).mean(-1)
    assert right_source[1] > 2 * right_source[0]


def test_wrong_channel_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="4 channels"):
        broadband_doa(torch.randn(2, 1000))
