"""The signal catalogue rules are checked against names every signal a producer emits."""

from __future__ import annotations

import pytest
from tests.unit.test_signals import _result

from keelwatch.alerting.inbound import ALERTMANAGER_SIGNAL
from keelwatch.alerting.rules import RuleError, rule_from_dict
from keelwatch.alerting.signals import (
    DRIFT_SIGNAL_NAMES,
    drift_result_signals,
    known_signal_names,
    register_signal_names,
)


def test_every_drift_signal_is_in_the_catalogue() -> None:
    result = _result(report={"monitor": "m", "prediction_drifted": True, "target_drifted": True})
    emitted = {s.name for s in drift_result_signals(result)}
    assert emitted == DRIFT_SIGNAL_NAMES  # a full result emits every drift name, no other
    assert emitted <= known_signal_names()


def test_other_producers_are_in_the_catalogue() -> None:
    assert {"anomaly.ewma", "anomaly.cusum", ALERTMANAGER_SIGNAL} <= known_signal_names()


def test_a_rule_on_an_unknown_signal_is_refused_until_its_producer_registers() -> None:
    rule = {"name": "q", "signal": "test.catalogue.extra", "comparison": ">", "threshold": 100}
    with pytest.raises(RuleError, match="unknown signal"):
        rule_from_dict(rule, known_signals=known_signal_names())
    register_signal_names(["test.catalogue.extra"])
    assert rule_from_dict(rule, known_signals=known_signal_names()).signal == "test.catalogue.extra"
