"""Audio file I/O and resampling shared by every part.

All arrays are float32 and channel-first: ``(channels, samples)``. FOA files are 4-channel AmbiX (W, Y, Z, X).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from soundstage.common.errors import SoundstageError


class AudioError(SoundstageError, ValueError):
    """A file that cannot be used as audio: unreadable, empty, silent, non-finite or of the wrong shape."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    num_frames: int
    channels: int

def audio_info(path: str | Path) -> AudioInfo:
    """Header facts of an audio file; raises AudioError when the file is not readable audio."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt/unknown files
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = False,
    channels: int | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``(channels, samples)``.

    Args:
        sample_rate: resample to this rate (polyphase, scipy) when given.
        mono: average all channels to one.
        channels: require exactly this many channels (after ``mono``); AudioError otherwise.

    Raises:
        AudioError: unreadable, truncated or empty file, NaN/Inf samples, or the wrong channel count.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    audio = np.ascontiguousarray(data.T)
    if audio.shape[1] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if channels is not None and audio.shape[0] != channels:
        raise AudioError(f"{path}: expected {channels} channels, found {audio.shape[0]}")
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, int(sr)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling along the last axis; float32 out."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    ratio = Fraction(int(target_sr), int(orig_sr)).limit_denominator(1000)
    return resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write ``(channels, samples)`` float audio; the format follows the suffix (.flac or .wav).

    Samples are clipped to [-1, 1] for integer subtypes; use ``subtype="FLOAT"`` with .wav to keep the full range.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), audio.T, int(sample_rate), subtype=subtype, format=path.suffix.lstrip(".").upper())
    tmp.replace(path)  # atomic: a killed writer never leaves a truncated file under the final name
