"""The map between the codec's raw posterior means and the latents a diffusion model sees: ``z = (m - offset) * gain``.

A DiT's flow loss weighs every latent channel alike, so each channel should reach it with about unit spread: with one
pooled ``latent_scale`` the direction channels, whose spread is the smallest (benchmarks/results/codec_small/
latent_channels.json), count least, and a channel with a large mean spends the model's capacity on an offset. So a
codec may carry per-channel ``latent_mean`` / ``latent_std``, measured once at export (``soundstage calibrate codec``,
:func:`measure_latent_statistics`) and stored in its config; when it does, they replace ``latent_scale``. Codecs
without them keep the pooled scale (``offset`` 0, ``gain`` = ``latent_scale`` on every channel), so their latents and
the DiTs trained on them are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

MIN_STD = 1e-4  # a channel that barely varies is scaled by at most 1 / MIN_STD


@dataclass(frozen=True)
class LatentNormalizer:
    """Per-channel affine map; ``offset`` and ``gain`` are ``(C,)`` float32 tensors."""

    offset: torch.Tensor
    gain: torch.Tensor

    @classmethod
    def from_statistics(cls, channels: int, latent_scale: float, latent_mean: Sequence[float] = (),
                        latent_std: Sequence[float] = ()) -> LatentNormalizer:
        """Per-channel statistics when given (one mean and std per channel), else the pooled ``latent_scale``."""
        check_latent_statistics(channels, latent_mean, latent_std)
        if latent_mean:
            return cls(torch.tensor(latent_mean, dtype=torch.float32),
                       1.0 / torch.tensor(latent_std, dtype=torch.float32))
        return cls(torch.zeros(channels), torch.full((channels,), float(latent_scale)))

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw posterior values ``(B, C, L)`` -> diffusion latents ``(B, C, L)``."""
        return (raw - self.offset.to(raw)[:, None]) * self.gain.to(raw)[:, None]

    def denormalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Diffusion latents ``(B, C, L)`` -> raw posterior values ``(B, C, L)`` (the decoder's input)."""
        return latent / self.gain.to(latent)[:, None] + self.offset.to(latent)[:, None]

    def channels(self, index: slice) -> LatentNormalizer:
        """The map restricted to some channels (e.g. ``slice(-3, None)``: the direction track)."""
        return LatentNormalizer(self.offset[index], self.gain[index])


def check_latent_statistics(channels: int, latent_mean: Sequence[float], latent_std: Sequence[float]) -> None:
    """ValueError unless both are empty or both hold ``channels`` finite values, every std >= ``MIN_STD``."""
    if not latent_mean and not latent_std:
        return
    if len(latent_mean) != channels or len(latent_std) != channels:
        raise ValueError(f"latent_mean and latent_std need one value per latent channel ({channels}), got "
                         f"{len(latent_mean)} and {len(latent_std)}")
    if not all(math.isfinite(m) for m in latent_mean) or not all(math.isfinite(s) and s >= MIN_STD
                                                                 for s in latent_std):
        raise ValueError(f"latent_mean must be finite and latent_std finite and >= {MIN_STD}")


def measure_latent_statistics(means: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation (float64, floored at ``MIN_STD``) of raw posterior means, each
    ``(B, C, L)``, pooled over batches and frames."""
    total = total_sq = None
    count = 0
    for mean in means:
        values = mean.detach().double().transpose(0, 1).flatten(1)  # (C, B * L)
        total = values.sum(1) if total is None else total + values.sum(1)
        total_sq = values.square().sum(1) if total_sq is None else total_sq + values.square().sum(1)
        count += values.shape[1]
    if total is None or count == 0:
        raise ValueError("measuring latent statistics needs at least one clip")
    mu = total / count
    std = (total_sq / count - mu.square()).clamp_min(0.0).sqrt().clamp_min(MIN_STD)
    return tuple(round(float(v), 6) for v in mu), tuple(round(float(v), 6) for v in std)
