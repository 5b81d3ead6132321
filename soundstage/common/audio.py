"""Audio file I/O and resampling shared by every part.

All arrays are float32 and channel-first: ``(channels, samples)``. FOA files are 4-channel AmbiX (W, Y, Z, X).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from soundstage.common.errors import SoundstageError


class AudioError(SoundstageError, ValueError):
    """A file that cannot be used as audio: missing, a folder, undecodable, empty or too short, non-finite, silent
    where sound is needed, or of the wrong channel count. The message names the file; ``reason`` is a short tag
    (``unreadable``, ``empty``, ``too_short``, ``non_finite``, ``silent``, ``channels``, ``format``) that reports
    group by."""

    def __init__(self, message: str, reason: str = "bad_audio") -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # keep the reason across worker processes
        return type(self), (str(self), self.reason)


AUDIO_SUFFIXES = (".wav", ".flac")
SILENCE_PEAK = 1e-4  # -80 dBFS: anything quieter is treated as digital silence
Silence = Literal["allow", "warn", "error"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    num_frames: int
    channels: int


def audio_info(path: str | Path) -> AudioInfo:
    """Header facts of an audio file; raises AudioError when the file is not readable audio."""
    file = _existing_file(path)
    try:
        info = sf.info(str(file))
    except Exception as exc:  # soundfile raises several types for corrupt/unknown files
        raise _undecodable(path, exc) from exc
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = False,
    channels: int | None = None,
    min_samples: int = 1,
    silence: Silence = "allow",
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``(channels, samples)``.

    Args:
        sample_rate: resample to this rate (polyphase, scipy) when given.
        mono: average all channels to one.
        channels: require exactly this many channels (after ``mono``); AudioError otherwise.
        min_samples: require at least this many samples (at the file's rate), e.g. one STFT frame for analysis.
        silence: a file whose peak is below SILENCE_PEAK is allowed, logged as a warning, or an error.

    Raises:
        AudioError: each check with its own message naming the file: no such file, a directory, not decodable,
            too short (or empty), NaN/Inf samples, the wrong channel count, silent (``silence="error"``).
    """
    file = _existing_file(path)
    try:
        data, sr = sf.read(str(file), dtype="float32", always_2d=True)
    except Exception as exc:  # as in audio_info
        raise _undecodable(path, exc) from exc
    audio = np.ascontiguousarray(data.T)
    _check_samples(path, audio, int(sr), min_samples, silence)
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if channels is not None and audio.shape[0] != channels:
        raise AudioError(f"{path}: expected {_channels_name(channels)}, found {audio.shape[0]} channel(s)", "channels")
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, int(sr)


def _existing_file(path: str | Path) -> Path:
    """``path`` if it is an existing file; AudioError saying what it is otherwise (soundfile's "System error"
    and "Format not recognised" do not)."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file", "unreadable")
    if not path.is_file():
        raise AudioError(f"{path}: no such file", "unreadable")
    return path


def _undecodable(path: str | Path, exc: Exception) -> AudioError:
    return AudioError(f"{path}: not an audio file soundfile can read ({exc})", "unreadable")


def _check_samples(path: str | Path, audio: np.ndarray, sample_rate: int, min_samples: int,
                   silence: Silence) -> None:
    """Length, finiteness and level of decoded ``(channels, samples)`` audio."""
    count = audio.shape[1]
    if count == 0:
        raise AudioError(f"{path}: empty audio (0 samples)", "empty")
    if count < min_samples:
        raise AudioError(f"{path}: too short: {count} samples ({1000 * count / sample_rate:.1f} ms); "
                         f"at least {min_samples} samples are needed", "too_short")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or Inf samples", "non_finite")
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK and silence != "allow":
        message = f"{path}: silent (peak {peak:.1e}, below -80 dBFS)"
        if silence == "error":
            raise AudioError(f"{message}; there is no sound to analyse", "silent")
        logger.warning(message)


def _channels_name(channels: int) -> str:
    if channels == 4:
        return "4-channel first-order ambisonics (AmbiX W, Y, Z, X)"
    return f"{channels} channel(s)"


def check_output_path(path: str | Path, suffixes: tuple[str, ...] = AUDIO_SUFFIXES) -> Path:
    """``path`` if a file can be written there in one of ``suffixes`` (not a folder); call it before any work."""
    path = Path(path)
    allowed = " or ".join(suffixes)
    if path.suffix.lower() not in suffixes:
        raise AudioError(f"{path}: unsupported output format {path.suffix or '(no suffix)'!r}: use {allowed}", "format")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory; give a file name ending in {allowed}", "format")
    return path


def w_rms(foa: np.ndarray) -> float:
    """RMS of W (channel 0) over the whole ``(4, T)`` clip, in float64: the level the corpus is normalised by."""
    return float(np.sqrt(np.mean(np.square(foa[0], dtype=np.float64))))


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
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), audio.T, int(sample_rate), subtype=subtype, format=path.suffix.lstrip(".").upper())
    tmp.replace(path)  # atomic: a killed writer never leaves a truncated file under the final name
