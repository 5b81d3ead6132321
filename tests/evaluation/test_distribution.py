"""FAD, FAD-inf and KAD on sets with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm

from soundstage.metrics import distribution as dist


def test_identical_sets_give_zero() -> None:
    x = np.random.default_rng(0).standard_normal((400, 8))
    assert dist.fad(x, x) == pytest.approx(0.0, abs=1e-9)
    assert abs(dist.kad(x, x)) < 2.0 / len(x)  # identical (not independent) sets: the cross term's diagonal


def test_shifted_gaussians_give_the_closed_form_frechet_value() -> None:
    rng = np.random.default_rng(1)
    d = 6
    a_cov = np.diag(rng.uniform(0.5, 2.0, d))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    b_cov = q @ np.diag(rng.uniform(0.5, 2.0, d)) @ q.T
    shift = np.full(d, 0.7)
    root = np.real(sqrtm(a_cov @ b_cov))
    expected = float(shift @ shift + np.trace(a_cov) + np.trace(b_cov) - 2 * np.trace(root))
    assert dist.frechet_distance(np.zeros(d), a_cov, shift, b_cov) == pytest.approx(expected, rel=1e-10)
    # sampled: FAD of large samples approaches the closed form, and FAD-inf removes most of the 1/n bias
    n = 4000
    a = rng.multivariate_normal(np.zeros(d), a_cov, n)
    b = rng.multivariate_normal(shift, b_cov, n)
    assert dist.fad(a, b) == pytest.approx(expected, rel=0.05)
    assert dist.fad_inf(a, b).value == pytest.approx(expected, rel=0.05)


def test_fad_inf_removes_the_small_sample_bias() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((200, 32)), rng.standard_normal((5000, 32))
    biased, extrapolated = dist.fad(a, b), dist.fad_inf(a, b, seed=0)
    assert biased > 1.0  # the same distribution, but 200 rows in 32-d: mostly bias
    assert abs(extrapolated.value) < 0.3 * biased
    assert extrapolated.sizes[-1] == 200 and extrapolated.slope > 0
    assert dist.fad_inf(a, b, seed=0).value == extrapolated.value  # fixed seed: reproducible


def test_fad_and_kad_grow_with_added_noise() -> None:
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((300, 10))
    clean = rng.standard_normal((300, 10))
    fads, kads = [], []
    for level in (0.0, 0.5, 1.0, 2.0):
        noisy = clean + level * rng.standard_normal(clean.shape)
        bandwidth = dist.median_bandwidth(ref, clean)  # one kernel for all levels: a fair comparison
        fads.append(dist.fad(noisy, ref))
        kads.append(dist.kad(noisy, ref, bandwidth))
    assert fads == sorted(fads) and kads == sorted(kads)
    assert fads[-1] > 10 * fads[0] and kads[-1] > 10 * abs(kads[0])


def test_kad_contributions_add_up_and_point_at_the_outlier() -> None:
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((100, 4))
    gen = rng.standard_normal((50, 4))
    gen[7] += 6.0
    bandwidth = dist.median_bandwidth(gen, ref)
    parts = dist.kad_contributions(gen, ref, bandwidth)
    assert parts.sum() == pytest.approx(dist.kad(gen, ref, bandwidth), rel=1e-9)
    assert int(np.argmax(parts)) == 7


def test_effective_dimension_and_the_sample_size_warning() -> None:
    rng = np.random.default_rng(5)
    iso = rng.standard_normal((2000, 20))
    assert dist.effective_dimension(iso) == pytest.approx(20, rel=0.1)
    low = rng.standard_normal((2000, 3)) @ rng.standard_normal((3, 20))  # 20-d rows on a 3-d subspace
    assert dist.effective_dimension(low) < 3.01
    assert dist.sample_size_warning("x", 100, 500, 20.0) is not None  # 100 < 10 x 20
    assert dist.sample_size_warning("x", 300, 500, 20.0) is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="n >= 2"):
        dist.fad(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        dist.fad(np.full((3, 2), np.nan), np.zeros((5, 2)))
