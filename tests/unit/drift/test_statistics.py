"""Every non-KS statistic against its scipy reference on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from keelwatch.monitoring.drift import statistics as st
from keelwatch.monitoring.drift.ks import SortedSample


def _counts(rng: np.random.Generator, k: int, zeros: bool) -> np.ndarray:
    c = rng.integers(0, 500, size=k)
    if zeros:
        c[rng.integers(0, k)] = 0
    return c.astype(np.int64)


@pytest.mark.parametrize("seed", range(20))
def test_kl_psi_js_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 30))
    cur, ref = _counts(rng, k, seed % 2 == 0), _counts(rng, k, seed % 3 == 0)
    eps = 1e-4
    p, q = st.smoothed_proportions(cur, eps), st.smoothed_proportions(ref, eps)
    assert st.kl_divergence(cur, ref, eps).value == pytest.approx(stats.entropy(p, q), rel=1e-12)
    sym = stats.entropy(p, q) + stats.entropy(q, p)
    assert st.symmetric_kl_divergence(cur, ref, eps).value == pytest.approx(sym, rel=1e-12)
    assert st.population_stability_index(cur, ref, eps).value == pytest.approx(sym, rel=1e-10)
    assert st.jensen_shannon_distance(cur, ref).value == pytest.approx(
        jensenshannon(cur / cur.sum(), ref / ref.sum()), rel=1e-9, abs=1e-12
    )


def test_smoothing_floors_empty_bins_at_epsilon_before_renormalising() -> None:
    p = st.smoothed_proportions(np.array([0, 10, 90]), 0.01)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(0.01 / 1.01)
    assert st.kl_divergence(np.array([0, 5]), np.array([5, 0])).value < np.inf


@pytest.mark.parametrize("kind", ["continuous", "ties", "tiny"])
def test_wasserstein_matches_scipy(kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    for _ in range(30):
        if kind == "continuous":
            a, b = rng.normal(size=3000), rng.normal(0.3, 1.2, size=2000)
        elif kind == "ties":
            a, b = rng.integers(0, 5, 400).astype(float), rng.integers(1, 7, 300).astype(float)
        else:
            a, b = (
                rng.normal(size=int(rng.integers(1, 4))),
                rng.normal(size=int(rng.integers(1, 4))),
            )
        values, counts = np.unique(a, return_counts=True)
        res = st.wasserstein(SortedSample(values, counts.astype(np.int64)), np.sort(b), a.std())
        expected = stats.wasserstein_distance(a, b)
        assert res.value == pytest.approx(expected, rel=1e-9, abs=1e-12)
        if a.std() > 0:
            assert res.effect_size == pytest.approx(expected / a.std(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(15))
def test_chi2_homogeneity_matches_scipy_including_unseen_categories(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    ref, cur = _counts(rng, k, False) + 1, _counts(rng, k, False)
    ref[-1] = 0  # a category the reference never saw
    cur[-1] = int(rng.integers(1, 50))
    res = st.chi2_homogeneity(ref, cur)
    table = np.vstack((ref, cur))
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    assert res.value == pytest.approx(expected.statistic, rel=1e-10)
    assert res.pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    # The same number through chisquare on the flattened table (dof = K - 1).
    flat = stats.chisquare(table.ravel(), expected.expected_freq.ravel(), ddof=table.shape[1])
    assert res.value == pytest.approx(flat.statistic, rel=1e-10)
    assert res.pvalue == pytest.approx(flat.pvalue, rel=1e-9, abs=1e-300)
    assert res.effect_size == pytest.approx(np.sqrt(expected.statistic / table.sum()))


def test_chi2_with_a_single_category_is_no_evidence() -> None:
    res = st.chi2_homogeneity(np.array([10, 0]), np.array([7, 0]))
    assert (res.value, res.pvalue) == (0.0, 1.0)


@pytest.mark.parametrize("seed", range(15))
def test_two_proportion_z_squared_is_2x2_chi2(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n1, n2 = (int(x) for x in rng.integers(20, 5000, size=2))
    x1, x2 = int(rng.integers(1, n1)), int(rng.integers(1, n2))
    res = st.two_proportion_z_test(x1, n1, x2, n2)
    expected = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert res.value**2 == pytest.approx(expected.statistic, rel=1e-9)
    assert res.pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert np.sign(res.value) == np.sign(x2 / n2 - x1 / n1)


def test_z_test_degenerate_samples() -> None:
    assert st.two_proportion_z_test(0, 10, 0, 20).pvalue == 1.0
    with pytest.raises(ValueError):
        st.two_proportion_z_test(0, 0, 1, 2)


@pytest.mark.parametrize("seed", range(10))
def test_benjamini_hochberg_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate((rng.uniform(size=40), rng.uniform(0, 1e-3, size=int(rng.integers(0, 10)))))
    p[rng.integers(0, p.size)] = p[0]  # ties
    np.testing.assert_allclose(
        st.benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )
    assert st.benjamini_hochberg(np.array([])).size == 0


def test_histograms_sorted_and_unsorted_agree_with_numpy() -> None:
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=10_000), 1)
    edges = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    h1 = st.histogram_counts(x, edges)
    h2 = st.histogram_counts_sorted(np.sort(x), edges)
    np.testing.assert_array_equal(h1, h2)
    # Interior bins are [e_i, e_i+1), matching numpy's half-open bins.
    inner, _ = np.histogram(x[(x >= -1.0) & (x < 1.0)], bins=edges)
    np.testing.assert_array_equal(h1[1:-1], inner)
    assert h1.sum() == x.size
