"""Preview decoders: stereo (two virtual cardioids) and binaural (virtual loudspeakers + a spherical-head model).

These are listening aids for sound designers, not reference renderers: no measured HRTF set ships offline, so the
binaural preview uses a rigid-sphere head (Woodworth interaural delay, Brown-Duda one-pole head shadow).
"""

from __future__ import annotations

import math

import torch

from soundstage.common.compat import as_tensor, numpy_in_numpy_out

from .encoding import foa_gains

SPEED_OF_SOUND = 343.0
HEAD_RADIUS_M = 0.0875

# Eight virtual loudspeakers on a cube: a regular layout that decodes first order without directional bias.
_CUBE_AZIMUTHS = (45.0, 135.0, -135.0, -45.0) * 2
_CUBE_ELEVATIONS = (35.26,) * 4 + (-35.26,) * 4


def _virtual_cardioids(foa: torch.Tensor, azimuths: tuple[float, ...], elevations: tuple[float, ...]) -> torch.Tensor:
    """Signals ``(..., K, T)`` of first-order cardioids pointing at the given directions (degrees)."""
    gains = foa_gains(torch.tensor(azimuths), torch.tensor(elevations)).to(foa)  # (K, 4): cardioid = (W + d.V) / 2
    return 0.5 * torch.einsum("kc,...ct->...kt", gains, foa)


@numpy_in_numpy_out
def decode_stereo(foa: torch.Tensor, spread_deg: float = 90.0) -> torch.Tensor:
    """Stereo ``(..., 2, T)`` (left, right) from AmbiX ``(..., 4, T)``: cardioids at +-``spread_deg`` azimuth."""
    foa = as_tensor(foa)
    return _virtual_cardioids(foa, (spread_deg, -spread_deg), (0.0, 0.0))


def _head_filters(azimuth_deg: float, elevation_deg: float, sample_rate: int) -> tuple[tuple[float, float], ...]:
    """Per ear (left, right): (delay in samples, head-shadow alpha) for a source direction."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    source = (math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el))
    filters = []
    for ear_y in (1.0, -1.0):  # left ear on +y
        cos_angle = source[1] * ear_y
        angle = math.acos(max(-1.0, min(1.0, cos_angle)))  # 0 = source on the ear's axis
        # Woodworth: straight path on the lit side, path around the sphere on the shadowed side (+ r/c offset).
        wrap = 1.0 - cos_angle if angle < math.pi / 2 else 1.0 + angle - math.pi / 2
        delay_s = HEAD_RADIUS_M / SPEED_OF_SOUND * wrap
        # Brown-Duda: alpha = 2 (+6 dB shelf) facing the ear, down to 0.1 (shadow) at 150 degrees from it.
        alpha = 1.05 + 0.95 * math.cos(angle * 180.0 / 150.0)
        filters.append((delay_s * sample_rate, alpha))
    return tuple(filters)


def _shadow_filter(signal: torch.Tensor, alpha: float, sample_rate: int) -> torch.Tensor:
    """Brown-Duda head-shadow shelf ``H(s) = (alpha s + b) / (s + b)``, b = 2c/r, by the bilinear transform (FFT)."""
    n = signal.shape[-1]
    freqs = torch.fft.rfftfreq(2 * n, d=1.0 / sample_rate).to(signal.device)
    b = 2.0 * SPEED_OF_SOUND / HEAD_RADIUS_M
    s = 1j * 2 * math.pi * freqs.double()
    response = ((alpha * s + b) / (s + b)).to(torch.complex64)
    return torch.fft.irfft(torch.fft.rfft(signal, n=2 * n) * response, n=2 * n)[..., :n]


def _fractional_delay(signal: torch.Tensor, delay_samples: float) -> torch.Tensor:
    n = signal.shape[-1]
    freqs = torch.fft.rfftfreq(2 * n).to(signal.device)
    phase = torch.exp(-2j * math.pi * freqs * delay_samples).to(torch.complex64)
    return torch.fft.irfft(torch.fft.rfft(signal, n=2 * n) * phase, n=2 * n)[..., :n]


@numpy_in_numpy_out
def decode_binaural(foa: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Headphone preview ``(..., 2, T)`` (left, right) from AmbiX ``(..., 4, T)``.

    Decodes to eight virtual loudspeakers on a cube (max-rE-like cardioids) and renders each through a spherical
    head model: interaural delay and a one-pole head-shadow shelf per ear.
    """
    foa = as_tensor(foa)
    speakers = _virtual_cardioids(foa, _CUBE_AZIMUTHS, _CUBE_ELEVATIONS)  # (..., 8, T)
    ears = torch.zeros(*foa.shape[:-2], 2, foa.shape[-1], dtype=foa.dtype, device=foa.device)
    for k, (az, el) in enumerate(zip(_CUBE_AZIMUTHS, _CUBE_ELEVATIONS)):
        for ear, (delay, alpha) in enumerate(_head_filters(az, el, sample_rate)):
            ears[..., ear, :] += _fractional_delay(_shadow_filter(speakers[..., k, :], alpha, sample_rate), delay)
    return ears / 4.0  # eight cardioids summed per ear: bring a frontal plane wave back to about unit level
