"""Number and timing conditioners: each quantity -> Fourier features -> MLP -> one token.

Normalisation (the ranges in docs/conventions.md): azimuth as (sin, cos) so that 179 and -179 deg are neighbours; elevation / 90;
distance, floor area and T30 on a log scale mapped to [-1, 1] over the data's range and clamped there (the model has
seen nothing outside it). NaN = not given -> the key's learned null; each key drops independently.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .types import NUMBER_KEYS

LOG_RANGES = {"distance_m": (0.5, 4.0), "floor_area_m2": (13.3, 277.4), "t30_s": (0.14, 2.67)}


def fourier_features(values: torch.Tensor, count: int) -> torch.Tensor:
    """``(B, k)`` values in [-1, 1] -> ``(B, k * (1 + 2 * count))``: the values and sin/cos at 2^0 .. 2^(count-1)
    radians per unit. Not multiples of pi, so that -1 and 1 (e.g. elevation -90 and 90) are not aliased."""
    freqs = 2.0 ** torch.arange(count, device=values.device, dtype=values.dtype)
    angles = values.unsqueeze(-1) * freqs  # (B, k, count)
    return torch.cat([values, angles.sin().flatten(1), angles.cos().flatten(1)], dim=-1)


def normalize_number(key: str, values: torch.Tensor) -> torch.Tensor:
    """One key's values ``(B,)`` (NaN allowed, kept) -> ``(B, k)``: k = 2 for azimuth, else 1."""
    if key == "azimuth_deg":
        radians = torch.deg2rad(values)
        return torch.stack([radians.sin(), radians.cos()], dim=-1)
    if key == "elevation_deg":
        return (values / 90.0).unsqueeze(-1)
    low, high = LOG_RANGES[key]
    scaled = 2 * (values.log() - math.log(low)) / (math.log(high) - math.log(low)) - 1
    return scaled.clamp(-1.0, 1.0).unsqueeze(-1)


def _mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))


class NumberConditioner(nn.Module):
    """The :data:`NUMBER_KEYS` -> tokens ``(B, 5, cond_dim)``, one per key in that order."""

    def __init__(self, cond_dim: int, fourier: int) -> None:
        super().__init__()
        self.fourier = fourier
        self.mlps = nn.ModuleDict({
            key: _mlp((2 if key == "azimuth_deg" else 1) * (1 + 2 * fourier), cond_dim) for key in NUMBER_KEYS
        })
        self.null = nn.Parameter(torch.randn(len(NUMBER_KEYS), cond_dim) * 0.02)

    def forward(self, numbers: dict[str, torch.Tensor], drop: dict[str, torch.Tensor]) -> torch.Tensor:
        """``numbers``: key -> ``(B,)`` (NaN = not given); ``drop``: key -> ``(B,)`` bool. -> ``(B, 5, cond_dim)``."""
        device = self.null.device
        tokens = []
        for index, key in enumerate(NUMBER_KEYS):
            values = numbers[key].to(device=device, dtype=torch.float32)
            given = ~values.isnan() & ~drop[key].to(device)
            # NaN must not enter the MLP even where the null replaces it: its gradient would be NaN
            features = fourier_features(normalize_number(key, values.nan_to_num(1.0)), self.fourier)
            token = self.mlps[key](features)
            tokens.append(torch.where(given.unsqueeze(-1), token, self.null[index]))
        return torch.stack(tokens, dim=1)


class TimingConditioner(nn.Module):
    """Clip length ``(B,)`` seconds -> an embedding ``(B, cond_dim)`` used as a token and in the global vector."""

    def __init__(self, cond_dim: int, fourier: int, max_seconds: float) -> None:
        super().__init__()
        self.fourier, self.max_seconds = fourier, max_seconds
        self.mlp = _mlp(1 + 2 * fourier, cond_dim)
        self.null = nn.Parameter(torch.randn(cond_dim) * 0.02)

    def forward(self, seconds: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """``seconds``: ``(B,)`` (NaN = not given); ``drop``: ``(B,)`` bool. -> ``(B, cond_dim)``."""
        device = self.null.device
        seconds = seconds.to(device=device, dtype=torch.float32)
        given = ~seconds.isnan() & ~drop.to(device)
        fraction = (seconds.nan_to_num(0.0) / self.max_seconds).clamp(0.0, 1.0) * 2 - 1
        embedding = self.mlp(fourier_features(fraction.unsqueeze(-1), self.fourier))
        return torch.where(given.unsqueeze(-1), embedding, self.null)
