"""Plane-wave encoding and FuMa <-> AmbiX conversion.

AmbiX (ACN order W, Y, Z, X; SN3D): a plane wave ``s`` from azimuth ``az`` and elevation ``el`` (degrees; azimuth 0 =
front (+x), +90 = left (+y); elevation +90 = up) is ``(s, s sin(az) cos(el), s sin(el), s cos(az) cos(el))``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

from soundstage.common.compat import as_tensor, numpy_in_numpy_out

W, Y, Z, X = 0, 1, 2, 3  # ACN channel indices
XYZ = (X, Y, Z)  # channels of the x, y, z components, in that order
FUMA_W_SCALE = 2.0**-0.5  # FuMa's W is attenuated by 1/sqrt(2) relative to SN3D

Angle = TypeVar("Angle", float, np.ndarray, torch.Tensor)


def direction_vector(azimuth_deg: torch.Tensor | float, elevation_deg: torch.Tensor | float) -> torch.Tensor:
    """Unit vectors ``(..., 3)`` in (x, y, z) order for angles in degrees (broadcast together)."""
    az = torch.deg2rad(as_tensor(azimuth_deg, dtype=torch.float64))
    el = torch.deg2rad(as_tensor(elevation_deg, dtype=torch.float64))
    az, el = torch.broadcast_tensors(az, el)
    return torch.stack((torch.cos(az) * torch.cos(el), torch.sin(az) * torch.cos(el), torch.sin(el)), dim=-1).float()


def vector_to_angles(vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., 3)`` (x, y, z) vectors -> (azimuth, elevation) in degrees; azimuth wrapped to [-180, 180)."""
    vector = vector.double()
    x, y, z = vector.unbind(-1)
    azimuth = torch.rad2deg(torch.atan2(y, x))
    elevation = torch.rad2deg(torch.atan2(z, torch.hypot(x, y)))
    return wrap_degrees(azimuth).float(), elevation.float()


def wrap_degrees(angle: Angle) -> Angle:
    """Wrap degrees to [-180, 180); a float, array or tensor gives the same kind back (elementwise)."""
    return (angle + 180.0) % 360.0 - 180.0  # Python's and torch's % both take the divisor's sign: exact wrap


def angle_between_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between ``(..., 3)`` vectors (any lengths; 90 when either is zero); broadcasts.

    The atan2 form stays exact near 0 and 180 degrees, where the arccos of a dot product loses precision.
    """
    a, b = torch.broadcast_tensors(as_tensor(a, torch.float64), as_tensor(b, torch.float64))
    cross = torch.linalg.cross(a, b, dim=-1).norm(dim=-1)
    dot = (a * b).sum(-1)
    return torch.rad2deg(torch.atan2(cross, dot)).float()


def great_circle_deg(azimuth_a: Any, elevation_a: Any, azimuth_b: Any, elevation_b: Any) -> Any:
    """Great-circle angle in degrees, in [0, 180], between directions a and b given in degrees; broadcasts.

    A tensor when any input is a tensor, else a float for scalar inputs and a numpy array otherwise.
    """
    torch_out = any(isinstance(v, torch.Tensor) for v in (azimuth_a, elevation_a, azimuth_b, elevation_b))
    a = direction_vector(as_tensor(azimuth_a, torch.float64), as_tensor(elevation_a, torch.float64))
    b = direction_vector(as_tensor(azimuth_b, torch.float64), as_tensor(elevation_b, torch.float64))
    angle = angle_between_deg(a, b)
    if torch_out:
        return angle
    out = angle.numpy()
    return float(out) if out.ndim == 0 else out


def foa_gains(azimuth_deg: torch.Tensor | float, elevation_deg: torch.Tensor | float) -> torch.Tensor:
    """AmbiX encoding gains ``(..., 4)`` = (1, y, z, x) for a plane wave from the given direction."""
    x, y, z = direction_vector(azimuth_deg, elevation_deg).unbind(-1)
    return torch.stack((torch.ones_like(x), y, z, x), dim=-1)


@numpy_in_numpy_out
def encode_mono(
    signal: torch.Tensor, azimuth_deg: torch.Tensor | float, elevation_deg: torch.Tensor | float
) -> torch.Tensor:
    """Encode mono audio as a plane wave.

    Args:
        signal: ``(T,)`` or ``(B, T)`` mono audio.
        azimuth_deg, elevation_deg: scalars or ``(B,)`` directions in degrees.

    Returns:
        ``(4, T)`` or ``(B, 4, T)`` AmbiX FOA.
    """
    signal = as_tensor(signal)
    gains = foa_gains(azimuth_deg, elevation_deg).to(signal.device)  # (4,) or (B, 4)
    return gains.unsqueeze(-1) * signal.unsqueeze(-2)


@numpy_in_numpy_out
def fuma_to_ambix(foa: torch.Tensor) -> torch.Tensor:
    """FuMa ``(..., 4, T)`` (W, X, Y, Z; W at -3 dB) -> AmbiX (W, Y, Z, X; SN3D)."""
    foa = as_tensor(foa)
    w, x, y, z = foa.unbind(-2)
    return torch.stack((w / FUMA_W_SCALE, y, z, x), dim=-2)


@numpy_in_numpy_out
def ambix_to_fuma(foa: torch.Tensor) -> torch.Tensor:
    """AmbiX ``(..., 4, T)`` (W, Y, Z, X; SN3D) -> FuMa (W, X, Y, Z; W at -3 dB)."""
    foa = as_tensor(foa)
    w, y, z, x = foa.unbind(-2)
    return torch.stack((w * FUMA_W_SCALE, x, y, z), dim=-2)
