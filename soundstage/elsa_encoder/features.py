"""ELSA's audio features, computed in torch: log-mel of the omni channel and band-pooled intensity vectors.

Per STFT bin the active and reactive intensity (``soundstage.foa.intensity_from_stft``, ELSA eq. 2) are summed over
each mel band and divided by the band's summed energy density, so each band carries a normalised intensity vector of
norm <= 1: its direction points at the dominant source, its length falls with diffuseness (reverberation). Pooling
into the mel bands of the semantic branch keeps the spatial input small (CPU training) and averages out the noisy
single bins. A rotation of the scene rotates these vectors exactly (W and the energy density are invariant), which
:func:`rotate_intensity` uses to augment cached features.
"""

from __future__ import annotations

import torch
from torch import nn

from soundstage.foa import foa_stft, intensity_from_stft, rotation_matrix
from soundstage.foa.encoding import W

from .config import ELSAConfig

LOG_EPS = 1e-8  # floor of the mel power before the log: digital silence maps to ln(1e-8) ~ -18.4
LOGMEL_CENTER, LOGMEL_SCALE = -5.0, 5.0  # fixed affine map of ln(mel power) to roughly [-3, 3] for the CNNs


def mel_filters(config: ELSAConfig) -> torch.Tensor:
    """``(n_fft // 2 + 1, n_mels)`` triangular Slaney-scale filters (no area normalisation)."""
    from transformers.audio_utils import mel_filter_bank

    fb = mel_filter_bank(
        num_frequency_bins=config.n_fft // 2 + 1,
        num_mel_filters=config.n_mels,
        min_frequency=config.f_min,
        max_frequency=config.f_max or config.sample_rate / 2,
        sampling_rate=config.sample_rate,
        norm=None,
        mel_scale="slaney",
    )
    return torch.from_numpy(fb).float()


class FOAFeatures(nn.Module):
    """AmbiX ``(B, 4, T)`` -> (``logmel`` ``(B, M, N)``, ``intensity`` ``(B, 6, M, N)``).

    ``logmel`` is ln(mel power of W + 1e-8); ``intensity`` stacks active (x, y, z) then reactive (x, y, z), each
    normalised by the band energy density. M = ``n_mels``, N = ``1 + T // hop_length`` frames. No parameters.
    """

    def __init__(self, config: ELSAConfig) -> None:
        super().__init__()
        self.n_fft, self.hop_length = config.n_fft, config.hop_length
        self.register_buffer("filters", mel_filters(config), persistent=False)  # derived from the config, not saved

    def forward(self, foa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = foa_stft(foa, self.n_fft, self.hop_length)  # (B, 4, F, N)
        active, reactive, energy = intensity_from_stft(spec)
        filters = self.filters.to(foa.dtype)
        mel_power = torch.einsum("bfn,fm->bmn", spec[:, W].abs().square(), filters)
        band_energy = torch.einsum("bfn,fm->bmn", energy, filters)
        band_vectors = torch.einsum("bcfn,fm->bcmn", torch.cat((active, reactive), dim=1), filters)
        # A relative floor keeps near-silent bands of a loud clip at ~0 instead of amplifying their noise.
        floor = 1e-10 + 1e-6 * band_energy.flatten(1).amax(1)[:, None, None]
        intensity = band_vectors / (band_energy + floor).unsqueeze(1)
        return torch.log(mel_power + LOG_EPS), intensity


def scale_logmel(logmel: torch.Tensor) -> torch.Tensor:
    """The CNN input of a log-mel spectrogram."""
    return (logmel - LOGMEL_CENTER) / LOGMEL_SCALE


def intensity_summary(logmel: torch.Tensor, intensity: torch.Tensor, groups: int) -> torch.Tensor:
    """Energy-weighted mean intensity per group of adjacent mel bands and over all bands: ``(B, 6 * (groups + 1))``.

    Weights are the W mel power (equal to the energy density for plane waves and for isotropic diffuse fields), so
    the broadband entry is the DOA vector of docs/conventions.md section 1 scaled by (1 - diffuseness).
    """
    weights = torch.exp(logmel) - LOG_EPS  # (B, M, N)
    per_band = torch.einsum("bmn,bcmn->bcm", weights, intensity)  # (B, 6, M)
    band_weight = weights.sum(-1)  # (B, M)
    membership = torch.zeros(logmel.shape[1], groups, dtype=logmel.dtype, device=logmel.device)
    for g, idx in enumerate(torch.arange(logmel.shape[1]).tensor_split(groups)):
        membership[idx, g] = 1.0
    grouped = per_band @ membership  # (B, 6, G)
    grouped_weight = band_weight @ membership  # (B, G)
    tiny = 1e-12 + 1e-9 * band_weight.sum(-1, keepdim=True)
    summary = grouped / (grouped_weight + tiny).unsqueeze(1)
    overall = per_band.sum(-1) / (band_weight.sum(-1, keepdim=True) + tiny)
    return torch.cat((summary.flatten(1), overall), dim=1)


def rotate_intensity(intensity: torch.Tensor, yaw_deg: float) -> torch.Tensor:
    """Intensity features ``(..., 6, M, N)`` of the scene turned by ``yaw_deg`` (as ``soundstage.foa.rotate_foa``)."""
    if yaw_deg % 360.0 == 0.0:
        return intensity
    r = rotation_matrix(yaw_deg).to(intensity)
    shape = intensity.shape
    vectors = intensity.reshape(*shape[:-3], 2, 3, *shape[-2:])
    rotated = torch.einsum("ij,...kjmn->...kimn", r, vectors)
    return rotated.reshape(shape)


def min_samples(config: ELSAConfig) -> int:
    """Shortest audio the encoder takes without padding (reflect padding of the STFT and one frame per pooling)."""
    return max(config.n_fft // 2 + 1, (config.min_frames - 1) * config.hop_length + 1)

