"""Spatial metrics on directions and FOA sound fields (degrees throughout; DESIGN.md section 1 conventions)."""

from __future__ import annotations

import numpy as np
import torch

from soundstage.foa import broadband_doa, diffuseness, direction_vector
from soundstage.foa._compat import as_tensor


def great_circle_deg(azimuth_a, elevation_a, azimuth_b, elevation_b):
    """Great-circle angle in degrees (in [0, 180]) between directions a and b given in degrees; broadcasts.

    Returns a numpy array (or float) for non-tensor inputs and a tensor when any input is a tensor.
    """
    torch_out = any(isinstance(v, torch.Tensor) for v in (azimuth_a, elevation_a, azimuth_b, elevation_b))
    a = direction_vector(as_tensor(azimuth_a, torch.float64), as_tensor(elevation_a, torch.float64)).double()
    b = direction_vector(as_tensor(azimuth_b, torch.float64), as_tensor(elevation_b, torch.float64)).double()
    angle = angle_between_deg(a, b)
    if torch_out:
        return angle
    out = angle.numpy()
    return float(out) if out.ndim == 0 else out


def angle_between_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between ``(..., 3)`` vectors (any lengths; 90 when either is zero). atan2 form: exact at 0."""
    a, b = torch.broadcast_tensors(as_tensor(a, torch.float64), as_tensor(b, torch.float64))
    cross = torch.linalg.cross(a, b, dim=-1).norm(dim=-1)
    dot = (a * b).sum(-1)
    return torch.rad2deg(torch.atan2(cross, dot)).float()


def broadband_direction_error_deg(estimate, reference, n_fft: int = 512, hop_length: int = 256):
    """Great-circle angle (degrees) between broadband active-intensity directions of two ``(..., 4, T)`` FOA signals."""
    az_e, el_e = broadband_doa(as_tensor(estimate), n_fft, hop_length)
    az_r, el_r = broadband_doa(as_tensor(reference), n_fft, hop_length)
    out = great_circle_deg(az_e, el_e, az_r, el_r)
    return out if isinstance(estimate, torch.Tensor) else np.asarray(out)


def diffuseness_error(estimate, reference, n_fft: int = 512, hop_length: int = 256):
    """Absolute difference of broadband diffuseness (in [0, 1]) of two ``(..., 4, T)`` FOA signals."""
    out = (diffuseness(as_tensor(estimate), n_fft, hop_length) - diffuseness(as_tensor(reference), n_fft, hop_length)).abs()
    return out if isinstance(estimate, torch.Tensor) else out.numpy()


def localization_summary(
    predicted_azimuth, predicted_elevation, true_azimuth, true_elevation,
    predicted_distance=None, true_distance=None,
) -> dict[str, float]:
    """Mean and median great-circle error (degrees) of predicted directions, and of the absolute distance error
    (metres) when distances are given, as plain floats (e.g. for ELSA's regression heads)."""
    angle = np.asarray(great_circle_deg(*(np.asarray(v, dtype=np.float64) for v in (
        predicted_azimuth, predicted_elevation, true_azimuth, true_elevation))), dtype=np.float64).reshape(-1)
    out = {"angle_error_mean_deg": float(angle.mean()), "angle_error_median_deg": float(np.median(angle))}
    if predicted_distance is not None and true_distance is not None:
        error = np.abs(np.asarray(predicted_distance, dtype=np.float64) - np.asarray(true_distance, dtype=np.float64))
        out.update({"distance_error_mean_m": float(error.mean()), "distance_error_median_m": float(np.median(error))})
    return out
