"""Trajectories and the direction lock: parsing rules, sphere interpolation with known midpoints, exact lock."""

from __future__ import annotations

import pytest
import torch

from soundstage.codec.direction_latents import DIRECTION_GAIN
from soundstage.codec.latent_norm import LatentNormalizer
from soundstage.foa import angle_between_deg, direction_vector, vector_to_angles
from soundstage.sample.direction import (
    Keyframe,
    lock_direction,
    parse_trajectory,
    track_directions,
    trajectory_vectors,
)
from soundstage.sample.errors import GenerationError


def test_parse_trajectory_wraps_azimuth() -> None:
    assert parse_trajectory(" 0:90:0, 4:-90:10 ") == [Keyframe(0.0, 90.0, 0.0), Keyframe(4.0, -90.0, 10.0)]
    assert parse_trajectory("1:270:-5")[0].azimuth_deg == -90.0
    assert parse_trajectory("0:180:0")[0].azimuth_deg == -180.0


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("0:90", "keyframe 1 .*TIME:AZIMUTH:ELEVATION"),
    ("0:90:0,2:x:0", "keyframe 2 .*not three numbers"),
    ("0:90:0,2:nan:0", "keyframe 2 .*NaN"),
    ("0:90:0,2:0:inf", "keyframe 2 .*NaN or infinite"),
    ("0:0:91", "keyframe 1 .*elevation"),
    ("-1:0:0", "keyframe 1 .*>= 0"),
    ("0:0:0,2:10:0,2:20:0", "keyframe 3 .*increase strictly"),
    ("3:0:0,1:10:0", "keyframe 2 .*increase strictly"),
])
def test_parse_trajectory_refuses(text: str, message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        parse_trajectory(text)


def test_half_turn_sweep_passes_the_front_at_its_midpoint() -> None:
    rate = 10.0  # frames at 0.05, 0.15, ... s
    vectors = trajectory_vectors(parse_trajectory("0:90:0,4:-90:0"), 60, rate)
    az, el = vector_to_angles(vectors)
    centres = (torch.arange(60) + 0.5) / rate
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(60), atol=1e-6)
    assert el.abs().max() < 1e-4
    inside = centres < 4
    assert torch.allclose(az[inside], 90 - 45 * centres[inside], atol=1e-3)  # constant angular speed, through 0 at 2 s
    assert torch.allclose(az[~inside], torch.full_like(az[~inside], -90.0), atol=1e-4)  # held after the last


def test_interpolation_takes_the_shorter_arc_across_the_back() -> None:
    vectors = trajectory_vectors(parse_trajectory("0:170:0,2:-170:0"), 20, 10.0)
    az, _ = vector_to_angles(vectors)
    assert angle_between_deg(vectors[9:11].mean(0), direction_vector(180.0, 0.0)) < 1.0  # the back, not the front
    assert (az.abs() > 169).all()


def test_interpolation_over_elevation_and_hold_before_the_first_keyframe() -> None:
    vectors = trajectory_vectors(parse_trajectory("1:0:0,3:0:90"), 40, 10.0)
    _, el = vector_to_angles(vectors)
    centres = (torch.arange(40) + 0.5) / 10.0
    assert torch.allclose(el[centres < 1], torch.zeros(10), atol=1e-4)
    middle = (centres > 1) & (centres < 3)
    assert torch.allclose(el[middle], 45 * (centres[middle] - 1), atol=1e-3)


PER_CHANNEL = LatentNormalizer.from_statistics(8, 1.0, [0.0] * 5 + [0.4, -0.3, 0.1], [1.0] * 5 + [0.5, 2.0, 0.8])


@pytest.mark.parametrize("normalizer", [LatentNormalizer.from_statistics(8, 0.7), PER_CHANNEL],
                         ids=["pooled scale", "per-channel"])
def test_lock_sets_the_direction_exactly_and_keeps_the_magnitude(normalizer: LatentNormalizer) -> None:
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(2, 8, 30, generator=g)
    targets = trajectory_vectors(parse_trajectory("0:90:0,3:-90:20"), 30, 10.0)
    locked = lock_direction(latent, targets, normalizer)
    assert torch.equal(locked[:, :-3], latent[:, :-3])
    track = track_directions(locked, normalizer)
    assert torch.allclose(track.norm(dim=-1), track_directions(latent, normalizer).norm(dim=-1), atol=1e-5)
    assert angle_between_deg(track, targets).max() < 0.01


def test_lock_gives_a_zero_track_the_floor_directness() -> None:
    latent = PER_CHANNEL.normalize(torch.zeros(1, 8, 5))  # a raw track of zeros
    locked = lock_direction(latent, direction_vector(-30.0, 10.0), PER_CHANNEL, min_directness=0.1)
    track = track_directions(locked, PER_CHANNEL)[0]
    assert torch.allclose(track, 0.1 * DIRECTION_GAIN * direction_vector(-30.0, 10.0).expand(5, 3), atol=1e-6)
