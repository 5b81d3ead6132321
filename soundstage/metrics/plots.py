"""Figures users look at: direction maps of FOA audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundstage.foa import direction_energy_map


def plot_direction_map(
    foa: np.ndarray,
    path: str | Path,
    title: str = "",
    labels: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Save an azimuth x elevation energy map of ``(4, T)`` AmbiX audio as a PNG.

    Azimuth runs from +180 (back, via left) to -180 (back, via right) so that left is on the left of the picture,
    as a listener facing the front would see it. ``labels`` marks named (azimuth, elevation) points in degrees.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    energy, azimuths, _elevations = (np.asarray(a) for a in direction_energy_map(np.asarray(foa, dtype=np.float32)))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    image = ax.imshow(
        energy,
        origin="lower",
        aspect="auto",
        extent=(float(azimuths[0]), float(azimuths[-1]) + 360 / len(azimuths), -90, 90),
        cmap="magma",
    )
    ax.invert_xaxis()
    ax.set(xlabel="azimuth (deg, +90 = left)", ylabel="elevation (deg)", title=title or "direction energy map")
    ax.set_xticks([180, 135, 90, 45, 0, -45, -90, -135, -180])
    for name, (az, el) in (labels or {}).items():
        ax.plot(az, el, marker="x", color="cyan", markersize=10, mew=2)
        ax.annotate(name, (az, el), color="cyan", xytext=(5, 5), textcoords="offset points")
    fig.colorbar(image, ax=ax, label="relative energy")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
