"""The one check of FOA audio handed to a model or a metric: a tensor (B, 4, T) of finite float samples.

The codec, ELSA and the metrics all call :func:`check_foa`, so the same input is accepted or refused everywhere,
with the same message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from soundstage.common.errors import SoundstageError


class FOAInputError(SoundstageError, ValueError):
    """Audio that is not FOA as docs/conventions.md §1 fixes it: wrong type, dtype or shape, empty, NaN/Inf, wrong
    rate."""


def check_foa(audio: Any, sample_rate: int | None = None, expected_rate: int | None = None,
              what: str = "audio") -> torch.Tensor:
    """Return ``(B, 4, T)`` float32 from ``(4, T)`` or ``(B, 4, T)`` float audio (tensor or array), or raise.

    Integer PCM is refused rather than scaled (its full scale is ambiguous); when both ``sample_rate`` and
    ``expected_rate`` are given they must agree. ``what`` names the input in messages (e.g. a file name).
    """
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not isinstance(audio, torch.Tensor):
        raise FOAInputError(f"{what}: expected FOA audio as a tensor or array, got {type(audio).__name__}")
    if not audio.is_floating_point():
        raise FOAInputError(f"{what}: expected float audio in [-1, 1], got dtype {audio.dtype} "
                            "(convert PCM to float, e.g. int16 / 32768)")
    shape = tuple(audio.shape)
    if audio.ndim == 2:
        audio = audio.unsqueeze(0)
    if audio.ndim != 3 or audio.shape[1] != 4:
        channels = shape[-2] if len(shape) >= 2 else 1
        kind = {1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel")
        hint = " (channels last? pass (4, T), i.e. audio.T)" if len(shape) in (2, 3) and shape[-1] == 4 else ""
        raise FOAInputError(f"{what}: got {kind} audio of shape {shape}; expected 4-channel FOA (AmbiX W, Y, Z, X) "
                            f"shaped (4, T) or (B, 4, T){hint}. Encode a mono source with soundstage.foa.encode_mono")
    if audio.shape[-1] == 0:
        raise FOAInputError(f"{what}: empty audio (0 samples)")
    finite = torch.isfinite(audio)
    if not bool(finite.all()):
        raise FOAInputError(f"{what}: {int((~finite).sum())} NaN or Inf samples; expected finite values in [-1, 1]")
    if sample_rate is not None and expected_rate is not None and int(sample_rate) != int(expected_rate):
        raise FOAInputError(f"{what}: audio at {sample_rate} Hz given, but {expected_rate} Hz expected; resample it "
                            "first (soundstage.common.audio.resample)")
    return audio.float()
