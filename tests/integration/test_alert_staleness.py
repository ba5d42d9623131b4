"""Stale series on the beat tick (SQLite and PostgreSQL): an ``ops.*`` series whose newest point
is older than its prefix's ``stale_after`` no longer counts, so its alert resolves, while a
drift series (no entry) keeps its alert however old its point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import keelwatch.monitoring.ops  # noqa: F401 - registers the ops.* signal names
from keelwatch.alerting import service
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities.alerts import AlertState
from keelwatch.entities.signals import Signal
from keelwatch.settings import AlertingSettings
from keelwatch.storage import alerts as store
from keelwatch.storage.db import Database
from keelwatch.storage.signals import write_signals

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RULES = """\
rules:
  - name: errors
    signal: ops.error_rate
    comparison: ">"
    threshold: 0.2
    severity: critical
  - name: drifted
    signal: drift.dataset.drifted
    comparison: ">="
    threshold: 1
"""
STALE = {p: timedelta(seconds=s) for p, s in AlertingSettings().stale_after_s.items()}
LABELS = {"model": "credit", "version": "2"}


def _states(database: Database) -> dict[str, AlertState]:
    with database.session() as session:
        return {a.rule_name: a.state for a in service.list_alerts(session)}


def test_stale_ops_series_resolve_and_drift_series_do_not(database: Database) -> None:
    with database.session() as session:
        service.apply_rules(session, RULES, "ann", known_signal_names(), now=T0)
        write_signals(
            session,
            [
                Signal("ops.error_rate", 0.5, {**LABELS, "queue": "cpu"}, T0, source="ops_tick:1"),
                Signal("drift.dataset.drifted", 1.0, LABELS, T0, source="drift_result:1"),
            ],
        )
    with database.session() as session:
        service.evaluate_tick(session, T0 + timedelta(seconds=30), stale_after=STALE)
    assert _states(database) == {"errors": AlertState.FIRING, "drifted": AlertState.FIRING}

    # Still inside the ops staleness (300 s by default): both keep firing.
    with database.session() as session:
        service.evaluate_tick(session, T0 + timedelta(seconds=299), stale_after=STALE)
    assert _states(database) == {"errors": AlertState.FIRING, "drifted": AlertState.FIRING}

    # The ops tick stopped writing (the model stopped running): its alert resolves; the drift
    # result of a day ago is still the latest verdict, so its alert stays.
    later = T0 + timedelta(days=1)
    with database.session() as session:
        service.evaluate_tick(session, later, stale_after=STALE)
    assert _states(database) == {"errors": AlertState.RESOLVED, "drifted": AlertState.FIRING}
    with database.session() as session:
        (errors,) = [a for a in store.list_alerts(session) if a.rule_name == "errors"]
        history = store.history(session, errors.fingerprint)
    assert [t.to_state for t in history] == [AlertState.FIRING, AlertState.RESOLVED]


def test_without_staleness_every_series_counts(database: Database) -> None:
    with database.session() as session:
        service.apply_rules(session, RULES, "ann", known_signal_names(), now=T0)
        write_signals(
            session,
            [Signal("ops.error_rate", 0.5, {**LABELS, "queue": "cpu"}, T0, source="ops_tick:1")],
        )
    with database.session() as session:
        service.evaluate_tick(session, T0 + timedelta(days=1))
    assert _states(database) == {"errors": AlertState.FIRING}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ops.error_rate", timedelta(seconds=300)),
        ("anomaly.ewma", timedelta(seconds=900)),
        ("drift.dataset.drifted", None),
    ],
)
def test_longest_prefix_wins(name: str, expected: timedelta | None) -> None:
    table = {**STALE, "op": timedelta(seconds=1)}
    assert service.staleness_of(name, table) == expected
