"""Exact rotation of a first-order scene.

First-order components (X, Y, Z) transform as a Cartesian vector and W is invariant, so a rotation is a 3x3 matrix
applied to the vector part. Angles in degrees, right-handed, intrinsic order roll -> pitch -> yaw:

- yaw about +z: positive turns the scene to the left (a source at azimuth a moves to a + yaw);
- pitch about +y: positive raises the front (a source at the front moves up);
- roll about +x: positive moves the left side up.
"""

from __future__ import annotations

import torch

from soundstage.common.compat import as_tensor, numpy_in_numpy_out

from .encoding import XYZ


def rotation_matrix(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> torch.Tensor:
    """``(3, 3)`` matrix acting on (x, y, z) column vectors: ``R = Rz(yaw) @ Ry(-pitch) @ Rx(roll)``."""
    yaw, pitch, roll = (torch.deg2rad(torch.tensor(float(a), dtype=torch.float64)) for a in (yaw_deg, pitch_deg, roll_deg))
    cz, sz = torch.cos(yaw), torch.sin(yaw)
    cy, sy = torch.cos(-pitch), torch.sin(-pitch)
    cx, sx = torch.cos(roll), torch.sin(roll)
    one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    rz = torch.stack([torch.stack([cz, -sz, zero]), torch.stack([sz, cz, zero]), torch.stack([zero, zero, one])])
    ry = torch.stack([torch.stack([cy, zero, sy]), torch.stack([zero, one, zero]), torch.stack([-sy, zero, cy])])
    rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cx, -sx]), torch.stack([zero, sx, cx])])
    return (rz @ ry @ rx).float()


@numpy_in_numpy_out
def rotate_foa(foa: torch.Tensor, yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> torch.Tensor:
    """Rotate AmbiX audio ``(..., 4, T)``; differentiable in ``foa``."""
    foa = as_tensor(foa)
    r = rotation_matrix(yaw_deg, pitch_deg, roll_deg).to(foa)
    xyz = torch.stack([foa[..., c, :] for c in XYZ], dim=-2)  # (..., 3, T) vectors in x, y, z order
    rotated = foa.clone()
    rotated[..., XYZ, :] = torch.einsum("ij,...jt->...it", r, xyz)
    return rotated
