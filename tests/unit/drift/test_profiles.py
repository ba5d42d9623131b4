"""Reference profiles: exact merges, sketch bound, samples, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keelwatch.monitoring.drift import (
    DriftInputError,
    MixedTypeColumnError,
    QuantileSketch,
    build_profile,
    ks_statistic_from_sketches,
    load_profile,
    merge_profiles,
    save_profile,
)
from keelwatch.monitoring.drift.ks import ks_statistic


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    x = rng.normal(size=n)
    x[rng.uniform(size=n) < 0.05] = np.nan
    x[rng.uniform(size=n) < 0.01] = np.inf
    return pd.DataFrame(
        {
            "x": x,
            "level": rng.integers(0, 7, size=n),
            "flag": rng.uniform(size=n) < 0.3,
            "city": rng.choice(["a", "b", "c", "d"], size=n),
        }
    )


@pytest.mark.parametrize("seed", range(8))
def test_merge_is_exact_for_counts_histograms_and_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    whole = _frame(rng, int(rng.integers(50, 3000)))
    cut = int(rng.integers(1, whole.shape[0] - 1))
    base = build_profile(whole)
    a = build_profile(whole.iloc[:cut], like=base)
    b = build_profile(whole.iloc[cut:], like=base)
    merged = merge_profiles(a, b)
    assert merged.rows == base.rows
    for name, col in base.columns.items():
        got = merged.columns[name]
        assert (got.kind, got.rows, got.missing, got.infinite) == (
            col.kind,
            col.rows,
            col.missing,
            col.infinite,
        )
        assert got.categories == col.categories
        if col.numeric is not None:
            assert got.numeric is not None
            np.testing.assert_array_equal(got.numeric.bin_counts, col.numeric.bin_counts)
            np.testing.assert_array_equal(got.numeric.support.values, col.numeric.support.values)
            np.testing.assert_array_equal(
                got.numeric.support.expanded(), col.numeric.support.expanded()
            )
            assert got.numeric.count == col.numeric.count
            assert got.numeric.mean == pytest.approx(col.numeric.mean, rel=1e-12, abs=1e-12)
            assert got.numeric.std == pytest.approx(col.numeric.std, rel=1e-10)
            assert (got.numeric.minimum, got.numeric.maximum) == (
                col.numeric.minimum,
                col.numeric.maximum,
            )


def test_merge_rejects_different_bin_edges_and_columns() -> None:
    rng = np.random.default_rng(0)
    a = build_profile(pd.DataFrame({"x": rng.normal(size=100)}))
    b = build_profile(pd.DataFrame({"x": rng.normal(5, 1, size=100)}))
    with pytest.raises(DriftInputError, match="bin edges"):
        merge_profiles(a, b)
    with pytest.raises(DriftInputError, match="different columns"):
        merge_profiles(a, build_profile(pd.DataFrame({"y": rng.normal(size=10)})))


@pytest.mark.parametrize("k", [16, 64, 256])
def test_sketch_rank_error_stays_within_certified_bound(k: int) -> None:
    rng = np.random.default_rng(k)
    parts = [rng.normal(size=int(rng.integers(1, 5000))) for _ in range(12)]
    sketch = QuantileSketch.from_values(parts[0], k)
    for part in parts[1:]:
        sketch = sketch.merge(QuantileSketch.from_values(part, k))
    data = np.sort(np.concatenate(parts))
    assert sketch.count == data.size
    probes = np.concatenate((data[:: max(1, data.size // 500)], [-10.0, 10.0]))
    true_rank = np.searchsorted(data, probes, side="right")
    error = np.abs(sketch.rank(probes) - true_rank)
    assert error.max() <= sketch.rank_error_bound
    levels = int(np.ceil(np.log2(max(data.size / k, 1)))) + 1
    assert sketch.rank_error_bound <= data.size * levels / k
    # Stored items stay within a few levels of k each.
    assert sum(level.size for level in sketch.levels) <= k * len(sketch.levels)


def test_ks_from_sketches_is_within_bound_of_exact() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=40_000), rng.normal(0.05, 1, size=30_000)
    d, bound = ks_statistic_from_sketches(
        QuantileSketch.from_values(a, 256), QuantileSketch.from_values(b, 256)
    )
    exact = ks_statistic(np.sort(a), np.sort(b))
    assert abs(d - exact) <= bound
    assert bound < 0.1


def test_capped_profiles_keep_a_uniform_sample_and_merge_it() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.uniform(size=20_000)})
    capped = build_profile(frame, max_sorted_values=2_000)
    col = capped.columns["x"].numeric
    assert col is not None and col.is_sample and col.support.size == 2_000
    assert np.all(np.diff(col.support.values) >= 0)
    # A uniform sample: its KS distance to the data is small.
    assert ks_statistic(col.support, np.sort(frame["x"].to_numpy())) < 0.05
    half = build_profile(frame.iloc[:10_000], like=capped, max_sorted_values=2_000, seed=1)
    other = build_profile(frame.iloc[10_000:], like=capped, max_sorted_values=2_000, seed=2)
    merged = merge_profiles(half, other, max_sorted_values=2_000)
    m = merged.columns["x"].numeric
    assert m is not None and m.support.size == 2_000 and m.is_sample
    assert ks_statistic(m.support, np.sort(frame["x"].to_numpy())) < 0.05
    np.testing.assert_array_equal(m.bin_counts, col.bin_counts)


def test_low_cardinality_columns_stay_exact_beyond_the_cap() -> None:
    frame = pd.DataFrame({"x": np.tile(np.arange(10.0), 1_000)})
    col = build_profile(frame, max_sorted_values=100).columns["x"]
    assert col.kind == "numeric" and col.numeric is not None
    assert not col.numeric.is_sample
    assert col.numeric.support.counts is not None and col.numeric.support.size == 10_000


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    profile = build_profile(_frame(rng, 2_000), metadata={"model": "churn", "version": "3"})
    path = save_profile(profile, tmp_path / "ref.npz")
    loaded = load_profile(path)
    assert loaded.metadata == {"model": "churn", "version": "3"}
    assert list(loaded.columns) == list(profile.columns)
    for name, col in profile.columns.items():
        got = loaded.columns[name]
        assert (got.kind, got.rows, got.missing, got.infinite, got.categories) == (
            col.kind,
            col.rows,
            col.missing,
            col.infinite,
            col.categories,
        )
        if col.numeric is not None:
            assert got.numeric is not None
            np.testing.assert_array_equal(got.numeric.support.values, col.numeric.support.values)
            np.testing.assert_array_equal(got.numeric.bin_edges, col.numeric.bin_edges)
            assert got.numeric.sketch.rank_error_bound == col.numeric.sketch.rank_error_bound
            np.testing.assert_array_equal(
                got.numeric.sketch.rank(np.array([0.0])), col.numeric.sketch.rank(np.array([0.0]))
            )


def test_load_rejects_other_files_and_versions(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DriftInputError, match="not a readable profile"):
        load_profile(junk)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(DriftInputError, match="not a Keelwatch drift profile"):
        load_profile(other)
    profile = build_profile(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    profile.format_version = 99
    save_profile(profile, tmp_path / "future.npz")
    with pytest.raises(DriftInputError, match="version 99 is not supported"):
        load_profile(tmp_path / "future.npz")


def test_kind_inference_and_mixed_types() -> None:
    frame = pd.DataFrame(
        {
            "num": [1.5, 2.5, 3.5, 4.0],
            "ints": [1, 2, 3, 4],
            "bin": [0, 1, 1, 0],
            "flag": [True, False, True, True],
            "label": ["a", "b", "c", None],
            "numbers_as_objects": pd.Series([1, 2.5, 3, None], dtype=object),
        }
    )
    kinds = {name: col.kind for name, col in build_profile(frame).columns.items()}
    assert kinds == {
        "num": "numeric",
        "ints": "numeric",
        "bin": "binary",
        "flag": "binary",
        "label": "categorical",
        "numbers_as_objects": "numeric",
    }
    with pytest.raises(MixedTypeColumnError, match="mixes value types"):
        build_profile(pd.DataFrame({"m": pd.Series(["a", 1, 2.0], dtype=object)}))
    with pytest.raises(DriftInputError, match="datetime"):
        build_profile(pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3)}))
