"""Spatial control through the codec's direction track: trajectories and the direction lock.

The codec's last three raw latent channels hold ``DIRECTION_GAIN * d`` per latent frame (normalised like every
channel in the latent a DiT generates: ``codec.latent_normalizer``), ``d`` the frame's x, y, z regression on W (its
direction times its directness ``|d|``), and the decoder pans its output to obey them (codec/direction_latents.py).
So a requested direction is imposed exactly by rewriting the track's direction while keeping its magnitude (the
directness the model generated): :func:`lock_direction`. A moving source is a per-frame target
(:func:`trajectory_vectors`) from keyframes ``"T:AZ:EL,..."`` (:func:`parse_trajectory`), each segment the shorter
great-circle arc between its keyframes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from soundstage.codec.direction_latents import DIRECTION_GAIN, NUM_DIRECTION_CHANNELS
from soundstage.codec.latent_norm import LatentNormalizer
from soundstage.foa import direction_vector, great_circle_deg, vector_to_angles, wrap_degrees
from soundstage.metrics.spatial_metrics import FRAME_SECONDS, GATE_DB, gated_framewise_doa

from .errors import GenerationError

# A frame's directness |d| is raised to at least this in the lock: a zero track has no direction to turn, so without
# a floor the lock would do nothing exactly where the model produced no direction. Small (5 % of a plane wave's), so
# that a diffuse frame stays nearly diffuse; a silent frame is unaffected either way (the decoder pans by multiples
# of W, which is silent there).
MIN_DIRECTNESS = 0.05
ANTIPODAL_EPS = 1e-6


class Keyframe(NamedTuple):
    time_s: float
    azimuth_deg: float  # wrapped to [-180, 180)
    elevation_deg: float  # [-90, 90]


def parse_trajectory(text: str) -> list[Keyframe]:
    """``"0:90:0,4:-90:0"`` (time s : azimuth deg : elevation deg, comma-separated) -> keyframes.

    Times must be finite, >= 0 and strictly increasing; angles finite, elevation in [-90, 90]; azimuth is wrapped.
    Raises GenerationError naming the bad keyframe (1-based) and the rule it breaks.
    """
    if not isinstance(text, str) or not text.strip():
        raise GenerationError("trajectory is empty; expected keyframes 'T:AZ:EL,T:AZ:EL' (seconds:degrees:degrees)")
    keyframes: list[Keyframe] = []
    for index, item in enumerate(text.split(","), start=1):
        where = f"trajectory keyframe {index} ({item.strip()!r})"
        parts = item.strip().split(":")
        if len(parts) != 3:
            raise GenerationError(f"{where}: expected TIME:AZIMUTH:ELEVATION, e.g. '2:-45:10'")
        try:
            time_s, azimuth, elevation = (float(p) for p in parts)
        except ValueError:
            raise GenerationError(f"{where}: not three numbers") from None
        if not all(math.isfinite(v) for v in (time_s, azimuth, elevation)):
            raise GenerationError(f"{where}: NaN or infinite value")
        if time_s < 0:
            raise GenerationError(f"{where}: time must be >= 0 s")
        if not -90 <= elevation <= 90:
            raise GenerationError(f"{where}: elevation must be in [-90, 90] degrees")
        if keyframes and time_s <= keyframes[-1].time_s:
            raise GenerationError(f"{where}: times must increase strictly (previous {keyframes[-1].time_s:g} s)")
        keyframes.append(Keyframe(time_s, float(wrap_degrees(azimuth)), elevation))
    return keyframes


def _arc_basis(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Unit ``m`` perpendicular to unit ``a`` in the plane of the arc to ``b``, and the arc's angle (radians).

    Antipodal ``a``, ``b`` have no unique shorter arc: it is taken through the direction nearest the front (+x), else
    the left (+y), so ``"0:90:0,4:-90:0"`` sweeps left -> front -> right.
    """
    cos = float((a * b).sum().clamp(-1.0, 1.0))
    m = b - cos * a
    if m.norm() < ANTIPODAL_EPS:
        for preferred in torch.eye(3, dtype=a.dtype):
            m = preferred - (preferred * a).sum() * a
            if m.norm() > 0.1:
                break
    return m / m.norm().clamp_min(1e-12), math.acos(cos)


def trajectory_vectors(keyframes: list[Keyframe], num_frames: int, frame_rate: float) -> torch.Tensor:
    """Unit direction ``(num_frames, 3)`` (x, y, z) at each latent frame's centre time ``(i + 0.5) / frame_rate`` s.

    Spherical linear interpolation between neighbouring keyframes (constant angular speed on the shorter arc);
    the first keyframe's direction is held before it, the last one's after it.
    """
    if not keyframes:
        raise GenerationError("a trajectory needs at least one keyframe")
    points = direction_vector(torch.tensor([k.azimuth_deg for k in keyframes]),
                              torch.tensor([k.elevation_deg for k in keyframes])).double()
    times = torch.tensor([k.time_s for k in keyframes], dtype=torch.float64)
    centres = (torch.arange(num_frames, dtype=torch.float64) + 0.5) / frame_rate
    out = points[0].expand(num_frames, 3).clone()
    out[centres >= times[-1]] = points[-1]
    for i in range(len(keyframes) - 1):
        inside = (centres >= times[i]) & (centres < times[i + 1])
        if inside.any():
            m, angle = _arc_basis(points[i], points[i + 1])
            phase = angle * (centres[inside] - times[i]) / (times[i + 1] - times[i])
            out[inside] = torch.cos(phase)[:, None] * points[i] + torch.sin(phase)[:, None] * m
    return out.float()


def lock_direction(latent: torch.Tensor, targets: torch.Tensor, normalizer: LatentNormalizer,
                   min_directness: float = MIN_DIRECTNESS) -> torch.Tensor:
    """Point each frame's direction track at its target, keeping the track's magnitude (the frame's directness).

    Args:
        latent: ``(B, C, L)`` normalised codec latent; channels ``C - 3 .. C - 1`` are the x, y, z direction track.
        targets: unit directions broadcastable to ``(B, L, 3)`` in x, y, z order (e.g. ``(L, 3)`` or ``(B, 1, 3)``).
        normalizer: the codec's ``latent_normalizer`` (the raw track holds ``DIRECTION_GAIN * d``).
        min_directness: a frame's ``|d|`` is raised to at least this (see ``MIN_DIRECTNESS``).

    Returns:
        ``(B, C, L)``: the other channels unchanged; the raw track ``max(|track|, floor) * target``, normalised.
    """
    k = NUM_DIRECTION_CHANNELS
    track_norm = normalizer.channels(slice(-k, None))
    track = track_norm.denormalize(latent[:, -k:])
    magnitude = track.norm(dim=1, keepdim=True).clamp_min(min_directness * DIRECTION_GAIN)  # (B, 1, L)
    unit = torch.broadcast_to(targets.to(latent), (latent.shape[0], latent.shape[-1], k)).transpose(1, 2)
    return torch.cat((latent[:, :-k], track_norm.normalize(magnitude * unit)), dim=1)


def track_directions(latent: torch.Tensor, normalizer: LatentNormalizer) -> torch.Tensor:
    """The raw direction track (``DIRECTION_GAIN * d``) of a normalised ``(B, C, L)`` latent as ``(B, L, 3)`` x, y, z
    vectors."""
    k = NUM_DIRECTION_CHANNELS
    return normalizer.channels(slice(-k, None)).denormalize(latent[:, -k:]).transpose(1, 2)


def trajectory_frame_errors(foa: np.ndarray, sample_rate: int, trajectory: str, frame_seconds: float = FRAME_SECONDS,
                            gate_db: float = GATE_DB) -> np.ndarray:
    """Per-frame great circle (degrees) between a trajectory ``"T:AZ:EL,..."`` and the DOA of ``(4, T)`` audio, for
    the frames within ``gate_db`` of the loudest: how closely a clip follows a path.

    Frames are those of ``soundstage.metrics.spatial_metrics.gated_framewise_doa``; frame ``i`` is compared with
    the trajectory at its centre (:func:`trajectory_vectors`' frame times).
    """
    hop = round(frame_seconds * sample_rate)
    azimuth, elevation, keep = gated_framewise_doa(foa, sample_rate, frame_seconds, gate_db)
    targets = trajectory_vectors(parse_trajectory(trajectory), azimuth.shape[-1], sample_rate / hop)
    target_az, target_el = vector_to_angles(targets)
    errors = great_circle_deg(azimuth, elevation, target_az.numpy(), target_el.numpy())
    return np.atleast_1d(errors)[keep]
