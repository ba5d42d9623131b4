"""KS statistic and p-values against scipy.stats.ks_2samp on generated data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from keelwatch.monitoring.drift.ks import (
    SortedSample,
    ks_pvalue,
    ks_statistic,
    ks_two_sample,
    kstwo_sf,
)


def _samples(kind: str, n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "continuous":
        return rng.normal(size=n), rng.normal(rng.uniform(-0.4, 0.4), 1.0, size=m)
    if kind == "discrete":
        return (
            rng.integers(0, 4, size=n).astype(float),
            rng.integers(0, int(rng.integers(1, 6)), size=m).astype(float),
        )
    if kind == "rounded":
        return np.round(rng.normal(size=n), 1), np.round(rng.normal(0.2, 1.1, size=m), 1)
    # Overlapping: the current sample shares exact values with the reference.
    a = rng.normal(size=n)
    return a, np.concatenate((a[: m // 2], rng.normal(size=m - m // 2)))


def _scipy(a: np.ndarray, b: np.ndarray, method: str) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's exact->asymp fallback notice
        res = stats.ks_2samp(a, b, method=method)
    return float(res.statistic), float(res.pvalue)


def _assert_matches(a: np.ndarray, b: np.ndarray, method: str) -> None:
    expected_d, expected_p = _scipy(a, b, method)
    got = ks_two_sample(np.sort(a), np.sort(b), method=method)  # type: ignore[arg-type]
    assert got.statistic == pytest.approx(expected_d, abs=1e-12)
    if np.isnan(expected_p):  # n = m = 1 under asymp: scipy's effective n rounds to 0
        assert np.isnan(got.pvalue)
    elif got.method == "exact":
        assert got.pvalue == pytest.approx(expected_p, rel=1e-9, abs=0)
    elif expected_p >= 1e-10:
        assert got.pvalue == pytest.approx(expected_p, rel=1e-6, abs=0)
    else:
        assert got.pvalue < 1e-9


@pytest.mark.parametrize("method", ["auto", "exact", "asymp"])
@pytest.mark.parametrize("kind", ["continuous", "discrete", "rounded", "overlapping"])
def test_matches_scipy_on_generated_data(kind: str, method: str) -> None:
    rng = np.random.default_rng(abs(hash((kind, method))) % 2**32)
    for _ in range(60):
        n, m = (int(x) for x in rng.integers(1, 1500, size=2))
        a, b = _samples(kind, n, m, rng)
        _assert_matches(a, b, method)


@pytest.mark.parametrize("method", ["auto", "exact", "asymp"])
def test_tiny_samples(method: str) -> None:
    rng = np.random.default_rng(3)
    for n in range(1, 6):
        for m in range(1, 6):
            a, b = rng.integers(0, 3, size=n).astype(float), rng.normal(size=m)
            _assert_matches(a, b, method)
            _assert_matches(a, a[:m] if m <= n else np.concatenate((a, a))[:m], method)


def test_equal_sizes_use_square_formula_and_match() -> None:
    rng = np.random.default_rng(11)
    for n in (10, 100, 999, 4000):
        a, b = rng.normal(size=n), rng.normal(0.05, 1, size=n)
        _assert_matches(a, b, "exact")


@pytest.mark.parametrize("shift", [0.0, 0.003, 0.01, 0.05, 0.5])
def test_large_samples_statistic_is_bitwise_scipy(shift: float) -> None:
    rng = np.random.default_rng(int(shift * 1000))
    a, b = rng.normal(size=200_000), rng.normal(shift, 1.0, size=150_000)
    expected_d, expected_p = _scipy(a, b, "asymp")
    got = ks_two_sample(np.sort(a), np.sort(b), method="auto")
    assert got.method == "asymp"
    assert got.statistic == expected_d
    if expected_p >= 1e-10:
        assert got.pvalue == pytest.approx(expected_p, rel=1e-6, abs=0)


def test_run_length_encoded_reference_gives_same_statistic() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 50, size=20_000).astype(float)
    b = rng.integers(2, 52, size=7_000).astype(float)
    values, counts = np.unique(a, return_counts=True)
    encoded = SortedSample(values, counts.astype(np.int64))
    assert encoded.size == a.size
    assert ks_statistic(encoded, np.sort(b)) == _scipy(a, b, "asymp")[0]


def test_identical_samples_have_zero_distance_and_unit_pvalue() -> None:
    a = np.sort(np.random.default_rng(2).normal(size=50_000))
    res = ks_two_sample(a, a.copy())
    assert res.statistic == 0.0
    assert res.pvalue == 1.0


@pytest.mark.parametrize("n", [141, 1_000, 50_000, 500_000, 999_999, 2_000_000])
def test_kstwo_sf_matches_scipy_in_every_branch(n: int) -> None:
    # scipy needs up to ~1.5 s per value at n ~ 1e6 (that slowness is why we have kstwo_sf).
    for nx2 in np.geomspace(0.05, 500.0, 40 if n < 100_000 else 9):
        x = float(np.sqrt(nx2 / n))
        if x >= 1:
            continue
        expected = float(stats.kstwo.sf(x, n))
        got = kstwo_sf(x, n)
        if expected >= 1e-10:
            assert got == pytest.approx(expected, rel=1e-6, abs=0), (n, nx2)
        else:
            assert got <= 1e-9


def test_exact_falls_back_to_asymp_like_scipy() -> None:
    # lcm(n, m) beyond int32: scipy warns and switches to asymp; we report the method used.
    d, p, used = ks_pvalue(0.01, 65_537, 65_539, "exact")
    assert used == "asymp"
    assert p == pytest.approx(float(stats.kstwo.sf(d, round(65_537 * 65_539 / 131_076))))


def test_rejects_unknown_method_and_empty_input() -> None:
    with pytest.raises(ValueError, match="unknown KS method"):
        ks_pvalue(0.1, 10, 10, "fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        ks_statistic(np.array([1.0]), np.array([]))


@pytest.mark.parametrize("n", [141, 5_000, 200_000, 999_999])
def test_smirnov_sf_matches_scipy_special_including_strided_windows(n: int) -> None:
    # n*x^2 near 2 makes the window of terms span most of [0, n]: those are summed on a stride
    # (trapezoid rule on a smooth bell), which must not cost accuracy.
    from scipy.special import smirnov

    from keelwatch.monitoring.drift.ks import smirnov_sf

    for nx2 in np.geomspace(2.2, 369.0, 15):
        x = float(np.sqrt(nx2 / n))
        if x >= 0.5:
            continue
        expected = float(smirnov(n, x))
        assert smirnov_sf(n, x) == pytest.approx(expected, rel=1e-8, abs=1e-300), (n, nx2)
