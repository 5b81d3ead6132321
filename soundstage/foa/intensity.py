"""Sound-field analysis on the STFT of AmbiX audio: intensity vectors, diffuseness, direction of arrival, maps.

Per time-frequency bin, with SN3D components ``V = (X, Y, Z)``:

- active intensity ``I_a = Re{conj(W) V}`` points towards the source (a plane wave from ``u`` gives ``|s|^2 u``);
- reactive intensity ``I_r = Im{conj(W) V}``;
- energy density ``E = (|W|^2 + |V|^2) / 2`` (equals ``|s|^2`` for a plane wave);
- diffuseness ``psi = 1 - |<I_a>| / <E>``: 0 for one plane wave, 1 for an isotropic diffuse field.

Vectors are returned in (x, y, z) order. All functions accept ``(4, T)`` or ``(B, 4, T)`` audio, tensors or arrays.
"""

from __future__ import annotations

import torch

from soundstage.common.compat import as_tensor, numpy_in_numpy_out
from soundstage.common.stft import stft

from .encoding import XYZ, W, direction_vector, vector_to_angles

DEFAULT_N_FFT = 512
DEFAULT_HOP = 256


def foa_stft(foa: torch.Tensor, n_fft: int = DEFAULT_N_FFT, hop_length: int = DEFAULT_HOP) -> torch.Tensor:
    """Complex STFT ``(..., 4, F, frames)`` of ``(..., 4, T)`` audio with a Hann window (centered)."""
    foa = as_tensor(foa)
    if foa.shape[-2] != 4:
        raise ValueError(f"expected FOA audio with 4 channels on axis -2, got shape {tuple(foa.shape)}")
    return stft(foa, n_fft, hop_length)


def _vector_part(spec: torch.Tensor) -> torch.Tensor:
    """(..., 4, F, N) AmbiX spectra -> (..., 3, F, N) in x, y, z order."""
    return torch.stack([spec[..., c, :, :] for c in XYZ], dim=-3)


def intensity_from_stft(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Active intensity, reactive intensity ``(..., 3, F, N)`` and energy density ``(..., F, N)`` of an FOA STFT."""
    w = spec[..., W, :, :]
    v = _vector_part(spec)
    cross = torch.conj(w).unsqueeze(-3) * v
    energy = 0.5 * (w.abs().square() + v.abs().square().sum(dim=-3))
    return cross.real, cross.imag, energy


@numpy_in_numpy_out
def intensity_vectors(
    foa: torch.Tensor, n_fft: int = DEFAULT_N_FFT, hop_length: int = DEFAULT_HOP, normalize: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Active and reactive intensity ``(..., 3, F, N)`` per STFT bin (ELSA's spatial features).

    With ``normalize`` both are divided by the bin's energy density (plus a small floor), so their norms lie in
    [0, 1] and do not depend on loudness: a plane wave gives a unit active vector along its direction.
    """
    active, reactive, energy = intensity_from_stft(foa_stft(foa, n_fft, hop_length))
    if normalize:
        floor = 1e-8 + 1e-6 * energy.flatten(-2).amax(-1)[..., None, None]
        scale = (energy + floor).unsqueeze(-3)
        active, reactive = active / scale, reactive / scale
    return active, reactive


@numpy_in_numpy_out
def diffuseness(foa: torch.Tensor, n_fft: int = DEFAULT_N_FFT, hop_length: int = DEFAULT_HOP) -> torch.Tensor:
    """Broadband diffuseness ``(...)`` in [0, 1]: 0 for a single plane wave, 1 for an isotropic diffuse field."""
    active, _, energy = intensity_from_stft(foa_stft(foa, n_fft, hop_length))
    net = active.sum(dim=(-1, -2)).norm(dim=-1)
    return (1.0 - net / energy.sum(dim=(-1, -2)).clamp_min(1e-12)).clamp(0.0, 1.0)


@numpy_in_numpy_out
def framewise_diffuseness(foa: torch.Tensor, n_fft: int = DEFAULT_N_FFT,
                          hop_length: int = DEFAULT_HOP) -> torch.Tensor:
    """Diffuseness of each STFT frame ``(..., frames)`` in [0, 1], over its frequencies as :func:`diffuseness` is
    over the clip: a moving plane wave stays at 0 frame by frame, where the whole clip's would rise with the motion."""
    active, _, energy = intensity_from_stft(foa_stft(foa, n_fft, hop_length))
    net = active.sum(dim=-2).norm(dim=-2)
    return (1.0 - net / energy.sum(dim=-2).clamp_min(1e-12)).clamp(0.0, 1.0)


@numpy_in_numpy_out
def broadband_doa(
    foa: torch.Tensor, n_fft: int = DEFAULT_N_FFT, hop_length: int = DEFAULT_HOP
) -> tuple[torch.Tensor, torch.Tensor]:
    """Direction of the energy-weighted sum of active intensity: (azimuth, elevation) in degrees, each ``(...)``."""
    active, _, _ = intensity_from_stft(foa_stft(foa, n_fft, hop_length))
    return vector_to_angles(active.sum(dim=(-1, -2)))


@numpy_in_numpy_out
def framewise_doa(
    foa: torch.Tensor, n_fft: int = DEFAULT_N_FFT, hop_length: int = DEFAULT_HOP
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame DOA: (azimuth, elevation, energy), each ``(..., frames)``; degrees and frame energy density."""
    active, _, energy = intensity_from_stft(foa_stft(foa, n_fft, hop_length))
    azimuth, elevation = vector_to_angles(active.sum(dim=-2).transpose(-1, -2))
    return azimuth, elevation, energy.sum(dim=-2)


@numpy_in_numpy_out
def direction_energy_map(
    foa: torch.Tensor, azimuth_steps: int = 72, elevation_steps: int = 37, sharpness: float = 4.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steered-response energy on an azimuth x elevation grid, for direction plots.

    Each grid direction ``d`` is weighted by ``((1 + d . u) / 2) ** sharpness`` summed over time-frequency bins with
    active-intensity direction ``u`` and magnitude ``|I_a|`` (a sharpened cardioid beam over intensity), so a single
    source gives one peak at its direction and a diffuse field a flat map.

    Returns:
        ``(energy, azimuths, elevations)``: energy ``(..., elevation_steps, azimuth_steps)`` normalised to a maximum
        of 1, azimuths ``(azimuth_steps,)`` in [-180, 180) and elevations ``(elevation_steps,)`` in [-90, 90] degrees.
    """
    foa = as_tensor(foa)
    active, _, _ = intensity_from_stft(foa_stft(foa))
    vectors = active.flatten(-2)  # (..., 3, bins)
    magnitude = vectors.norm(dim=-2).clamp_min(1e-12)
    unit = vectors / magnitude.unsqueeze(-2)
    azimuths = torch.linspace(-180.0, 180.0, azimuth_steps + 1, device=foa.device)[:-1]
    elevations = torch.linspace(-90.0, 90.0, elevation_steps, device=foa.device)
    grid = direction_vector(elevations[:, None].expand(-1, azimuth_steps) * 0 + azimuths, elevations[:, None])
    grid = grid.to(foa.device)  # (E, A, 3)
    cosine = torch.einsum("eac,...cb->...eab", grid, unit)
    energy = (((1.0 + cosine) / 2.0) ** sharpness * magnitude[..., None, None, :]).sum(-1)
    energy = energy / energy.flatten(-2).amax(-1)[..., None, None].clamp_min(1e-12)
    return energy, azimuths, elevations
