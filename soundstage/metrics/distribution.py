"""Distances between two sets of embeddings: Fréchet distance (FAD), its extrapolation to infinite samples (FAD-inf),
the kernel distance (KAD, an MMD), and the effective dimension that says how many samples they need.

Inputs are ``(n, d)`` arrays of one embedding per row (any float type; everything is computed in float64).

- Fréchet distance of Gaussians fitted to each set: ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b
  S_a^1/2)^1/2)``, the square roots by symmetric eigendecomposition with negative eigenvalues (round-off) set to 0.
- FAD-inf (Chung et al., "KAD: No More FAD!", 2025 and Jayasumana/Binkowski before them): FAD is biased upwards by
  about ``c / n``; FAD on random subsets of the first set of several sizes ``n`` (fixed seed) is fitted by a line in
  ``1 / n`` and the intercept is the value at infinitely many samples.
- KAD: the unbiased estimate of the squared maximum mean discrepancy with a Gaussian RBF kernel
  ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``, where ``sigma`` is the median pairwise Euclidean distance of the
  pooled rows (at most 2,000 of them, drawn with a fixed seed). Unbiased: it can be slightly negative for two sets
  from one distribution.
- Effective dimension: the participation ratio ``(sum l)^2 / sum l^2`` of the eigenvalues ``l`` of the pooled
  covariance. A Gaussian fit needs many more rows than that: below about 10 x, FAD is dominated by its bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLES_PER_DIMENSION = 10  # below this many rows per effective dimension, warn that FAD is mostly bias


def _rows(x: Any, name: str = "embeddings") -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"{name}: need an (n, d) array with n >= 2 rows, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return array


def gaussian_statistics(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` (unbiased, n - 1) of ``(n, d)`` rows, float64."""
    rows = _rows(x)
    return rows.mean(axis=0), np.cov(rows, rowvar=False, ddof=1).reshape(rows.shape[1], rows.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues below 0 are round-off: set to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance squared between two Gaussians, in float64."""
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = float(np.sqrt(np.clip(values, 0.0, None)).sum())
    value = float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(value, 0.0)


def fad(a: Any, b: Any) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b``."""
    return frechet_distance(*gaussian_statistics(a), *gaussian_statistics(b))


@dataclass
class FADInf:
    value: float  # the intercept: FAD at 1 / n = 0
    slope: float  # FAD units per 1 / n
    sizes: list[int]  # subset sizes of the first set
    fads: list[float]  # FAD of each subset against the whole second set
    r2: float  # of the line fit

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "slope": self.slope, "sizes": self.sizes, "fads": self.fads, "r2": self.r2}


def fad_inf(a: Any, b: Any, points: int = 8, min_fraction: float = 0.3, seed: int = 0) -> FADInf:
    """FAD extrapolated to infinitely many rows of ``a`` (against all of ``b``).

    Subsets of ``a`` (without replacement) of ``points`` sizes from ``min_fraction * n`` to ``n``, equally spaced in
    ``1 / n``, drawn from ``numpy.random.default_rng(seed)``; FAD of each against ``b``; least-squares line in
    ``1 / n``; the intercept is the value. Needs ``n >= 4``.
    """
    rows_a, rows_b = _rows(a, "a"), _rows(b, "b")
    n = len(rows_a)
    if n < 4:
        raise ValueError(f"FAD-inf needs at least 4 rows in the first set, got {n}")
    stats_b = gaussian_statistics(rows_b)
    smallest = max(3, round(min_fraction * n))
    inverse = np.linspace(1.0 / smallest, 1.0 / n, points)
    sizes = sorted({round(1.0 / v) for v in inverse})
    rng = np.random.default_rng(seed)
    fads = []
    for size in sizes:
        subset = rows_a if size == n else rows_a[rng.choice(n, size, replace=False)]
        fads.append(frechet_distance(*gaussian_statistics(subset), *stats_b))
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    y = np.asarray(fads)
    slope, intercept = np.polyfit(x, y, 1) if len(sizes) > 1 else (0.0, float(y[0]))
    residual = y - (intercept + slope * x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 1.0
    return FADInf(float(intercept), float(slope), sizes, [float(f) for f in fads], r2)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.clip(out, 0.0, None)


def median_bandwidth(a: Any, b: Any, max_rows: int = 2000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance among the pooled rows (a seeded subset of ``max_rows`` when larger)."""
    pooled = np.concatenate([_rows(a, "a"), _rows(b, "b")])
    if len(pooled) > max_rows:
        pooled = pooled[np.random.default_rng(seed).choice(len(pooled), max_rows, replace=False)]
    distances = np.sqrt(_squared_distances(pooled, pooled)[np.triu_indices(len(pooled), k=1)])
    return float(np.median(distances))


def kernel_terms(a: Any, b: Any, bandwidth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RBF kernel matrices ``K_aa`` (diagonal zeroed), ``K_bb`` (diagonal zeroed) and ``K_ab``."""
    rows_a, rows_b = _rows(a, "a"), _rows(b, "b")
    scale = -1.0 / (2.0 * bandwidth**2)
    k_aa = np.exp(scale * _squared_distances(rows_a, rows_a))
    k_bb = np.exp(scale * _squared_distances(rows_b, rows_b))
    np.fill_diagonal(k_aa, 0.0)
    np.fill_diagonal(k_bb, 0.0)
    return k_aa, k_bb, np.exp(scale * _squared_distances(rows_a, rows_b))


def kad(a: Any, b: Any, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 between the rows of ``a`` and ``b`` with an RBF kernel of ``bandwidth`` (default: the median
    pairwise distance of the pooled rows, :func:`median_bandwidth`)."""
    bandwidth = median_bandwidth(a, b) if bandwidth is None else float(bandwidth)
    if not bandwidth > 0:
        raise ValueError(f"the kernel bandwidth must be positive, got {bandwidth} (are all rows identical?)")
    k_aa, k_bb, k_ab = kernel_terms(a, b, bandwidth)
    m, n = len(k_aa), len(k_bb)
    return float(k_aa.sum() / (m * (m - 1)) + k_bb.sum() / (n * (n - 1)) - 2.0 * k_ab.mean())


def kad_contributions(a: Any, b: Any, bandwidth: float) -> np.ndarray:
    """``(m,)`` share of each row of ``a`` in :func:`kad`; the shares add up to KAD.

    Row ``i``'s share is its similarity to the other rows of ``a`` minus twice its similarity to ``b`` (the terms of
    KAD that involve it), plus ``1 / m`` of the ``b``-only term. A row far from every row of ``b``, or redundant with
    other rows of ``a``, has a large share; one that sits among ``b`` a negative one.
    """
    k_aa, k_bb, k_ab = kernel_terms(a, b, bandwidth)
    m, n = len(k_aa), len(k_bb)
    return k_aa.sum(1) / (m * (m - 1)) - 2.0 * k_ab.sum(1) / (m * n) + k_bb.sum() / (n * (n - 1)) / m


def effective_dimension(*sets: Any) -> float:
    """Participation ratio ``(sum l)^2 / sum l^2`` of the pooled covariance eigenvalues of the given row sets."""
    pooled = np.concatenate([_rows(s) for s in sets])
    values = np.clip(np.linalg.eigvalsh(np.cov(pooled, rowvar=False)), 0.0, None)
    total = float((values**2).sum())
    return float(values.sum() ** 2 / total) if total > 0 else 0.0


def sample_size_warning(name: str, n_a: int, n_b: int, dimension: float) -> str | None:
    """A warning when the smaller set has fewer than ``SAMPLES_PER_DIMENSION`` x ``dimension`` rows, else None."""
    needed = SAMPLES_PER_DIMENSION * dimension
    smaller = min(n_a, n_b)
    if smaller >= needed:
        return None
    return (f"{name}: {smaller} rows for an effective dimension of {dimension:.1f} (fewer than "
            f"{SAMPLES_PER_DIMENSION} x {dimension:.1f} = {needed:.0f}): FAD is dominated by its small-sample bias; "
            "compare FAD-inf or KAD, or values at equal n")
