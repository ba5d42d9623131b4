"""Audit results as ``fairness.*`` signals, and rules on them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from keelwatch.alerting.rules import rule_from_dict
from keelwatch.alerting.signals import known_signal_names
from keelwatch.monitoring.fairness import (
    SIGNAL_NAMES,
    SIGNAL_PREFIX,
    AuditConfig,
    audit_predictions,
    audit_signals,
)
from tests.unit.fairness.conftest import make_data

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_every_defined_gap_becomes_three_signals() -> None:
    data = make_data(4_000, bias=0.4, seed=2)
    y_true = data.y_true.copy()
    y_true[data.sensitive["tier"] == "t0"] = 0  # the tier slice's TPR gaps stay defined
    config = AuditConfig(resamples=100, min_group_size=150)
    result = audit_predictions(
        data.sensitive, data.y_pred, y_true=y_true, score=data.score, config=config
    )
    signals = audit_signals(
        result,
        model="credit",
        version="3",
        observed_at=AT,
        source="audit:7",
        window="24h",
        alias="champion",
    )
    assert {s.name for s in signals} <= SIGNAL_NAMES
    assert all(s.name.startswith(SIGNAL_PREFIX) for s in signals)
    (violations,) = [s for s in signals if s.name == "fairness.violations"]
    assert violations.value == len(result.violations) > 0
    assert violations.labels == {
        "model": "credit",
        "version": "3",
        "window": "24h",
        "alias": "champion",
    }
    defined = [(sl, g) for sl in result.slices for g in sl.gaps if g.value is not None]
    undefined = [g for sl in result.slices for g in sl.gaps if g.value is None]
    assert undefined  # small intersections fall below min_group_size
    assert len(signals) == 1 + 3 * len(defined)
    by_key = {(s.name, s.labels["attribute"]): s.value for s in signals if "attribute" in s.labels}
    for slice_result, gap in defined:
        name = SIGNAL_PREFIX + gap.metric
        assert by_key[(name, slice_result.name)] == gap.value
        assert by_key[(name + ".ci_low", slice_result.name)] == gap.ci_low
        assert by_key[(name + ".ci_high", slice_result.name)] == gap.ci_high
    assert len({s.fingerprint + s.name for s in signals}) == len(signals)


def test_labels_without_window_or_alias() -> None:
    data = make_data(500, seed=4)
    result = audit_predictions(
        {"region": data.sensitive["region"]}, data.y_pred, config=AuditConfig(resamples=20)
    )
    signals = audit_signals(result, model="m", version="1", observed_at=AT, source="file")
    assert signals[0].labels == {"model": "m", "version": "1"}
    assert signals[1].labels == {"model": "m", "version": "1", "attribute": "region"}
    assert [s.name for s in signals] == [
        "fairness.violations",
        "fairness.demographic_parity_difference",
        "fairness.demographic_parity_difference.ci_low",
        "fairness.demographic_parity_difference.ci_high",
        "fairness.demographic_parity_ratio",
        "fairness.demographic_parity_ratio.ci_low",
        "fairness.demographic_parity_ratio.ci_high",
    ]
    assert all(np.isfinite(s.value) for s in signals)


def test_rules_on_fairness_signals_validate() -> None:
    assert known_signal_names() >= SIGNAL_NAMES
    rule = rule_from_dict(
        {
            "name": "eod-corrected",
            "signal": "fairness.equalized_odds_difference.ci_low",
            "matchers": '{attribute="gender&age_band"}',
            "comparison": ">",
            "threshold": 0.1,
        },
        known_signals=known_signal_names(),
    )
    assert rule.signal == "fairness.equalized_odds_difference.ci_low"
