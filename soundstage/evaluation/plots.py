"""Plots of ``soundstage evaluate generated``: direction error against requested azimuth, each clip's share of KAD,
a 2-D map of the generated and reference embeddings (aiSFX W and ELSA) and the two sets' W levels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_direction_errors(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    located = [r for r in rows if "direction_error_deg" in r]
    if located:
        azimuth = [r["request"]["azimuth_deg"] for r in located]
        ax.scatter(azimuth, [r["direction_error_deg"] for r in located], s=14, label="broadband")
        ax.scatter(azimuth, [r["direction_error_deg_framewise"] for r in located], s=10, marker="x",
                   label="framewise median (40 ms)")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no clip has a requested direction", ha="center", transform=ax.transAxes)
    ax.set(xlabel="requested azimuth (deg, +90 = left)", ylabel="great-circle error (deg)", xlim=(-180, 180),
           title="direction error against the requested azimuth")
    ax.set_xticks(range(-180, 181, 45))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_contributions(rows: list[dict[str, Any]], path: Path, top: int = 15) -> Path:
    """Each generated clip's share of KAD on aiSFX W (they add up to KAD), sorted; the largest, with their text."""
    plt = _pyplot()
    values = np.array([r["kad_w_contribution"] for r in rows])
    order = np.argsort(-values)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": (1, 1.2)})
    left.bar(range(len(values)), values[order], width=1.0, color=["C3" if v > 0 else "C0" for v in values[order]])
    left.axhline(0, color="k", lw=0.6)
    left.axhline(values.mean(), color="k", lw=0.6, ls="--", label=f"mean = KAD / n ({values.mean():.2g})")
    left.set(xlabel="generated clips, largest share first", ylabel="share of KAD (aiSFX W)",
             title="per-clip contributions to KAD")
    left.legend(fontsize=8)
    shown = order[:top][::-1]
    right.barh(range(len(shown)), values[shown], color="C3")
    right.set_yticks(range(len(shown)), [f"{rows[i]['id'] or i}: {rows[i]['text'][:48]}" for i in shown], fontsize=7)
    right.set(xlabel="share of KAD", title=f"the {len(shown)} largest")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pca_2d(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def plot_embedding_map(gen: list[dict[str, Any]], ref: list[dict[str, Any]], path: Path) -> Path:
    """PCA (fitted on both sets) of the clip-mean aiSFX W embedding and of the ELSA embedding."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, (name, key) in zip(axes, (("aiSFX W (clip mean)", "sfx"), ("ELSA", "elsa"))):
        take = (lambda a: a["sfx"][0].mean(0)) if key == "sfx" else (lambda a: a["elsa"])
        points = np.stack([take(a) for a in gen + ref])
        xy = _pca_2d(points.astype(np.float64))
        ax.scatter(*xy[len(gen):].T, s=12, alpha=0.7, label=f"reference ({len(ref)})")
        ax.scatter(*xy[:len(gen)].T, s=12, alpha=0.7, marker="^", label=f"generated ({len(gen)})")
        ax.set(title=f"{name}: first two principal components", xlabel="PC 1", ylabel="PC 2")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_levels(gen: list[dict[str, Any]], ref: list[dict[str, Any]], path: Path) -> Path:
    """Histograms of the per-clip W level (dBFS) of both sets, their medians marked."""
    plt = _pyplot()
    gen_levels = np.array([a["w_level_dbfs"] for a in gen])
    ref_levels = np.array([a["w_level_dbfs"] for a in ref])
    low = max(min(gen_levels.min(), ref_levels.min()), -80.0)  # digital silence would stretch the axis
    bins = np.linspace(np.floor(low), np.ceil(max(gen_levels.max(), ref_levels.max(), low + 1)), 41)
    fig, ax = plt.subplots(figsize=(8, 4))
    for levels, label, colour in ((ref_levels, "reference", "C0"), (gen_levels, "generated", "C1")):
        ax.hist(np.clip(levels, bins[0], None), bins=bins, alpha=0.55, color=colour,
                label=f"{label} ({len(levels)}), median {np.median(levels):.1f} dBFS")
        ax.axvline(float(np.median(levels)), color=colour, lw=1.2, ls="--")
    ax.set(xlabel="W RMS over the clip (dBFS)", ylabel="clips", title="W level of each clip")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(folder: Path, results: dict[str, Any], gen: list[dict[str, Any]],
                ref: list[dict[str, Any]]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "direction_error": plot_direction_errors(results["clips"], folder / "direction_error_vs_azimuth.png"),
        "contributions": plot_contributions(results["clips"], folder / "clip_contributions.png"),
        "embedding_map": plot_embedding_map(gen, ref, folder / "embedding_map.png"),
        "levels": plot_levels(gen, ref, folder / "w_levels.png"),
    }
    return {k: str(v) for k, v in paths.items()}
