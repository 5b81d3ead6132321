"""Review sheet for curating a package's sounds (``soundstage data sfx-review``): one row of measurements per member.

A caption must say what is heard, and a file name is often vague ("snd12.wav"), so each audio member gets the numbers
that describe its character: length, level, how much of it is active, brightness (spectral centroid, roll-off),
noisiness (flatness), pitch and its strength, attack and tail, onsets, the dominant rate of level modulation
(speech sits near 4-5 Hz) and a one-line envelope sketch. The catalogue row already written for it, if any, is shown
beside. Nothing here decides; it is what a curator reads next to the file name.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from soundstage.common.audio import AudioError, load_audio, resample

logger = logging.getLogger(__name__)

FRAME_S = 0.02  # analysis frame (s)
ACTIVE_DB = 40.0  # a frame is active within this many dB of the loudest frame
SKETCH_LEVELS = " .:-=+*#"  # envelope sketch characters, quiet to loud (8 levels over 48 dB)
SKETCH_LENGTH = 24
ANALYSIS_RATE = 22050


@dataclass
class MemberSheet:
    """Measurements of one audio member (see the module docstring); ``error`` is set when it could not be read."""

    package: str
    member: str
    seconds: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    peak_db: float = 0.0
    rms_db: float = 0.0
    active_fraction: float = 0.0
    centroid_hz: float = 0.0
    rolloff_hz: float = 0.0
    flatness: float = 0.0
    f0_hz: float = 0.0
    pitch_strength: float = 0.0
    attack_s: float = 0.0
    tail_db: float = 0.0
    onsets: int = 0
    modulation_hz: float = 0.0
    envelope: str = ""
    catalogued: str = ""  # "yes"/"no" from the catalogue, "" when the member is not reviewed yet
    caption: str = ""
    error: str = ""


def _frames(x: np.ndarray, size: int) -> np.ndarray:
    n = max(1, x.shape[0] // size)
    x = np.pad(x, (0, max(0, n * size - x.shape[0])))[: n * size]
    return x.reshape(n, size)


def _pitch(x: np.ndarray, sr: int) -> tuple[float, float]:
    """f0 (Hz) and normalised autocorrelation peak (0..1) of the loudest 0.5 s, searched over 50-2000 Hz."""
    win = min(x.shape[0], int(0.5 * sr))
    if win < int(0.05 * sr):
        return 0.0, 0.0
    cumulative = np.concatenate([[0.0], np.cumsum(x**2)])
    energy = cumulative[win // 8 :] - cumulative[: -(win // 8)]  # moving sum over win / 8 samples
    start = int(np.clip(np.argmax(energy) - win // 2, 0, x.shape[0] - win))
    seg = x[start : start + win] - x[start : start + win].mean()
    spec = np.fft.rfft(seg * np.hanning(win), n=2 * win)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:win]
    if ac[0] <= 0:
        return 0.0, 0.0
    ac = ac / ac[0]
    lo, hi = int(sr / 2000), min(win - 1, int(sr / 50))
    band = ac[lo:hi]
    peaks = np.flatnonzero((band[1:-1] > band[:-2]) & (band[1:-1] >= band[2:])) + 1
    if peaks.size == 0 or not np.all(np.isfinite(band[peaks])) or band[peaks].max() <= 0:
        return 0.0, 0.0  # no periodicity at all
    # the shortest lag close to the best peak: multiples of the period score as high as the period itself
    lag = lo + int(peaks[band[peaks] >= 0.9 * band[peaks].max()][0])
    return float(sr / lag), float(max(0.0, ac[lag]))


def measure(mono: np.ndarray, sr: int) -> dict[str, float | int | str]:
    """The character measurements of a mono clip ``(samples,)`` at rate ``sr`` (keys as in :class:`MemberSheet`)."""
    x = np.asarray(mono, dtype=np.float64)
    size = max(1, int(FRAME_S * sr))
    frames = _frames(x, size)
    power = np.mean(frames**2, axis=1) + 1e-12
    db = 10 * np.log10(power)
    active = db > db.max() - ACTIVE_DB
    spectra = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2 + 1e-20
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    weights = spectra[active]
    total = weights.sum()
    centroid = float((weights.sum(axis=0) @ freqs) / total)
    cumulative = np.cumsum(weights.sum(axis=0)) / total
    rolloff = float(freqs[min(len(freqs) - 1, int(np.searchsorted(cumulative, 0.85)))])
    flatness = np.exp(np.mean(np.log(weights), axis=1)) / np.mean(weights, axis=1)
    f0, strength = _pitch(x, sr)
    peak_frame = int(np.argmax(db))
    rises = np.flatnonzero(np.diff(db, prepend=db.min()) > 9.0)  # a sound that starts at once has its onset too
    onsets = int(np.sum(np.diff(np.concatenate([[-10], rises])) > int(0.1 / FRAME_S)))
    envelope = db - db.mean()
    mod = np.abs(np.fft.rfft(envelope * np.hanning(len(envelope)))) if len(envelope) > 8 else np.zeros(1)
    mod_freqs = np.fft.rfftfreq(len(envelope), FRAME_S) if len(envelope) > 8 else np.zeros(1)
    band = (mod_freqs >= 1.0) & (mod_freqs <= 20.0)
    modulation = float(mod_freqs[band][np.argmax(mod[band])]) if band.any() else 0.0
    sketch_frames = np.array_split(db, min(SKETCH_LENGTH, len(db)))
    sketch = "".join(
        SKETCH_LEVELS[int(np.clip((chunk.max() - db.max() + 48.0) / 48.0 * len(SKETCH_LEVELS), 0, len(SKETCH_LEVELS) - 1))]
        for chunk in sketch_frames
    )
    return {
        "seconds": round(x.shape[0] / sr, 3),
        "peak_db": round(float(20 * np.log10(np.max(np.abs(x)) + 1e-12)), 1),
        "rms_db": round(float(10 * np.log10(np.mean(power[active]))), 1),
        "active_fraction": round(float(active.mean()), 2),
        "centroid_hz": round(centroid),
        "rolloff_hz": round(rolloff),
        "flatness": round(float(np.median(flatness)), 3),
        "f0_hz": round(f0, 1),
        "pitch_strength": round(strength, 2),
        "attack_s": round(peak_frame * FRAME_S, 2),
        "tail_db": round(float(db[-1] - db.max()), 1),
        "onsets": onsets,
        "modulation_hz": round(modulation, 1),
        "envelope": sketch,
    }


def review_members(package: str, members: dict[str, Path], catalogue: dict[str, tuple[bool, str]],
                   progress: bool = True) -> list[MemberSheet]:
    """Measure every member (key -> decodable file); ``catalogue`` maps reviewed keys to (keep, caption)."""
    sheets: list[MemberSheet] = []
    for key, path in tqdm(sorted(members.items()), desc=f"review {package}", unit="file", disable=not progress):
        sheet = MemberSheet(package=package, member=key)
        if key in catalogue:
            keep, caption = catalogue[key]
            sheet.catalogued, sheet.caption = ("yes" if keep else "no"), caption
        try:
            audio, sr = load_audio(path)
            sheet.sample_rate, sheet.channels = sr, audio.shape[0]
            mono = audio.mean(axis=0)
            if sr > ANALYSIS_RATE:
                mono, sr = resample(mono[None], sr, ANALYSIS_RATE)[0], ANALYSIS_RATE
            for name, value in measure(mono, sr).items():
                setattr(sheet, name, value)
        except (AudioError, ValueError, RuntimeError) as exc:
            sheet.error = str(exc)
        sheets.append(sheet)
    return sheets


def write_review(sheets: Sequence[MemberSheet], out_csv: Path) -> None:
    """Write the sheets as CSV (columns = :class:`MemberSheet` fields)."""
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(MemberSheet)])
        writer.writeheader()
        writer.writerows(asdict(s) for s in sheets)
