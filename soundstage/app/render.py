"""Pictures of the app: the clickable top view of the listener, the direction map and the W spectrogram.

The top view is an azimuthal projection centred on the zenith, seen from above with the listener facing the top of
the picture (so their left is on the left): the centre is straight up (+90 deg), the bold ring is ear level (0 deg)
and the rim straight down (-90 deg); the angle around the centre is the azimuth. :func:`pixel_to_direction` and
:func:`direction_to_pixel` convert between its pixels and (azimuth, elevation) in degrees.

Plots use matplotlib's object API (no pyplot), so that generations running in parallel threads draw safely.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from soundstage.foa import direction_vector, foa_stft, intensity_from_stft, wrap_degrees
from soundstage.foa.encoding import W

PICKER_SIZE = 400  # pixels, square
PX_PER_DEG = 0.95  # radius per degree below the zenith: the rim (-90 deg) is 171 px from the centre
PICK_STEP_DEG = 5.0  # a click snaps to this grid; the sliders fine-tune
MAP_GRID = (36, 19)  # azimuth x elevation points of the direction map (10-degree steps, drawn interpolated)

# name -> (marker, colour) of the points a direction map marks
MARKERS = {"requested": ("o", "white"), "start": ("o", "white"), "end": ("s", "white"),
           "measured": ("x", "cyan"), "measured start": ("x", "cyan"), "measured end": ("X", "cyan"),
           "ELSA": ("+", "lime")}


def direction_to_pixel(azimuth_deg: float, elevation_deg: float, size: int = PICKER_SIZE) -> tuple[float, float]:
    """(x, y) pixel of a direction in the top view (y grows downwards)."""
    radius = (90.0 - elevation_deg) * PX_PER_DEG * size / PICKER_SIZE
    azimuth = math.radians(azimuth_deg)
    return size / 2 - radius * math.sin(azimuth), size / 2 - radius * math.cos(azimuth)


def pixel_to_direction(x: float, y: float, size: int = PICKER_SIZE) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of a clicked pixel, snapped to ``PICK_STEP_DEG``; outside the rim is the rim.

    Azimuth is wrapped to [-180, 180); the zenith (centre) is given azimuth 0.
    """
    dx, dy = x - size / 2, y - size / 2
    radius = math.hypot(dx, dy) / (PX_PER_DEG * size / PICKER_SIZE)
    elevation = max(-90.0, 90.0 - radius)
    azimuth = math.degrees(math.atan2(-dx, -dy)) if radius > 0 else 0.0

    def snap(angle: float) -> float:
        return PICK_STEP_DEG * round(angle / PICK_STEP_DEG) + 0.0  # + 0.0: no -0.0

    return float(wrap_degrees(snap(azimuth))), snap(elevation)


def draw_picker(points: dict[str, tuple[float, float]], path: Sequence[tuple[float, float]] = (),
                size: int = PICKER_SIZE) -> np.ndarray:
    """The top view ``(size, size, 3)`` uint8 with the listener's head, rings and labelled ``points`` (name ->
    (azimuth, elevation) degrees; the first one large); ``path`` is a line of directions (a moving source)."""
    image = Image.new("RGB", (size, size), (248, 248, 250))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, size // 28))
    c, scale = size / 2, PX_PER_DEG * size / PICKER_SIZE

    def ring(elevation: float, **style: object) -> None:
        r = (90.0 - elevation) * scale
        draw.ellipse((c - r, c - r, c + r, c + r), **style)  # type: ignore[arg-type]

    ring(-90, fill=(222, 228, 238), outline=(150, 160, 180))  # lower hemisphere
    ring(0, fill=(236, 242, 250), outline=(60, 70, 90), width=3)  # upper hemisphere; the bold ring = ear level
    for elevation in (45, -45):
        ring(elevation, outline=(175, 185, 200))
    rim = 180 * scale
    draw.line((c, c - rim, c, c + rim), fill=(190, 198, 210))
    draw.line((c - rim, c, c + rim, c), fill=(190, 198, 210))
    head = 0.035 * size  # the listener, nose to the front
    draw.polygon(((c - head * 0.45, c - head * 0.8), (c + head * 0.45, c - head * 0.8), (c, c - head * 1.5)),
                 fill=(90, 90, 100))
    draw.ellipse((c - head, c - head, c + head, c + head), fill=(120, 120, 130), outline=(60, 60, 70))
    for side in (-1, 1):
        draw.ellipse((c + side * head - 3, c - 5, c + side * head + 3, c + 5), fill=(90, 90, 100))
    margin = size / 2 - rim
    for text, xy, anchor in (("front", (c, margin / 2), "mm"), ("back", (c, size - margin / 2), "mm"),
                             ("left", (margin / 2 + 2, c), "lm"), ("right", (size - margin / 2 - 2, c), "rm")):
        draw.text(xy, text, fill=(40, 40, 50), font=font, anchor=anchor)
    for elevation, text in ((0, "ear level"), (45, "above"), (-45, "below")):
        x, y = direction_to_pixel(-135, elevation, size)
        draw.text((x + 4, y + 2), text, fill=(90, 100, 120), font=font, anchor="lt")
    if len(path) > 1:
        draw.line([direction_to_pixel(az, el, size) for az, el in path], fill=(230, 120, 20), width=2)
    for i, (name, (azimuth, elevation)) in enumerate(points.items()):
        x, y = direction_to_pixel(azimuth, elevation, size)
        r = 0.025 * size if i == 0 else 0.018 * size
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(230, 120, 20) if i == 0 else (150, 60, 200),
                     outline=(40, 40, 40), width=2)
        outward = 1 if x >= c else -1  # the label on the side away from the head
        draw.text((x + outward * (r + 3), y - r - 2), f"{name} {azimuth:+.0f}/{elevation:+.0f}", fill=(20, 20, 20),
                  font=font, anchor="lt" if outward > 0 else "rt")
    return np.asarray(image)


def direction_energy(foa: np.ndarray, azimuth_steps: int = MAP_GRID[0], elevation_steps: int = MAP_GRID[1],
                     sharpness: int = 4, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`soundstage.foa.direction_energy_map` (same beam, grid and normalisation) computed over chunks of
    time-frequency bins, so that memory stays at ``chunk`` x grid floats (the whole map at once holds bins x grid:
    1.3 GB for 5 s at 24 kHz) and the integer ``sharpness`` power is two squarings. Bins more than 80 dB below the
    strongest are skipped (they change no pixel)."""
    active, _, _ = intensity_from_stft(foa_stft(torch.as_tensor(np.asarray(foa, dtype=np.float32))))
    vectors = active.flatten(-2).T  # (bins, 3)
    magnitude = vectors.norm(dim=-1)
    keep = magnitude > 1e-8 * magnitude.max().clamp_min(1e-30)
    vectors, magnitude = vectors[keep], magnitude[keep]
    unit = vectors / magnitude[:, None]
    azimuths = torch.linspace(-180.0, 180.0, azimuth_steps + 1)[:-1]
    elevations = torch.linspace(-90.0, 90.0, elevation_steps)
    grid = direction_vector(azimuths[None, :], elevations[:, None]).reshape(-1, 3)  # (E * A, 3)
    energy = torch.zeros(grid.shape[0], dtype=torch.float64)
    for start in range(0, unit.shape[0], chunk):
        beam = (1.0 + unit[start:start + chunk] @ grid.T) / 2.0  # (chunk, E * A)
        for _ in range(int(math.log2(sharpness))):
            beam = beam * beam
        energy += (beam * magnitude[start:start + chunk, None]).sum(0).double()
    energy = (energy / energy.max().clamp_min(1e-12)).reshape(elevation_steps, azimuth_steps)
    return energy.float().numpy(), azimuths.numpy(), elevations.numpy()


def _save(figure: object, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)  # type: ignore[arg-type]
    figure.savefig(path, dpi=100)  # type: ignore[attr-defined]
    return path


def plot_direction_map(foa: np.ndarray, path: Path, points: dict[str, tuple[float, float]]) -> Path:
    """Save a PNG of the energy over azimuth x elevation of ``(4, T)`` AmbiX audio (:func:`direction_energy`) with
    named (azimuth, elevation) points marked (``MARKERS`` gives each name's symbol). Azimuth runs from +180 on the
    left to -180 on the right, as a listener facing the front sees it."""
    from matplotlib.figure import Figure

    energy, azimuths, _ = direction_energy(foa)
    step = 360.0 / len(azimuths)
    figure = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(energy, origin="lower", aspect="auto", cmap="magma", interpolation="bilinear",
                      extent=(float(azimuths[0]) - step / 2, float(azimuths[-1]) + step / 2, -90, 90))
    ax.set(xlim=(180, -180), ylim=(-90, 90), xlabel="azimuth (deg, +90 = left)", ylabel="elevation (deg)",
           xticks=range(180, -181, -45), yticks=range(-90, 91, 45))
    for name, (azimuth, elevation) in points.items():
        marker, colour = MARKERS.get(name, ("D", "yellow"))
        filled = marker not in ("o", "s")
        ax.plot(azimuth, elevation, linestyle="none", marker=marker, markersize=11, mew=2.2, label=name,
                color=colour, markerfacecolor=colour if filled else "none")
    if points:
        ax.legend(loc="lower left", fontsize=8, framealpha=0.6, ncol=len(points))
    figure.colorbar(image, ax=ax, label="relative energy")
    return _save(figure, path)


def plot_spectrogram(foa: np.ndarray, sample_rate: int, path: Path) -> Path:
    """Save a PNG of the spectrogram of the W (omnidirectional) channel of ``(4, T)`` AmbiX audio, in dB."""
    from matplotlib.figure import Figure
    from scipy.signal import spectrogram

    freqs, times, power = spectrogram(foa[W], fs=sample_rate, nperseg=512, noverlap=384, window="hann")
    level = 10 * np.log10(power + 1e-12)
    figure = Figure(figsize=(7.5, 2.8), layout="constrained")
    ax = figure.add_subplot()
    image = ax.pcolormesh(times, freqs / 1000, level, shading="auto", cmap="viridis",
                          vmin=level.max() - 90, vmax=level.max())
    ax.set(xlabel="time (s)", ylabel="frequency (kHz)")
    figure.colorbar(image, ax=ax, label="dB")
    return _save(figure, path)
