"""The alert store and the engine service on SQLite and PostgreSQL: rules, alerts and their
history, silences, acknowledgements, audited; rule errors with their position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from keelwatch.alerting import service
from keelwatch.alerting.rules import RuleError, rule_from_dict
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities.alerts import AlertState, AlertTransition
from keelwatch.entities.signals import Signal
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.storage import alerts as store
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.signals import write_signals

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RULES = """\
rules:
  - name: column-drift
    signal: drift.column.p_value
    matchers: '{model="credit", column=~"f[0-9]+"}'
    comparison: "<"
    threshold: 0.05
    for: 5m
    severity: warning
    annotations:
      summary: "{{ $labels.column }} drifted (p={{ $value }})"
  - name: dataset-drift
    signal: drift.dataset.drifted
    comparison: ">="
    threshold: 1
    severity: critical
"""
F3 = {"model": "credit", "version": "2", "column": "f3"}


def _p(value: float, at: datetime, labels: dict[str, str] = F3) -> Signal:
    return Signal("drift.column.p_value", value, labels, at, source="drift_result:1")


def test_rules_apply_upsert_list_delete_audited(database: Database) -> None:
    with database.session() as session:
        applied = service.apply_rules(
            session, RULES, "ann", known_signal_names(), now=T0, source="rules.yaml"
        )
    assert applied.created == ["column-drift", "dataset-drift"]
    changed = RULES.replace("threshold: 0.05", "threshold: 0.01")
    with database.session() as session:
        again = service.apply_rules(session, changed, "bob", known_signal_names(), now=T0)
        stored = {s.rule.name: s for s in service.list_rules(session)}
    assert (again.updated, again.unchanged) == (["column-drift"], ["dataset-drift"])
    assert stored["column-drift"].rule.threshold == 0.01
    assert stored["column-drift"].rule.hold_for == timedelta(minutes=5)
    assert [str(m) for m in stored["column-drift"].rule.matchers] == [
        'model="credit"',
        'column=~"f[0-9]+"',
    ]
    assert (stored["column-drift"].created_by, stored["column-drift"].updated_by) == ("ann", "bob")
    assert stored["dataset-drift"].source == "rules.yaml"  # unchanged rules keep their row
    with database.session() as session:
        service.delete_rule(session, "dataset-drift", "bob", now=T0)
        with pytest.raises(NotFoundError, match="dataset-drift"):
            service.delete_rule(session, "dataset-drift", "bob", now=T0)
    with database.session() as session:
        assert [s.rule.name for s in service.list_rules(session)] == ["column-drift"]
        applies = list_audit(session, action="rule.apply")
        deletes = list_audit(session, action="rule.delete")
    assert [a.actor for a in applies] == ["bob", "ann"]
    assert applies[0].details["updated"] == ["column-drift"]
    assert [(d.actor, d.target) for d in deletes] == [("bob", "rule:dataset-drift")]


def test_a_bad_rule_is_refused_with_its_position_and_nothing_is_written(
    database: Database,
) -> None:
    bad = RULES.replace('column=~"f[0-9]+"', 'column=~"f[0-9"')
    with database.session() as session, pytest.raises(RuleError) as err:
        service.apply_rules(session, bad, "ann", known_signal_names(), now=T0, source="r.yaml")
    assert str(err.value).startswith("r.yaml:4:")
    assert "'column-drift'" in str(err.value) and "'matchers'" in str(err.value)
    unknown = RULES.replace("drift.dataset.drifted", "drift.dataset.drifed")
    with database.session() as session, pytest.raises(RuleError) as err:
        service.apply_rules(session, unknown, "ann", known_signal_names(), now=T0, source="r.yaml")
    assert str(err.value).startswith("r.yaml:12:") and "unknown signal" in str(err.value)
    with database.session() as session, pytest.raises(RuleError, match="threshold"):
        service.apply_rules(
            session,
            [{"name": "x", "signal": "drift.check.error", "comparison": ">", "threshold": "1"}],
            "ann",
            known_signal_names(),
            now=T0,
        )
    with database.session() as session:
        assert service.list_rules(session) == []
        assert list_audit(session, action="rule.apply") == []


def test_evaluate_persists_the_lifecycle_and_its_history(database: Database) -> None:
    """pending at 12:00, firing on the tick at 12:05 (``for: 5m``), resolved when the next
    result is clean; each transition once, however often the tick runs."""
    with database.session() as session:
        service.apply_rules(session, RULES, "ann", known_signal_names(), now=T0)
        write_signals(session, [_p(0.01, T0)])
        first = service.evaluate(session, [_p(0.01, T0)], T0)
    assert [(t.from_state, t.to_state) for t in first.transitions] == [(None, AlertState.PENDING)]
    fingerprint = first.changed[0].fingerprint
    t5 = T0 + timedelta(minutes=5)
    with database.session() as session:
        assert service.evaluate_tick(session, T0 + timedelta(minutes=2)).transitions == []
        fired = service.evaluate_tick(session, t5)
        assert service.evaluate_tick(session, t5 + timedelta(seconds=15)).transitions == []
    assert [t.to_state for t in fired.transitions] == [AlertState.FIRING]
    t9 = T0 + timedelta(minutes=9)
    with database.session() as session:
        write_signals(session, [_p(0.4, t9)])
        service.evaluate_tick(session, t9)
    with database.session() as session:
        alert, transitions = service.show_alert(session, fingerprint)
        assert service.list_alerts(session, states=[AlertState.FIRING]) == []
    # a resolved alert keeps the last value that held (what it fired on)
    assert alert.state is AlertState.RESOLVED and alert.value == 0.01
    assert (alert.active_since, alert.fired_at, alert.resolved_at) == (T0, t5, t9)
    assert alert.labels["alertname"] == "column-drift" and alert.labels["column"] == "f3"
    assert alert.annotations["summary"] == "f3 drifted (p=0.01)"  # rendered when it held
    assert transitions == [
        AlertTransition(fingerprint, "column-drift", 1, None, AlertState.PENDING, T0, 0.01),
        AlertTransition(
            fingerprint, "column-drift", 1, AlertState.PENDING, AlertState.FIRING, t5, 0.01
        ),
        AlertTransition(
            fingerprint, "column-drift", 1, AlertState.FIRING, AlertState.RESOLVED, t9, 0.01
        ),
    ]


def test_history_is_unique_per_episode_and_state(database: Database) -> None:
    """A replayed evaluation cannot write a second 'firing' for one episode."""
    transition = AlertTransition("abc", "r", 1, None, AlertState.FIRING, T0, 1.0)
    with database.session() as session:
        store.save_transitions(session, [transition])
    with pytest.raises(IntegrityError), database.session() as session:
        store.save_transitions(session, [transition])
    with database.session() as session:
        assert store.history(session, "abc") == [transition]


def test_a_deleted_rule_resolves_its_alerts_on_the_tick(database: Database) -> None:
    with database.session() as session:
        service.apply_rules(session, RULES, "ann", known_signal_names(), now=T0)
        drifted = Signal("drift.dataset.drifted", 1, {"model": "credit"}, T0)
        write_signals(session, [drifted])
        fired = service.evaluate(session, [drifted], T0)
    assert [a.state for a in fired.changed] == [AlertState.FIRING]  # for: 0s
    with database.session() as session:
        service.delete_rule(session, "dataset-drift", "ann", now=T0)
    with database.session() as session:
        tick = service.evaluate_tick(session, T0 + timedelta(seconds=15))
    assert [t.to_state for t in tick.transitions] == [AlertState.RESOLVED]


def test_acknowledge_is_audited_and_refused_for_resolved_alerts(database: Database) -> None:
    with database.session() as session:
        service.apply_rules(session, RULES, "ann", known_signal_names(), now=T0)
        drifted = Signal("drift.dataset.drifted", 1, {"model": "credit"}, T0)
        fingerprint = service.evaluate(session, [drifted], T0).changed[0].fingerprint
    with database.session() as session:
        acked = service.acknowledge(session, fingerprint, " carol ", "ann", "on it", now=T0)
    assert acked.acknowledgement is not None and acked.acknowledgement.assignee == "carol"
    with database.session() as session:
        stored = store.get_alert(session, fingerprint)
        entry = list_audit(session, action="alert.ack")[0]
        with pytest.raises(NotFoundError):
            service.acknowledge(session, "nope", "carol", "ann", now=T0)
        with pytest.raises(InvalidInputError, match="assignee"):
            service.acknowledge(session, fingerprint, " ", "ann", now=T0)
    assert stored is not None and stored.acknowledgement == acked.acknowledgement
    assert (entry.actor, entry.target, entry.reason) == ("ann", f"alert:{fingerprint}", "on it")
    assert entry.details == {"assignee": "carol", "episode": 1}
    with database.session() as session:
        clean = Signal("drift.dataset.drifted", 0, {"model": "credit"}, T0 + timedelta(minutes=1))
        service.evaluate(session, [clean], T0 + timedelta(minutes=1))
    with database.session() as session, pytest.raises(ConflictError, match="resolved"):
        service.acknowledge(session, fingerprint, "carol", "ann", now=T0 + timedelta(minutes=2))


def test_silences_create_expire_and_end_when_their_alerts_resolve(database: Database) -> None:
    with database.session() as session:
        service.apply_rules(session, RULES, "ann", known_signal_names(), now=T0)
        kept = service.create_silence(
            session,
            matchers='{model="credit", severity=~"warn.*"}',
            author="ann",
            comment="maintenance",
            starts_at=T0,
            ends_at=T0 + timedelta(hours=2),
            actor="ann",
            now=T0,
        )
        until_resolved = service.create_silence(
            session,
            matchers='{alertname="dataset-drift"}',
            author="bob",
            comment="known shift",
            starts_at=T0,
            ends_at=T0 + timedelta(days=1),
            ends_when_resolved=True,
            actor="bob",
            now=T0,
        )
        with pytest.raises(InvalidInputError, match="column 7"):
            service.create_silence(
                session,
                matchers='{model~"x"}',
                author="ann",
                comment="x",
                starts_at=T0,
                ends_at=T0 + timedelta(hours=1),
                actor="ann",
                now=T0,
            )
    with database.session() as session:
        assert store.get_silence(session, kept.id) == kept  # matchers round-trip as text
        drifted = Signal("drift.dataset.drifted", 1, {"model": "credit"}, T0)
        service.evaluate(session, [drifted], T0)
    t1 = T0 + timedelta(minutes=1)
    with database.session() as session:
        clean = Signal("drift.dataset.drifted", 0, {"model": "credit"}, t1)
        service.evaluate(session, [clean], t1)
    with database.session() as session:
        ended = store.get_silence(session, until_resolved.id)
        expired = service.expire_silence(session, kept.id, "carol", now=t1)
        active = service.list_silences(session, active_at=t1 + timedelta(seconds=1))
    assert ended is not None and ended.ends_at == t1
    assert expired.ends_at == t1 and active == []
    with database.session() as session:
        audit = [(a.actor, a.action, a.target) for a in reversed(list_audit(session))]
        with pytest.raises(NotFoundError):
            service.expire_silence(session, "missing", "carol", now=t1)
    assert audit[-4:] == [
        ("ann", "silence.create", f"silence:{kept.id}"),
        ("bob", "silence.create", f"silence:{until_resolved.id}"),
        (service.ENGINE_ACTOR, "silence.expire", f"silence:{until_resolved.id}"),
        ("carol", "silence.expire", f"silence:{kept.id}"),
    ]


def test_stored_rules_round_trip(database: Database) -> None:
    rule = rule_from_dict(
        {
            "name": "q",
            "signal": "drift.column.q_value",
            "matchers": ['team!="", column!~"id|ts"'],
            "comparison": "<=",
            "threshold": 0.1,
            "for": "1h30m",
            "labels": {"team": "ml"},
            "annotations": {"summary": "{{ $labels.column }}"},
            "runbook_url": "https://runbooks.example/q",
        }
    )
    with database.session() as session:
        assert store.upsert_rule(session, rule, source="api", actor="ann", at=T0) == "created"
    with database.session() as session:
        stored = store.get_rule(session, "q")
        assert store.get_rule(session, "other") is None
    assert stored is not None and stored.rule == rule and stored.created_at == T0
