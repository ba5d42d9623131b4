"""compute_drift: test choice, FDR verdict, effect floors and the bad-input list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keelwatch.monitoring.drift import (
    DriftConfig,
    DriftInputError,
    build_profile,
    compute_drift,
)
from keelwatch.monitoring.drift.statistics import benjamini_hochberg


def _reference(n: int = 4_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.exponential(size=n),
            "plan": rng.choice(["basic", "pro"], size=n, p=[0.7, 0.3]).astype(object),
            "city": rng.choice(["a", "b", "c"], size=n),
            "churned": rng.integers(0, 2, size=n),
        }
    )


def test_automatic_choice_and_scipy_agreement() -> None:
    ref = _reference()
    cur = _reference(3_000, seed=1)
    cur["x"] += 0.5
    report = compute_drift(build_profile(ref), cur)
    stat = {c.column: c.statistic for c in report.columns}
    assert stat == {"x": "ks", "y": "ks", "plan": "chi2", "city": "chi2", "churned": "z"}
    x = report.column("x")
    expected = stats.ks_2samp(ref["x"], cur["x"])
    assert x.value == pytest.approx(expected.statistic, abs=1e-12)
    assert x.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert report.drifted_columns == ("x",)
    assert report.dataset_drifted
    tested = [c for c in report.columns if c.pvalue is not None]
    np.testing.assert_allclose(
        np.array([c.qvalue for c in tested], dtype=np.float64),
        benjamini_hochberg(np.array([c.pvalue for c in tested], dtype=np.float64)),
    )


def test_no_drift_gives_no_verdict() -> None:
    report = compute_drift(build_profile(_reference()), _reference(3_000, seed=2))
    assert not report.dataset_drifted
    assert report.n_tested == 5 and report.n_drifted == 0


def test_effect_size_floor_stops_trivial_shifts_in_huge_windows() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=400_000)})
    cur = pd.DataFrame({"x": rng.normal(0.03, 1.0, size=400_000)})
    report = compute_drift(build_profile(ref), cur)
    col = report.column("x")
    assert col.pvalue is not None and col.pvalue < 1e-10  # "significant" ...
    assert col.effect_size is not None and col.effect_size < 0.05  # ... but trivial
    assert not col.drifted and not report.dataset_drifted
    strict = compute_drift(build_profile(ref), cur, DriftConfig(effect_size_floors={"ks": 0.0}))
    assert strict.column("x").drifted


def test_overrides_and_forced_statistic() -> None:
    ref, cur = _reference(), _reference(2_000, seed=5)
    profile = build_profile(ref)
    report = compute_drift(profile, cur, DriftConfig(column_stattests={"x": "psi", "city": "js"}))
    assert report.column("x").statistic == "psi" and report.column("x").pvalue is None
    assert report.column("city").statistic == "js"
    forced = compute_drift(profile, cur, DriftConfig(stattest="ks"))
    assert forced.column("x").statistic == "ks"
    assert forced.column("plan").status == "not_applicable"
    with pytest.raises(DriftInputError, match="unknown statistic"):
        DriftConfig(stattest="magic")
    with pytest.raises(DriftInputError, match="unknown column"):
        compute_drift(profile, cur, DriftConfig(column_stattests={"nope": "ks"}))


def test_nan_and_inf_are_counted_excluded_and_reported() -> None:
    ref = _reference()
    cur = _reference(2_000, seed=6)
    cur.loc[:499, "x"] = np.nan
    cur.loc[500:509, "x"] = np.inf
    col = compute_drift(build_profile(ref), cur).column("x")
    assert col.n_current == 2_000 - 510
    assert col.infinite_current == 10
    assert col.missing_rate_current == pytest.approx(0.25)
    assert col.missing_drifted  # 0 % -> 25 % is reported separately ...
    assert not col.drifted  # ... and the values that remain did not drift
    clean = cur["x"][np.isfinite(cur["x"])]
    assert col.value == pytest.approx(stats.ks_2samp(ref["x"], clean).statistic, abs=1e-12)


def test_constant_columns() -> None:
    ref = pd.DataFrame({"c": np.full(500, 3.0), "d": np.full(500, 1.0)})
    cur = pd.DataFrame({"c": np.full(400, 3.0), "d": np.full(400, 2.0)})
    profile = build_profile(ref)
    report = compute_drift(profile, cur)
    assert report.column("c").value == 0.0 and not report.column("c").drifted
    assert report.column("d").value == 1.0 and report.column("d").drifted
    w = compute_drift(profile, cur, DriftConfig(stattest="wasserstein")).column("d")
    assert w.value == pytest.approx(1.0) and w.effect_size == np.inf  # reference std is 0
    assert w.drifted and w.to_dict()["effect_size"] is None  # JSON has no infinity


@pytest.mark.parametrize("rows", [0, 1, 29])
def test_empty_or_small_window_is_insufficient_data_never_an_alarm(rows: int) -> None:
    ref = _reference()
    cur = _reference(max(rows, 1), seed=7).iloc[:rows]
    report = compute_drift(build_profile(ref), cur.assign(x=cur["x"] + 100))
    assert report.status == "insufficient_data"
    assert not report.dataset_drifted
    assert {c.status for c in report.columns} == {"insufficient_data"}


def test_all_missing_window_column_is_insufficient() -> None:
    cur = _reference(500, seed=8)
    cur["x"] = np.nan
    col = compute_drift(build_profile(_reference()), cur).column("x")
    assert col.status == "insufficient_data" and not col.drifted
    assert col.missing_rate_current == 1.0 and col.missing_drifted


def test_missing_extra_and_mismatched_columns_are_named() -> None:
    ref = _reference()
    cur = _reference(1_000, seed=9).drop(columns=["y"])
    cur["new"] = 1.0
    cur["x"] = "text"
    cur["city"] = pd.Series(["a", 1] * 500, dtype=object)
    report = compute_drift(build_profile(ref), cur)
    assert report.missing_columns == ("y",)
    assert report.extra_columns == ("new",)
    assert set(report.type_mismatches) == {"x", "city"}
    assert report.column("x").status == "type_mismatch"
    assert report.column("city").status == "invalid_column"
    assert "mixes value types" in (report.column("city").detail or "")
    assert report.n_tested == 2


def test_window_as_merged_profile_matches_data_frame_window() -> None:
    ref = _reference()
    cur = _reference(3_000, seed=10)
    cur["x"] += 0.2
    profile = build_profile(ref)
    parts = [build_profile(cur.iloc[i : i + 1_000], like=profile) for i in (0, 1_000, 2_000)]
    from keelwatch.monitoring.drift import merge_profiles

    merged = merge_profiles(merge_profiles(parts[0], parts[1]), parts[2])
    a, b = compute_drift(profile, cur), compute_drift(profile, merged)
    assert a.to_dict() == b.to_dict()


def test_report_to_dict_is_json_ready() -> None:
    import json

    report = compute_drift(build_profile(_reference()), _reference(1_000, seed=11))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["columns"][0]["statistic"] == "ks"
    assert {"value", "pvalue", "qvalue", "drifted"} <= set(data["columns"][0])
