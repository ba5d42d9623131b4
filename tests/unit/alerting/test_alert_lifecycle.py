"""The alert state machine through evaluate(): each rule of pending → firing → resolved."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from keelwatch.alerting.evaluation import Evaluation, RuleIndex, evaluate, latest_per_series
from keelwatch.alerting.lifecycle import acknowledge, alert_fingerprint, alert_labels
from keelwatch.alerting.rules import rule_from_dict
from keelwatch.entities.alerts import Alert, AlertState, Rule
from keelwatch.entities.signals import Signal
from keelwatch.errors import ConflictError, InvalidInputError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rule(hold: str = "0s", **extra: object) -> Rule:
    return rule_from_dict(
        {
            "name": "p-low",
            "signal": "drift.column.p_value",
            "matchers": '{model="m"}',
            "comparison": "<",
            "threshold": 0.05,
            "for": hold,
            "labels": {"team": "ml"},
            "annotations": {"summary": "{{ $labels.column }} p={{ $value }}"},
            **extra,
        }
    )


def sig(value: float, minutes: float = 0, column: str = "f1", model: str = "m") -> Signal:
    return Signal(
        "drift.column.p_value", value, {"model": model, "column": column}, at(minutes), "test"
    )


def run(
    rules: list[Rule], steps: Sequence[tuple[float, list[Signal]]], **kw: bool
) -> list[Evaluation]:
    alerts: dict[str, Alert] = {}
    out = []
    for minutes, signals in steps:
        result = evaluate(rules, signals, at(minutes), alerts, **kw)
        alerts = result.alerts
        out.append(result)
    return out


def only(result: Evaluation) -> Alert:
    (alert,) = result.alerts.values()
    return alert


def test_for_zero_fires_at_once_with_labels_fingerprint_and_annotations() -> None:
    (result,) = run([rule()], [(0, [sig(0.01)])])
    alert = only(result)
    assert alert.state is AlertState.FIRING
    assert alert.labels == {
        "alertname": "p-low",
        "column": "f1",
        "model": "m",
        "severity": "warning",
        "team": "ml",
    }
    assert alert.fingerprint == alert_fingerprint(alert.labels)
    assert len(alert.fingerprint) == 16
    assert alert.annotations == {"summary": "f1 p=0.01"}
    assert (alert.episode, alert.fired_at, alert.active_since) == (1, T0, T0)
    (transition,) = result.transitions
    assert (transition.from_state, transition.to_state) == (None, AlertState.FIRING)


def test_pending_then_firing_once_for_has_elapsed() -> None:
    steps = [(0, [sig(0.01)]), (4, [sig(0.02, 4)]), (5, [sig(0.03, 5)]), (6, [sig(0.01, 6)])]
    results = run([rule("5m")], steps)
    states = [only(r).state for r in results]
    assert states == [AlertState.PENDING] * 2 + [AlertState.FIRING] * 2
    assert only(results[2]).fired_at == at(5)
    assert [(t.from_state, t.to_state) for r in results for t in r.transitions] == [
        (None, AlertState.PENDING),
        (AlertState.PENDING, AlertState.FIRING),
    ]
    assert only(results[3]).value == 0.01  # value and annotations follow the latest signal
    assert only(results[3]).annotations["summary"] == "f1 p=0.01"


def test_pending_that_stops_becomes_inactive_not_resolved() -> None:
    results = run([rule("5m")], [(0, [sig(0.01)]), (2, [sig(0.5, 2)])])
    assert only(results[1]).state is AlertState.INACTIVE
    assert only(results[1]).resolved_at is None


def test_firing_resolves_and_keeps_history_then_a_new_episode_starts() -> None:
    steps = [(0, [sig(0.01)]), (1, [sig(0.5, 1)]), (2, [sig(0.5, 2)]), (3, [sig(0.01, 3)])]
    results = run([rule()], steps)
    resolved = only(results[1])
    assert (resolved.state, resolved.resolved_at, resolved.fired_at) == (
        AlertState.RESOLVED,
        at(1),
        T0,
    )
    assert results[2].transitions == []  # staying resolved is not a transition
    again = only(results[3])
    assert (again.state, again.episode, again.fingerprint) == (
        AlertState.FIRING,
        2,
        resolved.fingerprint,
    )
    assert (again.resolved_at, again.active_since) == (None, at(3))


def test_one_condition_is_one_alert_however_often_evaluated() -> None:
    results = run([rule()], [(m, [sig(0.01, m)]) for m in range(10)])
    assert len(results[-1].alerts) == 1
    assert sum(len(r.transitions) for r in results) == 1


def test_each_series_is_its_own_alert_and_only_the_latest_signal_counts() -> None:
    (result,) = run(
        [rule()],
        [(0, [sig(0.01, 0, "f1"), sig(0.5, 0, "f2"), sig(0.5, -1, "f1"), sig(0.01, -1, "f2")])],
    )
    # f1: latest 0.01 crosses; f2: latest 0.5 does not (its older 0.01 is ignored).
    assert [a.labels["column"] for a in result.alerts.values()] == ["f1"]
    assert len(latest_per_series([sig(0.1, 0), sig(0.2, 1), sig(0.3, 0, "f2")])) == 2


def test_matchers_select_series() -> None:
    (result,) = run([rule()], [(0, [sig(0.01, model="other")])])
    assert result.alerts == {}


def test_rule_labels_override_signal_labels() -> None:
    overriding = rule(labels={"model": "renamed"})
    assert alert_labels(overriding, {"model": "m", "column": "c"})["model"] == "renamed"


def test_missing_series_keeps_state_on_event_but_pending_still_fires() -> None:
    results = run([rule("5m")], [(0, [sig(0.01)]), (6, [])])
    assert only(results[1]).state is AlertState.FIRING
    assert only(results[1]).value == 0.01


def test_missing_series_resolves_on_a_full_tick() -> None:
    results = run([rule()], [(0, [sig(0.01)]), (1, [])], resolve_missing=True)
    assert only(results[1]).state is AlertState.RESOLVED


def test_alerts_of_a_deleted_rule_resolve() -> None:
    first = evaluate([rule()], [sig(0.01)], at(0), {})
    second = evaluate([], [], at(1), first.alerts)
    assert only(second).state is AlertState.RESOLVED


def test_other_rules_alerts_untouched_by_an_unrelated_batch() -> None:
    other = rule_from_dict(
        {"name": "err", "signal": "ops.error_rate", "comparison": ">", "threshold": 0.1}
    )
    first = evaluate([rule(), other], [sig(0.01)], at(0), {})
    rate = Signal("ops.error_rate", 0.5, {"queue": "cpu"}, at(1))
    second = evaluate(RuleIndex([rule(), other]), [rate], at(1), first.alerts)
    assert {a.rule_name: a.state for a in second.alerts.values()} == {
        "p-low": AlertState.FIRING,
        "err": AlertState.FIRING,
    }
    assert [a.rule_name for a in second.changed] == ["err"]


@pytest.mark.parametrize(
    ("comparison", "value", "fires"),
    [
        (">", 2, True),
        (">", 1, False),
        (">=", 1, True),
        ("<", 0, True),
        ("<=", 1, True),
        ("==", 1, True),
        ("==", 1.5, False),
        ("!=", 1, False),
        ("!=", 2, True),
    ],
)
def test_comparisons(comparison: str, value: float, fires: bool) -> None:
    r = rule_from_dict(
        {"name": "c", "signal": "ops.error_rate", "comparison": comparison, "threshold": 1}
    )
    result = evaluate([r], [Signal("ops.error_rate", value, {}, T0)], T0, {})
    assert bool(result.alerts) is fires


def test_acknowledgement_is_per_episode() -> None:
    first = evaluate([rule()], [sig(0.01)], at(0), {})
    acked = acknowledge(only(first), "ana", at(1), "looking")
    assert acked.acknowledgement is not None and acked.acknowledgement.assignee == "ana"
    still = evaluate([rule()], [sig(0.02, 2)], at(2), {acked.fingerprint: acked})
    assert only(still).acknowledgement == acked.acknowledgement
    resolved = evaluate([rule()], [sig(0.5, 3)], at(3), still.alerts)
    with pytest.raises(ConflictError):
        acknowledge(only(resolved), "bo", at(4))
    again = evaluate([rule()], [sig(0.01, 5)], at(5), resolved.alerts)
    assert only(again).acknowledgement is None
    with pytest.raises(InvalidInputError):
        acknowledge(only(again), "  ", at(6))
