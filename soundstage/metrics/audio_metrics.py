"""Signal-level audio metrics shared by codec, ELSA and generation evaluation.

All functions take torch tensors or numpy arrays shaped ``(..., T)`` (any leading axes, e.g. ``(B, 4, T)``) and
return tensors (numpy arrays for numpy input) with the leading axes kept.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from soundstage.common.compat import as_tensor, numpy_in_numpy_out
from soundstage.common.stft import stft


@numpy_in_numpy_out
def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, ``(...)`` for ``(..., T)`` signals (zero-mean first).

    ``10 log10(|a s|^2 / |a s - x|^2)`` with ``a = <x, s> / |s|^2`` the optimal scale of the reference ``s``.
    """
    estimate, reference = as_tensor(estimate).double(), as_tensor(reference).double()
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.square().sum(-1, keepdim=True) + eps)
    target = scale * reference
    noise = estimate - target
    ratio = (target.square().sum(-1) + eps) / (noise.square().sum(-1) + eps)
    return (10.0 * torch.log10(ratio)).float()


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)  # HTK formula


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filters ``(n_mels, n_fft // 2 + 1)`` with unit peak."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    points = _mel_to_hz(torch.linspace(float(_hz_to_mel(torch.tensor(fmin))), float(_hz_to_mel(torch.tensor(fmax))),
                                       n_mels + 2, dtype=torch.float64))
    low, center, high = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (freqs - low) / (center - low).clamp_min(1e-9)
    falling = (high - freqs) / (high - center).clamp_min(1e-9)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def _power_spectrogram(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Power ``(..., n_fft // 2 + 1, frames)`` of ``(..., T)`` audio (centred Hann STFT)."""
    return stft(x, n_fft, hop).abs().square()


def mel_power_spectrogram(x: torch.Tensor, sample_rate: int, n_fft: int, n_mels: int = 80) -> torch.Tensor:
    """Mel power ``(..., mels, frames)`` of ``(..., T)`` audio: hop ``n_fft // 4``, ``min(n_mels, n_fft // 8)`` HTK
    filters from 0 Hz to Nyquist (fewer for small FFTs, so that none is empty). Differentiable."""
    bank = mel_filterbank(sample_rate, n_fft, min(n_mels, n_fft // 8)).to(x)
    return torch.einsum("mf,...fn->...mn", bank, _power_spectrogram(x, n_fft, n_fft // 4))


@numpy_in_numpy_out
def mel_distance(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    sample_rate: int,
    fft_sizes: tuple[int, ...] = (2048, 1024, 512),
    n_mels: int = 80,
) -> torch.Tensor:
    """Mean absolute difference of log10 mel power spectrograms, averaged over resolutions: ``(...)``.

    Each resolution is a :func:`mel_power_spectrogram`. 0 for identical inputs; 1 means a factor of 10 in power on
    average.
    """
    estimate, reference = as_tensor(estimate), as_tensor(reference)
    total = torch.zeros(estimate.shape[:-1])
    for n_fft in fft_sizes:
        mel_e = mel_power_spectrogram(estimate, sample_rate, n_fft, n_mels)
        mel_r = mel_power_spectrogram(reference, sample_rate, n_fft, n_mels)
        total = total + (torch.log10(mel_e + 1e-7) - torch.log10(mel_r + 1e-7)).abs().mean((-1, -2)).cpu()
    return total / len(fft_sizes)


def level_error_db(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """Whole-signal level of ``estimate`` relative to ``reference`` in dB (signed: below 0 it is too quiet)."""
    return 10.0 * math.log10((float(estimate.square().sum()) + 1e-20) / max(float(reference.square().sum()), 1e-20))


@numpy_in_numpy_out
def multi_resolution_stft_distance(
    estimate: torch.Tensor, reference: torch.Tensor, fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256)
) -> torch.Tensor:
    """Spectral convergence + mean |log magnitude difference|, averaged over resolutions (hop n/4): ``(...)``.

    The same terms as ``auraloss.freq.MultiResolutionSTFTLoss`` with natural-log magnitudes, but per signal.
    """
    estimate, reference = as_tensor(estimate), as_tensor(reference)
    total = torch.zeros(estimate.shape[:-1])
    for n_fft in fft_sizes:
        mag_e = _power_spectrogram(estimate, n_fft, n_fft // 4).clamp_min(1e-8).sqrt()
        mag_r = _power_spectrogram(reference, n_fft, n_fft // 4).clamp_min(1e-8).sqrt()
        convergence = (mag_r - mag_e).flatten(-2).norm(dim=-1) / mag_r.flatten(-2).norm(dim=-1).clamp_min(1e-8)
        log_mag = (mag_e.log() - mag_r.log()).abs().mean((-1, -2))
        total = total + (convergence + log_mag).cpu()
    return total / len(fft_sizes)


def third_octave_centers(sample_rate: int, fmin: float = 50.0, fmax: float | None = None) -> np.ndarray:
    """Base-2 1/3-octave band centre frequencies ``1000 * 2^(k/3)`` in Hz whose upper edge is below ``fmax``."""
    fmax = min(sample_rate / 2, 20_000.0) if fmax is None else fmax
    ks = np.arange(math.floor(3 * math.log2(fmin / 1000.0)), math.ceil(3 * math.log2(fmax / 1000.0)) + 1)
    centers = 1000.0 * 2.0 ** (ks / 3.0)
    return centers[(centers >= fmin * 2 ** (-1 / 6)) & (centers * 2 ** (1 / 6) <= fmax)]


@numpy_in_numpy_out
def third_octave_band_energy(
    x: torch.Tensor, sample_rate: int, fmin: float = 50.0, fmax: float | None = None, n_fft: int = 4096
) -> torch.Tensor:
    """Energy in each 1/3-octave band, ``(..., bands)``, from the time-averaged power spectrum (Welch, Hann)."""
    x = as_tensor(x)
    power = _power_spectrogram(x, n_fft, n_fft // 4).mean(-1)  # (..., F)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    centers = third_octave_centers(sample_rate, fmin, fmax)
    bands = np.stack([(freqs >= c * 2 ** (-1 / 6)) & (freqs < c * 2 ** (1 / 6)) for c in centers], axis=-1)
    return power @ torch.from_numpy(bands.astype(np.float32)).to(power)


@numpy_in_numpy_out
def third_octave_band_energy_error_db(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    sample_rate: int,
    fmin: float = 50.0,
    fmax: float | None = None,
    floor_db: float = 60.0,
    signed: bool = False,
) -> torch.Tensor:
    """Absolute (``signed=True``: estimate minus reference) level difference in dB per 1/3-octave band, ``(..., bands)``.

    Bands where the reference is more than ``floor_db`` below its loudest band are NaN (their level is noise, not
    signal); aggregate with ``nanmedian``. Band centres: :func:`third_octave_centers`.
    """
    e = third_octave_band_energy(as_tensor(estimate), sample_rate, fmin, fmax).double()
    r = third_octave_band_energy(as_tensor(reference), sample_rate, fmin, fmax).double()
    tiny = 1e-20
    error = 10.0 * torch.log10((e + tiny) / (r + tiny))
    error = error if signed else error.abs()
    quiet = r < r.amax(-1, keepdim=True) * 10.0 ** (-floor_db / 10.0)
    return error.masked_fill(quiet | (r <= tiny), float("nan")).float()
