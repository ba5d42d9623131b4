"""The alert state machine: pending → firing → resolved, one fingerprint per condition.

An alert's fingerprint is a hash of its label set (``alertname`` = the rule's name,
``severity``, the rule's labels and the signal's labels), so one condition is one alert however
often it is evaluated. Each time the condition starts again after a resolution a new *episode*
begins (``episode`` + 1): actions key their idempotency on (fingerprint, episode).

Rules, as Prometheus applies them:

- condition true, no active alert → ``pending`` (``firing`` at once when ``for`` is 0);
- ``pending`` and the condition has held for ``for`` (now - active_since >= for) → ``firing``;
- ``pending`` and the condition stops → ``inactive`` (never notified, nothing to resolve);
- ``firing`` and the condition stops → ``resolved`` (kept, with its history);
- an acknowledgement belongs to an episode: a new episode starts unacknowledged.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from keelwatch.alerting.templates import render_template
from keelwatch.entities.alerts import (
    Acknowledgement,
    Alert,
    AlertState,
    AlertTransition,
    Comparison,
    Rule,
)
from keelwatch.errors import ConflictError, InvalidInputError

__all__ = [
    "acknowledge",
    "alert_fingerprint",
    "alert_labels",
    "carry",
    "condition_holds",
    "hold",
    "release",
    "unacknowledge",
]

_COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}


def condition_holds(rule: Rule, value: float) -> bool:
    """``value <comparison> threshold`` (NaN never holds)."""
    return _COMPARE[rule.comparison](value, rule.threshold)


def alert_labels(rule: Rule, signal_labels: Mapping[str, str]) -> dict[str, str]:
    """The alert's label set: the signal's labels, overridden by the rule's, plus
    ``alertname`` and ``severity``; sorted by name."""
    merged = {**signal_labels, **rule.labels}
    merged["alertname"] = rule.name
    merged["severity"] = rule.severity.value
    return dict(sorted(merged.items()))


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    """Stable id of an alert: the first 16 hex digits of SHA-256 over the ``repr`` of its
    labels as sorted (name, value) pairs (``repr`` quotes and escapes, so no two label sets
    share an encoding)."""
    return hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]


def _rendered(rule: Rule, labels: Mapping[str, str], value: float) -> dict[str, str]:
    return {key: render_template(text, labels, value) for key, text in rule.annotations.items()}


def hold(
    rule: Rule,
    labels: Mapping[str, str],
    value: float,
    now: datetime,
    current: Alert | None,
    fingerprint: str | None = None,
) -> tuple[Alert, AlertTransition | None]:
    """Advance an alert whose condition holds at ``now``; returns it and the transition, if any.

    ``labels`` are the alert's labels (:func:`alert_labels`), ``current`` its previous state,
    ``fingerprint`` the labels' :func:`alert_fingerprint` when the caller already has it.
    """
    annotations = _rendered(rule, labels, value)
    if current is None or not current.state.active:
        if fingerprint is None:
            fingerprint = alert_fingerprint(labels)
        state = AlertState.FIRING if rule.hold_for.total_seconds() <= 0 else AlertState.PENDING
        alert = Alert(
            fingerprint=fingerprint,
            rule_name=rule.name,
            labels=dict(labels),
            annotations=annotations,
            severity=rule.severity,
            state=state,
            value=value,
            episode=(current.episode if current is not None else 0) + 1,
            active_since=now,
            last_evaluated_at=now,
            fired_at=now if state is AlertState.FIRING else None,
            runbook_url=rule.runbook_url,
        )
        return alert, _transition(alert, None if current is None else current.state, now)
    updated = replace(current, value=value, annotations=annotations, last_evaluated_at=now)
    return _promote(rule, updated, now)


def _promote(rule: Rule, alert: Alert, now: datetime) -> tuple[Alert, AlertTransition | None]:
    if alert.state is AlertState.PENDING and now - alert.active_since >= rule.hold_for:
        fired = replace(alert, state=AlertState.FIRING, fired_at=now, last_evaluated_at=now)
        return fired, _transition(fired, AlertState.PENDING, now)
    return alert, None


def carry(rule: Rule, alert: Alert, now: datetime) -> tuple[Alert, AlertTransition | None]:
    """An active alert with no new observation: the condition is taken to still hold, so a
    pending alert still fires once ``for`` has elapsed (the beat tick relies on this)."""
    return _promote(rule, alert, now)


def release(alert: Alert, now: datetime) -> tuple[Alert, AlertTransition | None]:
    """The condition stopped: firing → resolved, pending → inactive; otherwise unchanged."""
    if alert.state is AlertState.FIRING:
        done = replace(alert, state=AlertState.RESOLVED, resolved_at=now, last_evaluated_at=now)
        return done, _transition(done, AlertState.FIRING, now)
    if alert.state is AlertState.PENDING:
        dropped = replace(alert, state=AlertState.INACTIVE, last_evaluated_at=now)
        return dropped, _transition(dropped, AlertState.PENDING, now)
    return alert, None


def _transition(alert: Alert, previous: AlertState | None, now: datetime) -> AlertTransition:
    return AlertTransition(
        fingerprint=alert.fingerprint,
        rule_name=alert.rule_name,
        episode=alert.episode,
        from_state=previous,
        to_state=alert.state,
        at=now,
        value=alert.value,
    )


def acknowledge(alert: Alert, assignee: str, at: datetime, comment: str = "") -> Alert:
    """A person takes the alert. Only an active (pending or firing) alert can be acknowledged;
    acknowledging again replaces the assignee (a hand-over)."""
    if not assignee.strip():
        raise InvalidInputError("an acknowledgement needs an assignee")
    if at.tzinfo is None:
        raise InvalidInputError("acknowledgement time must be timezone-aware")
    if not alert.state.active:
        raise ConflictError(
            f"alert {alert.fingerprint} is {alert.state.value}; only pending or firing alerts "
            "can be acknowledged"
        )
    return replace(alert, acknowledgement=Acknowledgement(assignee.strip(), at, comment))


def unacknowledge(alert: Alert) -> Alert:
    """Give the alert back (no assignee)."""
    return replace(alert, acknowledgement=None)
