"""Measured band-level latents: each latent frame's W level in a few broad bands, which the decoder then obeys.

A learned decoder spreads a sparse spectrum's energy and loses level on tonal sound (docs/codec.md). With
``FOACodecConfig.level_bands = K`` the encoder writes, for every latent frame, W's level in ``K`` overlapping bands
(triangles on a log-frequency axis, centres :func:`band_centres_hz`) into ``K`` latent channels, and the decoder
scales its output, per band and frame, to those levels: the coded energy of CELT (Opus) in a learned codec. The gain
is one real number per STFT bin and frame applied to all four channels, so directions are untouched; it is
interpolated between band centres (in dB) and between frame centres, and bounded by ``MAX_GAIN_DB``.

Channel values are ``log10`` of the band's RMS amplitude (dB / 20) with a floor at ``LEVEL_FLOOR_DB``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .stft_autoencoder import istft_same, stft_same

LOWEST_CENTRE_HZ = 60.0
HIGHEST_CENTRE_HZ = 10_000.0  # or 0.42 x the sample rate, whichever is lower
LEVEL_FLOOR_DB = -100.0  # a band quieter than this reads as this (silence: no gain asked)
MAX_GAIN_DB = 24.0  # the most the decoder's output is raised or lowered in a band
LEVEL_STD = 0.01  # fixed posterior std (dB / 20 units: 0.2 dB)


def band_centres_hz(bands: int, sample_rate: int) -> np.ndarray:
    """``(bands,)`` centre frequencies, log-spaced from 60 Hz to ``min(10 kHz, 0.42 sample_rate)``."""
    if bands < 2:
        raise ValueError(f"band levels need at least 2 bands, got {bands}")
    return np.geomspace(LOWEST_CENTRE_HZ, min(HIGHEST_CENTRE_HZ, 0.42 * sample_rate), bands)


def band_weights(bands: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    """``(bands, n_fft // 2 + 1)`` weights: triangles on log frequency between neighbouring centres, the end bands
    flat beyond their centres; every bin's weights sum to 1, so the bands partition the spectrum's energy."""
    centres = np.log2(band_centres_hz(bands, sample_rate))
    freqs = np.log2(np.maximum(np.arange(n_fft // 2 + 1) * sample_rate / n_fft, 1.0))
    eye = np.eye(bands)
    weights = np.stack([np.interp(freqs, centres, eye[k]) for k in range(bands)])  # np.interp holds the ends flat
    return torch.from_numpy(weights / weights.sum(0, keepdims=True)).float()


def _band_levels(spec: torch.Tensor, weights: torch.Tensor, frames_per_latent: int) -> torch.Tensor:
    """``(B, F, N)`` complex STFT -> ``(B, K, N / frames_per_latent)`` band levels (dB / 20) per latent frame."""
    power = torch.einsum("kf,bfn->bkn", weights.to(spec.real), spec.real.square() + spec.imag.square())
    b, k, n = power.shape
    power = power.reshape(b, k, n // frames_per_latent, frames_per_latent).mean(-1)
    return 0.5 * torch.log10(power + 10.0 ** (LEVEL_FLOOR_DB / 10.0))


def _spectrum_scale(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    """Divide a one-sided Hann STFT by this and its power summed over bins is the frame's power per sample
    (Parseval: the full spectrum's power is ``n_fft`` times the windowed frame's, half of it in the one side)."""
    window = torch.hann_window(n_fft, dtype=like.real.dtype, device=like.device)
    return (0.5 * n_fft * window.square().sum()).sqrt()


def frame_band_levels(w: torch.Tensor, weights: torch.Tensor, n_fft: int, stft_hop: int, hop: int) -> torch.Tensor:
    """``(B, L * hop)`` W -> ``(B, K, L)`` band levels (dB / 20) per latent frame."""
    spec = stft_same(w[:, None], n_fft, stft_hop)[:, 0] / _spectrum_scale(n_fft, w)
    return _band_levels(spec, weights, hop // stft_hop)


def impose_band_levels(foa: torch.Tensor, levels: torch.Tensor, weights: torch.Tensor, n_fft: int, stft_hop: int,
                       hop: int, iterations: int = 4) -> torch.Tensor:
    """Scale ``(B, 4, L * hop)`` audio so that W's band levels per latent frame become ``levels`` ``(B, K, L)``.

    The gain at a bin mixes neighbouring bands' gains and a band's level mixes neighbouring bins, so the per-band
    gains are found by ``iterations`` fixed-point steps on the spectrum (each measures the levels the current gains
    give and adds the shortfall). Returns ``(B, 4, L * hop)``. Differentiable (the codec trains through it); gains
    are bounded by ``MAX_GAIN_DB``.
    """
    b, c, t = foa.shape
    scale = _spectrum_scale(n_fft, foa)
    spec = stft_same(foa, n_fft, stft_hop) / scale  # (B, 4, F, N)
    frames_per_latent = hop // stft_hop
    weights = weights.to(spec.real)

    def bin_gain(gain_db: torch.Tensor) -> torch.Tensor:  # (B, K, L) dB at band and frame centres -> (B, F, N) linear
        per_frame = F.interpolate(gain_db, scale_factor=frames_per_latent, mode="linear", align_corners=False)
        return torch.pow(10.0, torch.einsum("kf,bkn->bfn", weights, per_frame) / 20.0)

    gain_db = torch.zeros_like(levels)
    for _ in range(iterations):
        have = _band_levels(spec[:, 0] * bin_gain(gain_db), weights, frames_per_latent)
        gain_db = (gain_db + 20.0 * (levels - have)).clamp(-MAX_GAIN_DB, MAX_GAIN_DB)
    scaled = (spec * (scale * bin_gain(gain_db))[:, None]).flatten(0, 1)
    return istft_same(scaled, n_fft, stft_hop).reshape(b, c, t)


__all__ = ["LEVEL_STD", "band_centres_hz", "band_weights", "frame_band_levels", "impose_band_levels"]
