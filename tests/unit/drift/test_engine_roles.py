"""Prediction/target roles, statistics reported alongside, and per-column floors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keelwatch.monitoring.drift import (
    DriftConfig,
    DriftInputError,
    build_profile,
    compute_drift,
    load_profile,
    merge_profiles,
    save_profile,
)
from keelwatch.monitoring.drift import statistics as st

ROLES = {"score": "prediction", "label": "target"}


def _data(n: int, seed: int, x_shift: float = 0.0, score_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(x_shift, 1.0, n)
    return pd.DataFrame(
        {
            "x": x,
            "z": rng.normal(size=n),
            "score": 1 / (1 + np.exp(-(x + rng.normal(score_shift, 0.5, n)))),
            "label": (rng.random(n) < 0.3 + score_shift / 5).astype(int),
        }
    )


def test_roles_are_reported_apart_and_only_features_decide_dataset_drift() -> None:
    profile = build_profile(_data(5_000, 0), roles=ROLES)  # type: ignore[arg-type]
    assert [c.role for c in profile.columns.values()] == [
        "feature",
        "feature",
        "prediction",
        "target",
    ]
    report = compute_drift(profile, _data(4_000, 1, score_shift=1.0))
    assert report.prediction_drifted is True and report.target_drifted is True
    assert report.dataset_drifted is False and report.n_tested == 2
    assert report.column("score").role == "prediction" and report.column("score").drifted
    # Each role is adjusted alone: a single prediction column keeps its raw p-value as q.
    assert report.column("score").qvalue == report.column("score").pvalue
    data = report.to_dict()
    assert data["prediction_drifted"] is True and data["columns"][2]["role"] == "prediction"

    quiet = compute_drift(profile, _data(4_000, 2))
    assert (quiet.prediction_drifted, quiet.target_drifted, quiet.dataset_drifted) == (
        False,
        False,
        False,
    )


def test_window_without_labels_is_insufficient_for_the_target_only() -> None:
    profile = build_profile(_data(5_000, 0), roles=ROLES)  # type: ignore[arg-type]
    window = _data(4_000, 3, x_shift=0.5).drop(columns=["label"])
    report = compute_drift(profile, window)
    label = report.column("label")
    assert label.status == "insufficient_data" and "no labels" in (label.detail or "")
    assert report.target_drifted is None
    assert report.missing_columns == ()
    assert report.dataset_drifted is True and report.prediction_drifted is not None


def test_profile_without_roles_reports_none_and_old_files_load_as_features(tmp_path: Path) -> None:
    plain = build_profile(_data(2_000, 0))
    report = compute_drift(plain, _data(2_000, 1))
    assert report.prediction_drifted is None and report.target_drifted is None
    with_roles = build_profile(_data(2_000, 0), roles=ROLES)  # type: ignore[arg-type]
    loaded = load_profile(save_profile(with_roles, tmp_path / "p.npz"))
    assert {c.name: c.role for c in loaded.columns.values()} == {
        "x": "feature",
        "z": "feature",
        "score": "prediction",
        "label": "target",
    }
    # A window profile built like= the reference inherits the roles; merging keeps them.
    part = build_profile(_data(1_000, 5), like=with_roles)
    assert part.columns["label"].role == "target"
    assert merge_profiles(part, part).columns["score"].role == "prediction"
    other = build_profile(_data(1_000, 5), like=with_roles, roles={"score": "feature"})
    with pytest.raises(DriftInputError, match="a prediction in one profile, a feature"):
        merge_profiles(part, other)
    with pytest.raises(DriftInputError, match="unknown column"):
        build_profile(_data(100, 0), roles={"nope": "target"})
    with pytest.raises(DriftInputError, match="unknown column role"):
        build_profile(_data(100, 0), roles={"x": "label"})  # type: ignore[dict-item]


def test_extra_statistics_share_the_pass_and_never_change_the_verdict() -> None:
    ref, cur = _data(6_000, 0), _data(5_000, 1, x_shift=0.2)
    profile = build_profile(ref)
    base = compute_drift(profile, cur, DriftConfig(stattest="psi"))
    both = compute_drift(profile, cur, DriftConfig(stattest="psi", extra_stattests=("kl", "ks")))
    for plain, with_extra in zip(base.columns, both.columns, strict=True):
        assert replace(with_extra, extra={}) == plain
    x = both.column("x")
    assert set(x.extra) == {"kl", "ks"}
    kl_alone = compute_drift(profile, cur, DriftConfig(stattest="kl")).column("x")
    assert x.extra["kl"]["value"] == kl_alone.value
    expected = stats.ks_2samp(ref["x"], cur["x"])
    assert x.extra["ks"]["value"] == pytest.approx(expected.statistic, abs=1e-12)
    assert x.extra["ks"]["pvalue"] == pytest.approx(expected.pvalue, rel=1e-9)
    # Distances on the histogram equal the statistics module on the same counts.
    counts = np.histogram(cur["x"], np.r_[-np.inf, profile.columns["x"].numeric.bin_edges, np.inf])  # type: ignore[union-attr]
    assert x.value == pytest.approx(
        st.population_stability_index(counts[0], profile.columns["x"].numeric.bin_counts).value  # type: ignore[union-attr]
    )
    # A statistic that does not apply to a kind is skipped for that column, not an error.
    cats = pd.DataFrame({"c": np.random.default_rng(0).choice(["a", "b", "c"], 500)})
    res = compute_drift(build_profile(cats), cats, DriftConfig(extra_stattests=("ks", "psi")))
    assert set(res.column("c").extra) == {"psi"}
    with pytest.raises(DriftInputError, match="unknown statistic"):
        DriftConfig(extra_stattests=("magic",))


def test_per_column_effect_size_floor() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"a": rng.normal(size=20_000), "b": rng.normal(size=20_000)})
    cur = pd.DataFrame({"a": rng.normal(0.3, 1, 20_000), "b": rng.normal(0.3, 1, 20_000)})
    profile = build_profile(ref)
    default = compute_drift(profile, cur)
    assert default.column("a").drifted and default.column("b").drifted
    strict = compute_drift(profile, cur, DriftConfig(column_effect_size_floors={"b": 0.5}))
    assert strict.column("a").drifted and not strict.column("b").drifted
    assert strict.column("b").effect_size_floor == 0.5
    with pytest.raises(DriftInputError, match="unknown column"):
        compute_drift(profile, cur, DriftConfig(column_effect_size_floors={"zz": 0.1}))
    with pytest.raises(DriftInputError, match="finite"):
        DriftConfig(column_effect_size_floors={"a": float("nan")})


def test_mapping_windows_must_have_equal_lengths() -> None:
    profile = build_profile(_data(500, 0))
    with pytest.raises(DriftInputError, match="different lengths"):
        compute_drift(profile, {"x": np.zeros(10), "z": np.zeros(11)})


def test_mapping_of_lists_is_accepted_like_arrays() -> None:
    data = _data(800, 0)
    as_lists = {name: data[name].tolist() for name in data.columns}
    profile = build_profile(as_lists)
    assert profile.rows == 800 and profile.columns["x"].kind == "numeric"
    assert compute_drift(profile, as_lists) == compute_drift(profile, data)
