"""The one STFT helper: a Hann-windowed complex STFT over the last axis of a tensor with any leading shape."""

from __future__ import annotations

import torch


def stft(x: torch.Tensor, n_fft: int, hop: int, center: bool = True) -> torch.Tensor:
    """Complex STFT ``(..., n_fft // 2 + 1, frames)`` of real ``(..., T)`` audio, Hann window of ``n_fft``.

    ``center=True`` pads ``n_fft // 2`` on both sides (reflect), as ``torch.stft`` does, so that frame ``n`` is
    centred on sample ``n * hop``; callers that pad themselves pass ``center=False``.
    """
    lead = x.shape[:-1]
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop, window=window, center=center, return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])
