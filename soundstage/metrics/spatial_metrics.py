"""Spatial metrics on directions and FOA sound fields (degrees throughout; docs/conventions.md section 1 conventions).

FOA inputs go through :func:`soundstage.foa.check_foa`, so a metric accepts and refuses exactly what the codec and
ELSA do (float ``(4, T)`` or ``(B, 4, T)``, finite); the angle itself is :func:`soundstage.foa.great_circle_deg`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from soundstage.foa import broadband_doa, check_foa, diffuseness, great_circle_deg


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
