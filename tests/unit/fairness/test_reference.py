"""Point estimates against Fairlearn: per-group metrics (MetricFrame.by_group) and the gaps
(MetricFrame.difference/ratio "between_groups" and fairlearn.metrics' parity functions) on
generated data, for single attributes and for intersections (several sensitive columns)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, mean_absolute_error, precision_score

from keelwatch.monitoring.fairness import AuditConfig, AuditResult, SliceResult, audit_predictions
from tests.unit.fairness.conftest import AuditData, make_data

TOLERANCE = 1e-12
#: Every group enters the gaps, as in Fairlearn (which has no minimum group size).
ALL_GROUPS = AuditConfig(min_group_size=1, resamples=20)


def _mean_prediction(y_true: Any, y_pred: Any) -> float:
    del y_true
    return float(np.mean(y_pred))


def _mean_label(y_true: Any, y_pred: Any) -> float:
    del y_pred
    return float(np.mean(y_true))


def _calibration_gap(y_true: Any, score: Any) -> float:
    return float(np.mean(score) - np.mean(y_true))


BINARY_METRICS: Mapping[str, Callable[..., float]] = {
    "selection_rate": selection_rate,
    "base_rate": _mean_label,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "precision": lambda t, p: precision_score(t, p, zero_division=np.nan),
    "accuracy": accuracy_score,
}
SLICES = [
    combo
    for order in (1, 2, 3)
    for combo in itertools.combinations(("region", "age", "tier"), order)
]


def _features(data: AuditData, attributes: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({a: data.sensitive[a] for a in attributes})


def _slice(result: AuditResult, attributes: tuple[str, ...]) -> SliceResult:
    (found,) = [s for s in result.slices if s.attributes == attributes]
    return found


def _by_group(frame: MetricFrame) -> dict[tuple[str, ...], Mapping[str, float]]:
    table = frame.by_group
    out = {}
    for index, row in table.iterrows():
        key = index if isinstance(index, tuple) else (index,)
        out[tuple(str(k) for k in key)] = row.to_dict()
    return out


@pytest.fixture(scope="module")
def data() -> AuditData:
    return make_data(6_000, seed=11)


@pytest.fixture(scope="module")
def binary(data: AuditData) -> AuditResult:
    return audit_predictions(
        data.sensitive, data.y_pred, y_true=data.y_true, score=data.score, config=ALL_GROUPS
    )


@pytest.mark.parametrize("attributes", SLICES, ids="&".join)
def test_binary_group_metrics_equal_metricframe(
    data: AuditData, binary: AuditResult, attributes: tuple[str, ...]
) -> None:
    features = _features(data, attributes)
    frame = MetricFrame(
        metrics=dict(BINARY_METRICS),
        y_true=data.y_true,
        y_pred=data.y_pred,
        sensitive_features=features,
    )
    scores = MetricFrame(
        metrics={"mean_score": _mean_prediction, "calibration_gap": _calibration_gap},
        y_true=data.y_true,
        y_pred=data.score,
        sensitive_features=features,
    )
    expected = _by_group(frame)
    expected_scores = _by_group(scores)
    ours = _slice(binary, attributes)
    assert [g.key for g in ours.groups] == sorted(expected)
    for group in ours.groups:
        assert group.count == int((features.astype(str) == group.key).all(axis=1).sum())
        reference = {**expected[group.key], **expected_scores[group.key]}
        for metric, value in reference.items():
            got = group.metrics[metric]
            assert got is not None, (group.key, metric)
            assert abs(got - value) <= TOLERANCE, (group.key, metric, got, value)

    gaps = {g.metric: g for g in ours.gaps}
    differences = frame.difference(method="between_groups")
    assert abs(_value(gaps["demographic_parity_difference"]) - differences["selection_rate"]) <= (
        TOLERANCE
    )
    ratio = frame.ratio(method="between_groups")["selection_rate"]
    assert abs(_value(gaps["demographic_parity_ratio"]) - ratio) <= TOLERANCE
    assert abs(_value(gaps["equal_opportunity_difference"]) - differences["tpr"]) <= TOLERANCE
    assert abs(_value(gaps["predictive_parity_difference"]) - differences["precision"]) <= (
        TOLERANCE
    )
    calibration = scores.difference(method="between_groups")["calibration_gap"]
    assert abs(_value(gaps["calibration_gap_difference"]) - calibration) <= TOLERANCE
    eod = max(differences["tpr"], differences["fpr"])
    assert abs(_value(gaps["equalized_odds_difference"]) - eod) <= TOLERANCE


def _value(gap: Any) -> float:
    assert gap.value is not None, gap.reason
    return float(gap.value)


@pytest.mark.parametrize("attributes", SLICES, ids="&".join)
def test_binary_gaps_equal_fairlearn_functions(
    data: AuditData, binary: AuditResult, attributes: tuple[str, ...]
) -> None:
    features = _features(data, attributes)
    gaps = {g.metric: g for g in _slice(binary, attributes).gaps}
    reference = {
        "demographic_parity_difference": demographic_parity_difference,
        "demographic_parity_ratio": demographic_parity_ratio,
        "equalized_odds_difference": equalized_odds_difference,
        "equal_opportunity_difference": equal_opportunity_difference,
    }
    for name, function in reference.items():
        expected = function(data.y_true, data.y_pred, sensitive_features=features)
        assert abs(_value(gaps[name]) - expected) <= TOLERANCE, name
    # The groups named behind a difference are the ones with the largest and smallest rate.
    largest, smallest = gaps["demographic_parity_difference"].groups or ("", "")
    rates = {g.name: g.metrics["selection_rate"] for g in _slice(binary, attributes).groups}
    assert rates[largest] == max(r for r in rates.values() if r is not None)
    assert rates[smallest] == min(r for r in rates.values() if r is not None)


@pytest.mark.parametrize("attributes", [("region",), ("age", "tier"), ("region", "age", "tier")])
def test_regression_equals_metricframe(data: AuditData, attributes: tuple[str, ...]) -> None:
    result = audit_predictions(data.sensitive, data.estimate, y_true=data.target, config=ALL_GROUPS)
    assert result.task == "regression"
    frame = MetricFrame(
        metrics={
            "mean_prediction": _mean_prediction,
            "mean_label": _mean_label,
            "mae": mean_absolute_error,
        },
        y_true=data.target,
        y_pred=data.estimate,
        sensitive_features=_features(data, attributes),
    )
    ours = _slice(result, attributes)
    expected = _by_group(frame)
    for group in ours.groups:
        for metric, value in expected[group.key].items():
            assert abs((group.metrics[metric] or np.inf) - value) <= 1e-12 * max(1, abs(value))
    gaps = {g.metric: g for g in ours.gaps}
    differences = frame.difference(method="between_groups")
    assert abs(_value(gaps["mean_prediction_difference"]) - differences["mean_prediction"]) <= (
        1e-12
    )
    assert abs(_value(gaps["mae_difference"]) - differences["mae"]) <= 1e-12


def test_min_group_size_keeps_small_groups_out_of_the_gaps(data: AuditData) -> None:
    # A small group with an extreme selection rate: reported, never compared.
    region = data.sensitive["region"].astype(object)
    small = np.flatnonzero(region == "west")[:12]
    region[small] = "island"
    y_pred = data.y_pred.copy()
    y_pred[small] = 1
    config = AuditConfig(min_group_size=30, resamples=20, max_order=1)
    result = audit_predictions({"region": region}, y_pred, y_true=data.y_true, config=config)
    groups = {g.name: g for g in result.slices[0].groups}
    assert groups["island"].count == 12
    assert not groups["island"].sufficient
    assert groups["island"].ci == {}
    assert groups["island"].metrics["selection_rate"] == 1.0
    assert all(g.sufficient for n, g in groups.items() if n != "island")
    keep = region != "island"
    gaps = {g.metric: g for g in result.slices[0].gaps}
    for name, function in (
        ("demographic_parity_difference", demographic_parity_difference),
        ("equalized_odds_difference", equalized_odds_difference),
    ):
        expected = function(data.y_true[keep], y_pred[keep], sensitive_features=region[keep])
        assert abs(_value(gaps[name]) - expected) <= TOLERANCE
    assert "island" not in (gaps["demographic_parity_difference"].groups or ())
