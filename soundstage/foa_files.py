"""File-level FOA tools behind ``soundstage foa ...``: analyse, preview, convert and rotate FOA files.

They read and write audio files and draw plots, so they sit above the ``foa`` maths package (which imports nothing
but ``soundstage.common``) and may use ``metrics`` for the direction map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from soundstage.common.audio import Silence, check_output_path, load_audio, save_audio
from soundstage.foa import (
    ambix_to_fuma,
    broadband_doa,
    decode_binaural,
    decode_stereo,
    diffuseness,
    fuma_to_ambix,
    rotate_foa,
)
from soundstage.foa.encoding import W
from soundstage.foa.intensity import DEFAULT_N_FFT
from soundstage.metrics.plots import plot_direction_map


def load_foa(path: str | Path, fuma: bool = False, min_samples: int = 1, silence: Silence = "warn",
             ) -> tuple[np.ndarray, int]:
    """Read a 4-channel file as AmbiX ``(4, T)``; ``fuma=True`` converts from FuMa (W, X, Y, Z).

    The file is checked by :func:`load_audio` (``min_samples`` and ``silence`` are its checks); AudioError otherwise.
    """
    audio, sample_rate = load_audio(path, channels=4, min_samples=min_samples, silence=silence)
    return (fuma_to_ambix(audio) if fuma else audio), sample_rate


def analyze_foa_file(path: str | Path, plot: str | Path | None = None) -> dict[str, float]:
    """Broadband direction (degrees), diffuseness and level of a FOA file; optionally save its direction map.

    The file must hold one STFT frame and some sound: the direction of silence is undefined (AudioError).
    """
    if plot is not None:
        check_output_path(plot, (".png",))
    foa, sample_rate = load_foa(path, min_samples=DEFAULT_N_FFT, silence="error")
    azimuth, elevation = broadband_doa(foa)
    result = {
        "seconds": foa.shape[-1] / sample_rate,
        "sample_rate": float(sample_rate),
        "azimuth_deg": float(azimuth),
        "elevation_deg": float(elevation),
        "diffuseness": float(diffuseness(foa)),
        "w_peak": float(np.abs(foa[W]).max()),
    }
    if plot is not None:
        plot_direction_map(foa, plot, title=Path(path).name,
                           labels={"DOA": (result["azimuth_deg"], result["elevation_deg"])})
    return result


def render_preview(path: str | Path, out: str | Path, kind: Literal["binaural", "stereo"] = "binaural") -> Path:
    """Write a 2-channel headphone (binaural) or loudspeaker (stereo) preview of a FOA file, peak-limited to 0.99."""
    check_output_path(out)
    foa, sample_rate = load_foa(path)
    preview = decode_binaural(foa, sample_rate) if kind == "binaural" else decode_stereo(foa)
    peak = float(np.abs(preview).max())
    if peak > 0.99:
        preview = preview * (0.99 / peak)
    save_audio(out, preview, sample_rate)
    return Path(out)


def convert_foa_file(path: str | Path, out: str | Path, to: Literal["ambix", "fuma"]) -> Path:
    """Convert between AmbiX and FuMa channel conventions (the input is read as the other one)."""
    check_output_path(out)
    audio, sample_rate = load_foa(path, fuma=(to == "ambix"))
    return _save_foa(out, ambix_to_fuma(audio) if to == "fuma" else audio, sample_rate)


def rotate_foa_file(path: str | Path, out: str | Path, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> Path:
    """Rotate the scene of a FOA file by yaw/pitch/roll in degrees (see soundstage.foa.rotation)."""
    check_output_path(out)
    foa, sample_rate = load_foa(path)
    return _save_foa(out, rotate_foa(foa, yaw, pitch, roll), sample_rate)


def _save_foa(out: str | Path, foa: np.ndarray, sample_rate: int) -> Path:
    """Write ``(4, T)`` audio at full precision: 32-bit float WAV, else 24-bit PCM (FLAC has no float)."""
    save_audio(out, foa, sample_rate, subtype="FLOAT" if str(out).endswith(".wav") else "PCM_24")
    return Path(out)
