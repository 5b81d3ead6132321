"""Spatial metrics on directions and FOA sound fields (degrees throughout; docs/conventions.md section 1 conventions).

FOA inputs go through :func:`soundstage.foa.check_foa`, so a metric accepts and refuses exactly what the codec and
ELSA do (float ``(4, T)`` or ``(B, 4, T)``, finite); the angle itself is :func:`soundstage.foa.great_circle_deg`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from soundstage.foa import (
    broadband_doa,
    check_foa,
    diffuseness,
    framewise_diffuseness,
    framewise_doa,
    great_circle_deg,
    wrap_degrees,
)

FRAME_SECONDS = 0.04  # framewise direction: 40-ms frames
GATE_DB = 30.0  # ... those within 30 dB of the loudest frame


def _checked_pair(estimate: Any, reference: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Both signals as float32 tensors of their own shape, ``(4, T)`` or ``(B, 4, T)``, after :func:`check_foa`."""
    return tuple(check_foa(x, what=what).reshape(x.shape)  # type: ignore[return-value]
                 for x, what in ((estimate, "estimate"), (reference, "reference")))


def broadband_direction_error_deg(estimate: Any, reference: Any, n_fft: int = 512, hop_length: int = 256) -> Any:
    """Great-circle angle (degrees) between broadband active-intensity directions of two FOA signals, ``(...)``.

    A tensor for tensor ``estimate``, else a numpy array.
    """
    checked_estimate, checked_reference = _checked_pair(estimate, reference)
    az_e, el_e = broadband_doa(checked_estimate, n_fft, hop_length)
    az_r, el_r = broadband_doa(checked_reference, n_fft, hop_length)
    out = great_circle_deg(az_e, el_e, az_r, el_r)
    return out if isinstance(estimate, torch.Tensor) else np.asarray(out)


def diffuseness_error(estimate: Any, reference: Any, n_fft: int = 512, hop_length: int = 256) -> Any:
    """Absolute difference of broadband diffuseness (in [0, 1]) of two FOA signals, ``(...)``.

    A tensor for tensor ``estimate``, else a numpy array.
    """
    checked_estimate, checked_reference = _checked_pair(estimate, reference)
    out = (diffuseness(checked_estimate, n_fft, hop_length) - diffuseness(checked_reference, n_fft, hop_length)).abs()
    return out if isinstance(estimate, torch.Tensor) else out.numpy()


def localization_summary(
    predicted_azimuth: Any, predicted_elevation: Any, true_azimuth: Any, true_elevation: Any,
    predicted_distance: Any = None, true_distance: Any = None,
) -> dict[str, float]:
    """Mean and median great-circle error (degrees) of predicted directions, and of the absolute distance error
    (metres) when distances are given, as plain floats (e.g. for ELSA's regression heads); inputs ``(N,)``."""
    angle = np.asarray(great_circle_deg(*(np.asarray(v, dtype=np.float64) for v in (
        predicted_azimuth, predicted_elevation, true_azimuth, true_elevation))), dtype=np.float64).reshape(-1)
    out = {"angle_error_mean_deg": float(angle.mean()), "angle_error_median_deg": float(np.median(angle))}
    if predicted_distance is not None and true_distance is not None:
        error = np.abs(np.asarray(predicted_distance, dtype=np.float64) - np.asarray(true_distance, dtype=np.float64))
        out.update({"distance_error_mean_m": float(error.mean()), "distance_error_median_m": float(np.median(error))})
    return out


def doa_deg(foa: Any) -> tuple[float, float]:
    """Broadband active-intensity DOA (azimuth, elevation) in degrees of one ``(4, T)`` clip."""
    azimuth, elevation = broadband_doa(check_foa(foa)[0])
    return float(azimuth), float(elevation)


def gated_framewise_doa(foa: np.ndarray, sample_rate: int, frame_seconds: float = FRAME_SECONDS,
                        gate_db: float = GATE_DB) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DOA of each ``frame_seconds`` frame of one ``(4, T)`` clip: azimuth, elevation (degrees) and a bool mask of
    the frames within ``gate_db`` of the loudest, each ``(frames,)``.

    Frames are back to back; frame ``i`` covers ``[i, i + 1) * frame_seconds`` (its DOA is that of the frame's
    energy-weighted active intensity). The STFT centres its frames on their starts, so the audio is analysed from
    half a frame on.
    """
    framed, hop = _framed(foa, sample_rate, frame_seconds)
    azimuth, elevation, energy = framewise_doa(framed, n_fft=hop, hop_length=hop)
    azimuth, elevation, energy = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (azimuth, elevation, energy))
    keep = energy >= energy.max() * 10 ** (-gate_db / 10)
    return azimuth, elevation, keep


def _framed(foa: np.ndarray, sample_rate: int, frame_seconds: float) -> tuple[np.ndarray, int]:
    """The float32 clip from half a frame on and the frame length in samples (the STFT centres frames on starts)."""
    hop = round(frame_seconds * sample_rate)
    return np.asarray(foa, dtype=np.float32)[..., hop // 2:], hop


def gated_framewise_diffuseness(foa: np.ndarray, sample_rate: int, frame_seconds: float = FRAME_SECONDS,
                                gate_db: float = GATE_DB) -> float:
    """Median diffuseness over the frames of :func:`gated_framewise_doa` that pass its gate, for one ``(4, T)``
    clip: how wet the sound is where its framewise direction is measured, which motion does not inflate."""
    framed, hop = _framed(foa, sample_rate, frame_seconds)
    values = np.atleast_1d(np.asarray(framewise_diffuseness(framed, n_fft=hop, hop_length=hop), dtype=np.float64))
    keep = gated_framewise_doa(foa, sample_rate, frame_seconds, gate_db)[2]
    return float(np.median(values[keep]))


def framewise_direction_error_deg(foa: np.ndarray, sample_rate: int, azimuth_deg: float, elevation_deg: float,
                                  frame_seconds: float = FRAME_SECONDS, gate_db: float = GATE_DB) -> float:
    """Median great circle (degrees) between a fixed direction and the DOA of each frame of :func:`gated_framewise_doa`
    that passes its gate (NaN for a clip with no such frame)."""
    return median_frame_error_deg(*gated_framewise_doa(foa, sample_rate, frame_seconds, gate_db), azimuth_deg,
                                  elevation_deg)


def median_frame_error_deg(azimuth: np.ndarray, elevation: np.ndarray, keep: np.ndarray, azimuth_deg: float,
                           elevation_deg: float) -> float:
    """Median great circle (degrees) between a fixed direction and the kept frames' DOAs (NaN when none is kept)."""
    keep = np.asarray(keep, dtype=bool)
    if not keep.any():
        return float("nan")
    errors = great_circle_deg(np.asarray(azimuth)[keep], np.asarray(elevation)[keep], azimuth_deg, elevation_deg)
    return float(np.median(errors))


def azimuth_error_deg(estimate: Any, reference: Any) -> Any:
    """Absolute wrapped azimuth difference in degrees, in [0, 180]: 170 vs -170 is 20 degrees apart."""
    return np.abs(wrap_degrees(np.asarray(estimate, dtype=np.float64) - np.asarray(reference, dtype=np.float64)))
