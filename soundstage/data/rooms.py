"""Shoebox rooms and their first-order ambisonics (FOA) room impulse responses.

A :class:`RoomSpec` is one simulated configuration: a shoebox room, the absorption of its surfaces, a listener
(the FOA microphone, axes aligned with the room: +x = front, +y = left, +z = up) and one source. Its azimuth,
elevation and distance are derived from the two positions, in the conventions of docs/conventions.md.

:func:`simulate_foa_rir` renders the 4-channel AmbiX (W, Y, Z, X; SN3D) response with pyroomacoustics' image-source
method (ISM). The microphone is four coincident capsules: an omni (W) and three *signed* figure-eight patterns
along +y, +z and +x (pyroomacoustics' ``CardioidFamily`` with ``p=0``: gain ``d . r``, unit gain on axis), so the
direct path is encoded exactly as ``(1, sin(az)cos(el), sin(el), cos(az)cos(el))`` times the omni response.
ISM runs up to a bounded order; when the room needs a longer response than that order covers, an incoherent,
isotropic diffuse tail (independent noise per channel, Y/Z/X at 1/sqrt(3) of W for SN3D) decaying at the target
T30 is cross-faded in. The labels stored with a response are *measured* on it: T30 (Schroeder backward
integration on W), direct-to-reverberant ratio and the direct path's direction (a check of the encoding).

:class:`RirBank` caches N responses on disk (``rir_bank/``: one FLAC per response + ``bank.jsonl``), builds the
missing ones in parallel, and is what corpus spatialisation convolves clips with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from soundstage.common.errors import UsageError
from soundstage.foa import great_circle_deg, wrap_degrees

from .manifest import ATTRIBUTE_RANGES, SPLITS
from .settings import SettingsError, record_settings, write_json_atomic
from .workers import imap_unordered

logger = logging.getLogger(__name__)

SPEED_OF_SOUND_M_S = 343.0  # pyroomacoustics' default; used for absorption and ISM order choices
WALL_CLEARANCE_M = 0.3  # a source keeps at least this far from every surface
LISTENER_CLEARANCE_M = 1.0  # the listener keeps this far from the side walls when the room allows it
LISTENER_HEIGHT_M = (1.0, 1.8)  # seated to standing ear height
ASPECT_RATIO = (1.0, 2.0)  # long side / short side of the floor
MAX_ABSORPTION = 0.85  # beyond this the ISM decay is too short and irregular to carry a T30 target
MAX_CALIBRATED_ABSORPTION = 0.95
DEFAULT_MAX_ISM_ORDER = 40  # ~0.2 s of compute; larger orders grow as order**3
SABINE_CONSTANT = 24.0 * math.log(10.0) / SPEED_OF_SOUND_M_S  # 0.161 s/m
# Sample rates a response can be simulated at. Below 8 kHz pyroomacoustics' fractional-delay filter smears the direct
# path over the windows its labels are measured in (direction error 14 deg and DRR off by up to 3 dB at 2 kHz, 0.9 deg
# at 4 kHz, 0.3 deg at 8 kHz; under ~1 kHz the simulation itself fails); above 96 kHz (the highest studio rate)
# simulation, storage and convolution grow with no use for generation.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 96000


# --------------------------------------------------------------------------------------------------------------
# Room specification and sampling
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomSpec:
    """One room configuration. Lengths in metres, times in seconds; positions are (x, y, z) in room coordinates.

    The listener's FOA axes are the room's: +x = front (azimuth 0), +y = left (azimuth +90), +z = up.
    """

    room_dims_m: tuple[float, float, float]  # (length along x, width along y, height along z)
    absorption: float  # energy absorption coefficient of every surface, in (0, 1)
    listener_m: tuple[float, float, float]
    source_m: tuple[float, float, float]
    target_t30_s: float  # the T30 the absorption was chosen for; the label is the T30 measured on the response

    @property
    def offset_m(self) -> np.ndarray:
        """Source minus listener, ``(3,)`` metres."""
        return np.asarray(self.source_m, dtype=np.float64) - np.asarray(self.listener_m, dtype=np.float64)

    @property
    def distance_m(self) -> float:
        return float(np.linalg.norm(self.offset_m))

    @property
    def azimuth_deg(self) -> float:
        x, y, _ = self.offset_m
        return wrap_degrees(math.degrees(math.atan2(y, x)))

    @property
    def elevation_deg(self) -> float:
        x, y, z = self.offset_m
        return math.degrees(math.atan2(z, math.hypot(x, y)))

    @property
    def floor_area_m2(self) -> float:
        return float(self.room_dims_m[0] * self.room_dims_m[1])

    @property
    def volume_m3(self) -> float:
        return float(np.prod(self.room_dims_m))

    @property
    def surface_m2(self) -> float:
        lx, ly, lz = self.room_dims_m
        return float(2.0 * (lx * ly + lx * lz + ly * lz))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the derived labels."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        out.update(
            azimuth_deg=self.azimuth_deg,
            elevation_deg=self.elevation_deg,
            distance_m=self.distance_m,
            floor_area_m2=self.floor_area_m2,
        )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomSpec:
        return cls(
            room_dims_m=tuple(float(v) for v in data["room_dims_m"]),  # type: ignore[arg-type]
            absorption=float(data["absorption"]),
            listener_m=tuple(float(v) for v in data["listener_m"]),  # type: ignore[arg-type]
            source_m=tuple(float(v) for v in data["source_m"]),  # type: ignore[arg-type]
            target_t30_s=float(data["target_t30_s"]),
        )


def eyring_absorption(t30_s: float, volume_m3: float, surface_m2: float) -> float:
    """Uniform energy absorption coefficient giving reverberation time ``t30_s`` by Eyring's formula.

    Eyring (rather than Sabine) because it stays below 1 for dead rooms and follows the image-source decay better.
    """
    return float(1.0 - math.exp(-SABINE_CONSTANT * volume_m3 / (surface_m2 * t30_s)))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sample_dims(rng: np.random.Generator) -> tuple[float, float, float]:
    """Floor area log-uniform over the range in docs/conventions.md; taller ceilings in larger rooms (2.4 m to ~5 m)."""
    area_low, area_high = ATTRIBUTE_RANGES["floor_area_m2"]
    area = _log_uniform(rng, area_low, area_high)
    aspect = float(rng.uniform(*ASPECT_RATIO))
    long_side, short_side = math.sqrt(area * aspect), math.sqrt(area / aspect)
    size_fraction = math.log(area / area_low) / math.log(area_high / area_low)
    height = float(rng.uniform(2.4, 3.0) + rng.uniform(0.0, 2.0) * size_fraction)
    lx, ly = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    return (lx, ly, height)


def _sample_listener(rng: np.random.Generator, dims: tuple[float, float, float]) -> np.ndarray:
    position = []
    for length in dims[:2]:
        margin = min(LISTENER_CLEARANCE_M, 0.5 * length - 0.05)
        position.append(rng.uniform(margin, length - margin))
    top = min(LISTENER_HEIGHT_M[1], dims[2] - WALL_CLEARANCE_M)
    position.append(rng.uniform(LISTENER_HEIGHT_M[0], top))
    return np.asarray(position, dtype=np.float64)


def _sample_offset(rng: np.random.Generator) -> np.ndarray:
    """Source offset from the listener: azimuth uniform, elevation uniform on the sphere band, distance uniform."""
    el_low, el_high = ATTRIBUTE_RANGES["elevation_deg"]
    d_low, d_high = ATTRIBUTE_RANGES["distance_m"]
    azimuth = rng.uniform(-math.pi, math.pi)
    sin_el = rng.uniform(math.sin(math.radians(el_low)), math.sin(math.radians(el_high)))
    distance = rng.uniform(d_low, d_high)
    cos_el = math.sqrt(1.0 - sin_el**2)
    return distance * np.array([math.cos(azimuth) * cos_el, math.sin(azimuth) * cos_el, sin_el])


def _inside(position: np.ndarray, dims: Sequence[float], clearance: float) -> bool:
    return bool(np.all(position >= clearance) and np.all(position <= np.asarray(dims) - clearance))


def sample_room(rng: np.random.Generator, max_tries: int = 10_000) -> RoomSpec:
    """Draw one room configuration with ELSA-like statistics (docs/conventions.md).

    Floor area and T30 are log-uniform over [13.3, 277.4] m2 and [0.14, 2.67] s; a (room, T30) pair whose Eyring
    absorption would exceed ``MAX_ABSORPTION`` is redrawn (large rooms are rarely very dead). The source direction is
    uniform on the sphere band of elevations [-47.5, 48.7] deg and its distance uniform in [0.5, 4] m; positions that
    leave the room (with ``WALL_CLEARANCE_M``) are rejected, so far and steep sources are rarer in small, low rooms.
    """
    t30_low, t30_high = ATTRIBUTE_RANGES["t30_s"]
    for _ in range(max_tries):
        dims = _sample_dims(rng)
        t30 = _log_uniform(rng, t30_low, t30_high)
        volume = dims[0] * dims[1] * dims[2]
        surface = 2.0 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
        absorption = eyring_absorption(t30, volume, surface)
        if absorption > MAX_ABSORPTION:
            continue
        for _ in range(20):
            listener = _sample_listener(rng, dims)
            for _ in range(50):
                source = listener + _sample_offset(rng)
                if _inside(source, dims, WALL_CLEARANCE_M):
                    return RoomSpec(
                        room_dims_m=tuple(round(v, 4) for v in dims),  # type: ignore[arg-type]
                        absorption=absorption,
                        listener_m=tuple(float(v) for v in listener),  # type: ignore[arg-type]
                        source_m=tuple(float(v) for v in source),  # type: ignore[arg-type]
                        target_t30_s=t30,
                    )
    raise RuntimeError(f"could not place a source after {max_tries} rooms; the sampling ranges are inconsistent")


# --------------------------------------------------------------------------------------------------------------
# Measurements on a response
# --------------------------------------------------------------------------------------------------------------


def schroeder_decay_db(impulse_response: np.ndarray) -> np.ndarray:
    """Energy decay curve ``(N,)`` in dB (0 dB at t=0) of a ``(N,)`` response, by Schroeder backward integration."""
    energy = np.cumsum(np.square(impulse_response.astype(np.float64))[::-1])[::-1]
    return 10.0 * np.log10(np.maximum(energy / max(energy[0], 1e-300), 1e-30))


def decay_dynamic_range_db(impulse_response: np.ndarray, sample_rate: int) -> float:
    """Loudest 10 ms frame over the mean of the last 10 % of frames, in dB: how far the decay can be followed."""
    frame = max(1, int(0.01 * sample_rate))
    n_frames = impulse_response.shape[0] // frame
    if n_frames < 10:
        raise ValueError("the response is too short (< 100 ms) to measure a reverberation time")
    energy = np.mean(impulse_response[: n_frames * frame].astype(np.float64).reshape(n_frames, frame) ** 2, axis=1)
    floor = max(float(np.mean(energy[-max(1, n_frames // 10) :])), 1e-30)
    return 10.0 * math.log10(max(float(energy.max()), 1e-30) / floor)


def measure_t30(impulse_response: np.ndarray, sample_rate: int) -> tuple[float, str]:
    """Reverberation time in seconds from a ``(N,)`` response (use the W channel).

    A least-squares line through the Schroeder decay curve from -5 to -35 dB, extrapolated to 60 dB (T30). As in
    ISO 3382-1, the bottom of the fitted range must lie 10 dB above the end of the response
    (:func:`decay_dynamic_range_db`), so with less than 45 dB of dynamic range the -5 to -25 dB range (T20) is used,
    then -5 to -15 dB (T10).

    Returns:
        ``(seconds, method)`` with method one of ``"T30"``, ``"T20"``, ``"T10"``.

    Raises:
        ValueError: less than 25 dB of dynamic range.
    """
    dynamic_range = decay_dynamic_range_db(impulse_response, sample_rate)
    for method, low in (("T30", -35.0), ("T20", -25.0), ("T10", -15.0)):
        if dynamic_range >= -low + 10.0:
            break
    else:
        raise ValueError(f"only {dynamic_range:.1f} dB of decay; cannot measure a reverberation time")
    decay = schroeder_decay_db(impulse_response)
    mask = (decay <= -5.0) & (decay >= low)
    times = np.nonzero(mask)[0] / sample_rate
    slope, _ = np.polyfit(times, decay[mask], 1)  # dB per second, negative
    return float(-60.0 / slope), method


def direct_path_index(foa_rir: np.ndarray) -> int:
    """Sample index of the direct path: the first sample whose |W| is within 6 dB of the global peak.

    The direct sound is the earliest strong arrival; a reflection can exceed it only off-axis in odd geometries,
    so taking "first near-peak" instead of "peak" keeps the index on the direct path.
    """
    magnitude = np.abs(foa_rir[0])
    return int(np.argmax(magnitude >= 0.5 * magnitude.max()))


def direct_path_doa(foa_rir: np.ndarray, sample_rate: int, half_window_ms: float = 0.25) -> tuple[float, float, int]:
    """Direction of the direct path from the time-domain intensity ``sum W * (X, Y, Z)`` in a short window.

    Args:
        foa_rir: ``(4, N)`` AmbiX response.
        half_window_ms: half-width of the window around the direct-path peak; short, so that early reflections
            (>= ~0.5 ms later for a source 0.3 m from a wall) stay out.

    Returns:
        ``(azimuth_deg, elevation_deg, peak_index)``.
    """
    peak = direct_path_index(foa_rir)
    half = max(1, round(half_window_ms * 1e-3 * sample_rate))
    segment = foa_rir[:, max(0, peak - half) : peak + half + 1].astype(np.float64)
    w, y, z, x = segment
    intensity = np.array([np.dot(w, x), np.dot(w, y), np.dot(w, z)])
    azimuth = wrap_degrees(math.degrees(math.atan2(intensity[1], intensity[0])))
    elevation = math.degrees(math.atan2(intensity[2], math.hypot(intensity[0], intensity[1])))
    return azimuth, elevation, peak


def measure_drr(foa_rir: np.ndarray, sample_rate: int, direct_index: int, half_window_ms: float = 2.5) -> float:
    """Direct-to-reverberant ratio in dB on W: energy within +-2.5 ms of the direct path over the rest."""
    w = foa_rir[0].astype(np.float64)
    half = round(half_window_ms * 1e-3 * sample_rate)
    lo, hi = max(0, direct_index - half), direct_index + half + 1
    direct = float(np.sum(w[lo:hi] ** 2))
    reverberant = float(np.sum(w[:lo] ** 2) + np.sum(w[hi:] ** 2))
    return 10.0 * math.log10(max(direct, 1e-30) / max(reverberant, 1e-30))


# --------------------------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------------------------


@dataclass
class FOARir:
    """A simulated FOA room response and the labels measured on it.

    ``audio`` is ``(4, N)`` float32 AmbiX (W, Y, Z, X; SN3D) at ``sample_rate``; 1.0 on W is the level of a source at
    1 m in free field (pyroomacoustics' 1/r spreading, without the 1/(4 pi) factor).
    """

    audio: np.ndarray
    sample_rate: int
    spec: RoomSpec
    t30_s: float  # measured on W
    t30_method: str  # "T30", "T20" or "T10"
    drr_db: float
    direct_index: int
    direct_azimuth_deg: float
    direct_elevation_deg: float
    ism_order: int
    tail_start_s: float | None  # where the diffuse tail was spliced in; None when ISM covers the whole response

    @property
    def direct_error_deg(self) -> float:
        """Great-circle angle between the measured direct-path direction and the geometric label."""
        return great_circle_deg(
            self.direct_azimuth_deg, self.direct_elevation_deg, self.spec.azimuth_deg, self.spec.elevation_deg
        )

    def labels(self) -> dict[str, Any]:
        """JSON-ready labels: geometry, measured acoustics and the direct-path check."""
        out = self.spec.to_dict()
        out.update(
            sample_rate=self.sample_rate,
            num_frames=int(self.audio.shape[1]),
            t30_s=self.t30_s,
            t30_method=self.t30_method,
            drr_db=self.drr_db,
            direct_index=self.direct_index,
            direct_azimuth_deg=self.direct_azimuth_deg,
            direct_elevation_deg=self.direct_elevation_deg,
            direct_error_deg=self.direct_error_deg,
            ism_order=self.ism_order,
            tail_start_s=self.tail_start_s,
        )
        return out


@contextlib.contextmanager
def _pra_single_thread() -> Iterator[None]:
    """pyroomacoustics sums images over threads; one thread keeps responses bit-identical from run to run."""
    import pyroomacoustics as pra

    previous = pra.constants.get("num_threads")
    pra.constants.set("num_threads", 1)
    try:
        yield
    finally:
        pra.constants.set("num_threads", previous)


def _foa_capsules() -> list[Any]:
    """Omni + signed figure-eights along +y, +z, +x: ACN order W, Y, Z, X with SN3D gains."""
    from pyroomacoustics.directivities import CardioidFamily

    return [
        CardioidFamily([1.0, 0.0, 0.0], p=1.0),
        CardioidFamily([0.0, 1.0, 0.0], p=0.0),
        CardioidFamily([0.0, 0.0, 1.0], p=0.0),
        CardioidFamily([1.0, 0.0, 0.0], p=0.0),
    ]


def _order_radius_m(dims: Sequence[float]) -> float:
    """Radius covered per ISM order: the smallest inscribed-sphere step of the image lattice (as pyroomacoustics)."""
    pairs = ((dims[0], dims[1]), (dims[0], dims[2]), (dims[1], dims[2]))
    return min(a * b / math.hypot(a, b) for a, b in pairs)


def _run_ism(spec: RoomSpec, sample_rate: int, order: int, absorption: float) -> np.ndarray:
    """(4, N) float64 ISM response."""
    import pyroomacoustics as pra

    room = pra.ShoeBox(list(spec.room_dims_m), fs=sample_rate, materials=pra.Material(absorption), max_order=order)
    room.add_source(list(spec.source_m))
    mics = np.tile(np.asarray(spec.listener_m, dtype=np.float64)[:, None], (1, 4))
    room.add_microphone_array(mics, directivity=_foa_capsules())
    with _pra_single_thread():
        room.compute_rir()
    length = max(len(room.rir[m][0]) for m in range(4))
    out = np.zeros((4, length), dtype=np.float64)
    for m in range(4):
        out[m, : len(room.rir[m][0])] = room.rir[m][0]
    return out


def _fit_envelope(w: np.ndarray, sample_rate: int, start: int, stop: int) -> tuple[float, float]:
    """Least-squares line through log10 mean-square energy of 10 ms frames in [start, stop): (intercept, slope/s)."""
    frame = max(1, int(0.01 * sample_rate))
    n_frames = (stop - start) // frame
    if n_frames < 2:
        raise ValueError("too short a span to fit the decay envelope")
    frames = w[start : start + n_frames * frame].reshape(n_frames, frame)
    level = np.log10(np.mean(frames**2, axis=1) + 1e-30)
    centres = (start + frame * (np.arange(n_frames) + 0.5)) / sample_rate
    slope, intercept = np.polyfit(centres, level, 1)
    return float(intercept), float(slope)


def _diffuse_tail(
    rng: np.random.Generator, length: int, sample_rate: int, start_level: float, t30_s: float
) -> np.ndarray:
    """(4, length) isotropic diffuse noise with W mean square ``start_level`` at sample 0, decaying by 60 dB/T30.

    Independent channels, with Y, Z, X at 1/sqrt(3) of W: the SN3D energy split of an isotropic field, whose mean
    active intensity is zero (it carries no direction).
    """
    t = np.arange(length) / sample_rate
    envelope = math.sqrt(start_level) * 10.0 ** (-3.0 * t / t30_s)
    noise = rng.standard_normal((4, length))
    noise[1:] /= math.sqrt(3.0)
    return noise * envelope


def _splice_tail(
    ism: np.ndarray, spec: RoomSpec, sample_rate: int, complete_s: float, end_s: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Cross-fade a diffuse tail into a truncated ISM response; returns ``((4, N), splice time in s)``."""
    splice = int(0.9 * complete_s * sample_rate)
    fade = max(8, int(min(0.05, 0.2 * complete_s) * sample_rate))
    direct = int((spec.distance_m / SPEED_OF_SOUND_M_S + 0.005) * sample_rate)
    fit_start = max(direct, splice // 2)
    intercept, slope = _fit_envelope(ism[0], sample_rate, fit_start, splice)
    fade_start = splice - fade // 2
    level = 10.0 ** (intercept + slope * fade_start / sample_rate)
    total = int(end_s * sample_rate)
    tail = _diffuse_tail(rng, total - fade_start, sample_rate, level, spec.target_t30_s)
    out = np.zeros((4, total), dtype=np.float64)
    head = min(fade_start + fade, ism.shape[1])
    out[:, :head] = ism[:, :head]
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)  # power-complementary for incoherent signals
    out[:, fade_start : fade_start + fade] *= np.sqrt(1.0 - ramp**2)
    tail[:, :fade] *= ramp
    out[:, fade_start:] += tail
    return out, fade_start / sample_rate


def _fade_out(audio: np.ndarray, length: int, sample_rate: int, fade_s: float = 0.005) -> np.ndarray:
    out = audio[:, :length].copy()
    fade = min(length, max(1, int(fade_s * sample_rate)))
    out[:, length - fade :] *= np.linspace(1.0, 0.0, fade)
    return out


def _render(
    spec: RoomSpec, sample_rate: int, seed: int | Sequence[int], max_ism_order: int
) -> tuple[np.ndarray, int, float | None]:
    """(4, N) float32 response, the ISM order used and the tail's splice time (None without a tail)."""
    dims = spec.room_dims_m
    diagonal = math.sqrt(sum(v * v for v in dims))
    end_s = spec.distance_m / SPEED_OF_SOUND_M_S + 1.1 * spec.target_t30_s
    per_order = _order_radius_m(dims)
    needed_order = math.ceil((SPEED_OF_SOUND_M_S * end_s + diagonal) / per_order)
    order = min(needed_order, max_ism_order)
    ism = _run_ism(spec, sample_rate, order, spec.absorption)
    if order >= needed_order:
        return _fade_out(ism, min(ism.shape[1], int(end_s * sample_rate)), sample_rate).astype(np.float32), order, None
    complete_s = (order * per_order - diagonal) / SPEED_OF_SOUND_M_S
    audio, tail_start = _splice_tail(ism, spec, sample_rate, complete_s, end_s, np.random.default_rng(seed))
    return audio.astype(np.float32), order, tail_start


def _recalibrate(spec: RoomSpec, t30_ratio: float) -> RoomSpec:
    """Scale the absorption exponent by measured/target T30 (Eyring: T30 is proportional to 1 / -ln(1 - a))."""
    exponent = -math.log(1.0 - spec.absorption) * t30_ratio
    absorption = min(MAX_CALIBRATED_ABSORPTION, 1.0 - math.exp(-exponent))
    return dataclasses.replace(spec, absorption=absorption)


def simulate_foa_rir(
    spec: RoomSpec,
    sample_rate: int,
    seed: int | Sequence[int] = 0,
    max_ism_order: int = DEFAULT_MAX_ISM_ORDER,
    calibration_steps: int = 4,
    calibration_tolerance: float = 0.05,
) -> FOARir:
    """Render the FOA response of a room configuration and measure its labels.

    The response lasts until the target decay has fallen ~66 dB (1.1 x T30 after the direct sound). ISM covers
    it when an order <= ``max_ism_order`` suffices; otherwise ISM runs at ``max_ism_order`` and a diffuse tail,
    level-matched to the ISM decay and decaying at the target T30, takes over where the image lattice is still
    complete (power-complementary cross-fade).

    Args:
        spec: the room configuration.
        sample_rate: Hz.
        seed: seeds the diffuse tail's noise (int or tuple of ints for ``numpy.random.default_rng``).
        max_ism_order: bound on the image-source order (compute grows as order**3).
        calibration_steps: the image-source decay of a shoebox is slower than Eyring's prediction in dead rooms;
            up to this many re-renders rescale the absorption by measured/target T30 (the returned ``spec`` holds
            the absorption used; the render closest to the target is returned).
        calibration_tolerance: stop once measured T30 is within this relative error of the target.

    Returns:
        :class:`FOARir` with ``audio`` ``(4, N)`` float32 and measured T30, DRR and direct-path direction.
    """
    audio, order, tail_start = _render(spec, sample_rate, seed, max_ism_order)
    t30, method = measure_t30(audio[0], sample_rate)
    best = (abs(math.log(t30 / spec.target_t30_s)), spec, audio, order, tail_start, t30, method)
    for _ in range(calibration_steps):
        ratio = t30 / spec.target_t30_s
        if abs(ratio - 1.0) <= calibration_tolerance:
            break
        spec = _recalibrate(spec, ratio)
        audio, order, tail_start = _render(spec, sample_rate, seed, max_ism_order)
        t30, method = measure_t30(audio[0], sample_rate)
        if abs(math.log(t30 / spec.target_t30_s)) < best[0]:
            best = (abs(math.log(t30 / spec.target_t30_s)), spec, audio, order, tail_start, t30, method)
    # Sparse, dead rooms with a distinct late echo do not decay exponentially; keep the closest render.
    _, spec, audio, order, tail_start, t30, method = best
    azimuth, elevation, peak = direct_path_doa(audio, sample_rate)
    return FOARir(
        audio=audio,
        sample_rate=int(sample_rate),
        spec=spec,
        t30_s=t30,
        t30_method=method,
        drr_db=measure_drr(audio, sample_rate, peak),
        direct_index=peak,
        direct_azimuth_deg=azimuth,
        direct_elevation_deg=elevation,
        ism_order=order,
        tail_start_s=tail_start,
    )


# --------------------------------------------------------------------------------------------------------------
# Response bank
# --------------------------------------------------------------------------------------------------------------

BANK_FORMAT = 1
BANK_CONFIG_NAME = "bank.json"
BANK_RECORDS_NAME = "bank.jsonl"
SPLIT_SHARES = {"train": 0.8, "valid": 0.1, "test": 0.1}
_FLAC_PEAK = 0.99  # responses are stored peak-normalised to this, with the scale in their labels


class BankError(SettingsError):
    """A response bank folder that does not match the requested configuration or is damaged."""


def check_sample_rate(sample_rate: int) -> None:
    """Refuse a sample rate outside ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` Hz (the reasons are at those constants).

    Raises:
        UsageError: naming the rate and the range.
    """
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise UsageError(
            f"sample rate {sample_rate} Hz is outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz that the room "
            "simulation supports (below it the responses' direction and DRR labels are wrong)"
        )


@dataclass(frozen=True)
class BankConfig:
    """What determines a bank's content: responses are a pure function of (seed, index) and these settings."""

    size: int
    sample_rate: int
    seed: int = 0
    max_ism_order: int = DEFAULT_MAX_ISM_ORDER
    format: int = BANK_FORMAT

    def __post_init__(self) -> None:
        if self.size < len(SPLITS):
            raise UsageError(f"a bank needs at least {len(SPLITS)} responses (one room per split), got {self.size}")
        check_sample_rate(self.sample_rate)


def room_split_assignment(size: int, seed: int) -> list[str]:
    """Split of each bank room: a seeded permutation, ~80/10/10 with at least one room per split."""
    n_valid = max(1, round(SPLIT_SHARES["valid"] * size))
    n_test = max(1, round(SPLIT_SHARES["test"] * size))
    order = np.random.default_rng([seed, 0x5EED]).permutation(size)
    splits = ["train"] * size
    for rank, index in enumerate(order):
        if rank < n_valid:
            splits[index] = "valid"
        elif rank < n_valid + n_test:
            splits[index] = "test"
    return splits


def _room_id(seed: int, index: int) -> str:
    digest = hashlib.sha1(f"{seed}:{index}".encode()).hexdigest()[:6]
    return f"room{index:05d}-{digest}"


def _build_one(folder: str, config: BankConfig, index: int, split: str) -> dict[str, Any]:
    """Simulate response ``index`` and write its FLAC + JSON atomically; returns its labels (runs in workers)."""
    rng = np.random.default_rng([config.seed, index])
    t30_low, t30_high = ATTRIBUTE_RANGES["t30_s"]
    for attempt in range(100):
        spec = sample_room(rng)
        rir = simulate_foa_rir(
            spec, config.sample_rate, seed=[config.seed, index, attempt], max_ism_order=config.max_ism_order
        )
        # The label is the measured T30; redraw the rare room whose measurement leaves the range in docs/conventions.md.
        if t30_low <= rir.t30_s <= t30_high:
            break
        logger.debug("bank %d: measured T30 %.3f s outside [%g, %g]; redrawing", index, rir.t30_s, t30_low, t30_high)
    name = f"rir_{index:05d}"
    responses = Path(folder) / "responses"
    responses.mkdir(parents=True, exist_ok=True)
    scale = float(np.abs(rir.audio).max()) / _FLAC_PEAK
    tmp_audio = responses / f"{name}.part.flac"
    sf.write(str(tmp_audio), (rir.audio / scale).T, config.sample_rate, subtype="PCM_24", format="FLAC")
    tmp_audio.replace(responses / f"{name}.flac")
    record = {"index": index, "room_id": _room_id(config.seed, index), "split": split,
              "path": f"responses/{name}.flac", "flac_scale": scale, "tail_seed": [config.seed, index, attempt],
              **rir.labels()}
    write_json_atomic(responses / f"{name}.json", record)  # written last: its presence marks the response as complete
    return record


class RirBank:
    """A cached set of simulated FOA room responses, one room (and one source/listener placement) per entry.

    Layout of ``folder``::

        bank.json                 configuration (size, sample_rate, seed, max_ism_order, format)
        bank.jsonl                one JSON object per response: labels, room_id, split, path, flac_scale
        responses/rir_00000.flac  4-channel AmbiX, peak-normalised PCM_24 (multiply by flac_scale)
        responses/rir_00000.json  the same record, written when the response is complete

    Responses depend only on ``(seed, index)`` and the configuration, so an interrupted build resumes where it
    stopped and parallel builds write identical files. Each room belongs to one split (:func:`room_split_assignment`).
    """

    def __init__(self, folder: str | Path, config: BankConfig) -> None:
        self.folder = Path(folder)
        self.config = config
        self._records: list[dict[str, Any]] | None = None
        self._check_config()

    @classmethod
    def open(cls, folder: str | Path) -> RirBank:
        """Open an existing bank (built or partly built) with the configuration stored in it."""
        path = Path(folder) / BANK_CONFIG_NAME
        if not path.exists():
            raise BankError(f"{folder}: not a response bank (no {BANK_CONFIG_NAME})")
        data = json.loads(path.read_text())
        return cls(folder, BankConfig(**data))

    def _check_config(self) -> None:
        record_settings(self.folder / BANK_CONFIG_NAME, asdict(self.config), "a response bank", error=BankError)

    def __len__(self) -> int:
        return self.config.size

    def missing(self) -> list[int]:
        """Indices whose response is not on disk yet."""
        responses = self.folder / "responses"
        return [i for i in range(self.config.size) if not (responses / f"rir_{i:05d}.json").exists()]

    def build(self, workers: int = 1, progress: bool = True) -> RirBank:
        """Simulate the missing responses (in ``workers`` processes) and write ``bank.jsonl``; returns self."""
        todo = self.missing()
        splits = room_split_assignment(self.config.size, self.config.seed)
        if todo:
            logger.info("simulating %d of %d room responses in %s", len(todo), self.config.size, self.folder)
            jobs = [(str(self.folder), self.config, index, splits[index]) for index in todo]
            with tqdm(total=len(todo), desc="room responses", unit="rir", disable=not progress) as bar:
                for _ in imap_unordered(_build_one, jobs, workers):
                    bar.update()
        self._write_records()
        return self

    def _write_records(self) -> None:
        responses = self.folder / "responses"
        records = [json.loads((responses / f"rir_{i:05d}.json").read_text()) for i in range(self.config.size)]
        tmp = self.folder / (BANK_RECORDS_NAME + ".part")
        with tmp.open("w") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        tmp.replace(self.folder / BANK_RECORDS_NAME)
        self._records = records

    @property
    def records(self) -> list[dict[str, Any]]:
        """One label dict per response (requires a complete bank: call :meth:`build` first)."""
        if self._records is None:
            path = self.folder / BANK_RECORDS_NAME
            if not path.exists() or self.missing():
                raise BankError(f"{self.folder}: the bank is incomplete; call build() first")
            self._records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return self._records

    def split_indices(self, split: str) -> list[int]:
        """Indices of the responses (rooms) that belong to ``split``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return [r["index"] for r in self.records if r["split"] == split]

    def load(self, index: int) -> np.ndarray:
        """Response ``index`` as ``(4, N)`` float32 AmbiX at the bank's sample rate."""
        record = self.records[index]
        data, sample_rate = sf.read(str(self.folder / record["path"]), dtype="float32", always_2d=True)
        if sample_rate != self.config.sample_rate or data.shape[1] != 4:
            raise BankError(f"{self.folder / record['path']}: expected 4 channels at {self.config.sample_rate} Hz")
        return np.ascontiguousarray(data.T) * np.float32(record["flac_scale"])
