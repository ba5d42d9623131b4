"""Alert store: rules, alerts, their transition history, silences.

Every function takes the caller's session and never commits (the caller owns the transaction).
Rows become entities (:class:`~keelwatch.entities.alerts.Alert`, ``AlertTransition``,
``Silence``) here and nowhere else; a rule is stored as ``rule_to_dict``'s mapping and rebuilt
with ``rule_from_dict`` (it was validated when it was applied).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keelwatch.alerting.matchers import parse_matchers
from keelwatch.alerting.rules import rule_from_dict, rule_to_dict
from keelwatch.entities.alerts import (
    Acknowledgement,
    Alert,
    AlertState,
    AlertTransition,
    Rule,
    Severity,
    Silence,
)
from keelwatch.storage.models import AlertHistoryRow, AlertRow, AlertRuleRow, SilenceRow

__all__ = [
    "StoredRule",
    "delete_rule",
    "fingerprints_with_prefix",
    "get_alert",
    "get_rule",
    "get_silence",
    "history",
    "list_alerts",
    "list_rules",
    "list_silences",
    "load_alerts",
    "save_alerts",
    "save_silence",
    "save_transitions",
    "upsert_rule",
]


@dataclass(frozen=True)
class StoredRule:
    """A rule with who wrote it and when."""

    rule: Rule
    source: str
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


# --- rules -------------------------------------------------------------------------------------


def _to_stored_rule(row: AlertRuleRow) -> StoredRule:
    return StoredRule(
        rule=rule_from_dict(dict(row.definition)),
        source=row.source,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def upsert_rule(session: Session, rule: Rule, *, source: str, actor: str, at: datetime) -> str:
    """Insert or replace the rule named ``rule.name``; returns ``created``, ``updated`` or
    ``unchanged`` (same definition: the row is left as it was)."""
    definition = rule_to_dict(rule)
    row = session.scalars(select(AlertRuleRow).where(AlertRuleRow.name == rule.name)).first()
    if row is None:
        session.add(
            AlertRuleRow(
                name=rule.name,
                definition=definition,
                source=source,
                created_by=actor,
                created_at=at,
                updated_by=actor,
                updated_at=at,
            )
        )
        session.flush()
        return "created"
    if row.definition == definition:
        return "unchanged"
    row.definition = definition
    row.source = source
    row.updated_by = actor
    row.updated_at = at
    session.flush()
    return "updated"


def get_rule(session: Session, name: str) -> StoredRule | None:
    """The rule named ``name``, or None."""
    row = session.scalars(select(AlertRuleRow).where(AlertRuleRow.name == name)).first()
    return None if row is None else _to_stored_rule(row)


def list_rules(session: Session, *, signals: Collection[str] | None = None) -> list[StoredRule]:
    """Every rule by name, or only those watching one of ``signals``."""
    rows = session.scalars(select(AlertRuleRow).order_by(AlertRuleRow.name))
    stored = [_to_stored_rule(row) for row in rows]
    if signals is None:
        return stored
    return [s for s in stored if s.rule.signal in signals]


def delete_rule(session: Session, name: str) -> bool:
    """Delete the rule ``name``; True if there was one. Its alerts stay (and are resolved by
    the next tick, since no rule holds them any more)."""
    result = session.execute(delete(AlertRuleRow).where(AlertRuleRow.name == name))
    return bool(getattr(result, "rowcount", 0))


# --- alerts ------------------------------------------------------------------------------------


def to_alert(row: AlertRow) -> Alert:
    """ORM row → entity."""
    ack = None
    if row.acknowledged_by is not None and row.acknowledged_at is not None:
        ack = Acknowledgement(
            row.acknowledged_by, row.acknowledged_at, row.acknowledged_comment or ""
        )
    return Alert(
        fingerprint=row.fingerprint,
        rule_name=row.rule_name,
        labels={str(k): str(v) for k, v in (row.labels or {}).items()},
        annotations={str(k): str(v) for k, v in (row.annotations or {}).items()},
        severity=Severity(row.severity),
        state=AlertState(row.state),
        value=row.value,
        episode=row.episode,
        active_since=row.active_at,
        last_evaluated_at=row.last_evaluated_at,
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        runbook_url=row.runbook_url,
        acknowledgement=ack,
    )


def _fill(row: AlertRow, alert: Alert) -> None:
    row.rule_name = alert.rule_name
    row.labels = dict(alert.labels)
    row.annotations = dict(alert.annotations)
    row.severity = alert.severity.value
    row.state = alert.state.value
    row.value = alert.value
    row.episode = alert.episode
    row.runbook_url = alert.runbook_url
    row.active_at = alert.active_since
    row.fired_at = alert.fired_at
    row.resolved_at = alert.resolved_at
    row.last_evaluated_at = alert.last_evaluated_at
    ack = alert.acknowledgement
    row.acknowledged_by = None if ack is None else ack.assignee
    row.acknowledged_at = None if ack is None else ack.at
    row.acknowledged_comment = None if ack is None else ack.comment


def load_alerts(
    session: Session, *, rule_names: Collection[str] | None = None, for_update: bool = False
) -> dict[str, Alert]:
    """Alerts by fingerprint (of ``rule_names`` only, when given). ``for_update`` locks the
    rows on PostgreSQL so two evaluators serialise instead of overwriting each other."""
    query = select(AlertRow)
    if rule_names is not None:
        query = query.where(AlertRow.rule_name.in_(list(rule_names)))
    if for_update:
        query = query.with_for_update()
    return {row.fingerprint: to_alert(row) for row in session.scalars(query)}


def save_alerts(session: Session, alerts: Iterable[Alert]) -> None:
    """Insert or update each alert by fingerprint (a new fingerprint inserts a row; a second
    writer inserting the same one fails on the unique constraint instead of duplicating it)."""
    wanted = {a.fingerprint: a for a in alerts}
    if not wanted:
        return
    rows = {
        row.fingerprint: row
        for row in session.scalars(select(AlertRow).where(AlertRow.fingerprint.in_(list(wanted))))
    }
    for fingerprint, alert in wanted.items():
        row = rows.get(fingerprint)
        if row is None:
            row = AlertRow(fingerprint=fingerprint)
            session.add(row)
        _fill(row, alert)
    session.flush()


def get_alert(session: Session, fingerprint: str) -> Alert | None:
    """The alert with ``fingerprint``, or None."""
    row = session.scalars(select(AlertRow).where(AlertRow.fingerprint == fingerprint)).first()
    return None if row is None else to_alert(row)


def fingerprints_with_prefix(session: Session, prefix: str, *, limit: int = 2) -> list[str]:
    """Up to ``limit`` fingerprints starting with ``prefix`` (the CLI's short fingerprints)."""
    query = select(AlertRow.fingerprint).where(AlertRow.fingerprint.startswith(prefix))
    return list(session.scalars(query.order_by(AlertRow.fingerprint).limit(limit)))


def list_alerts(
    session: Session,
    *,
    states: Collection[AlertState] | None = None,
    rule_name: str | None = None,
    limit: int = 500,
) -> list[Alert]:
    """Alerts, most recently evaluated first, optionally by state and rule."""
    query = select(AlertRow).order_by(AlertRow.last_evaluated_at.desc(), AlertRow.id.desc())
    if states is not None:
        query = query.where(AlertRow.state.in_([s.value for s in states]))
    if rule_name is not None:
        query = query.where(AlertRow.rule_name == rule_name)
    return [to_alert(row) for row in session.scalars(query.limit(limit))]


def save_transitions(session: Session, transitions: Iterable[AlertTransition]) -> int:
    """Append history rows; returns how many."""
    rows = [
        AlertHistoryRow(
            fingerprint=t.fingerprint,
            rule_name=t.rule_name,
            episode=t.episode,
            from_state=None if t.from_state is None else t.from_state.value,
            to_state=t.to_state.value,
            value=t.value,
            at=t.at,
        )
        for t in transitions
    ]
    session.add_all(rows)
    session.flush()
    return len(rows)


def history(session: Session, fingerprint: str) -> list[AlertTransition]:
    """Every transition of one alert, oldest first."""
    query = (
        select(AlertHistoryRow)
        .where(AlertHistoryRow.fingerprint == fingerprint)
        .order_by(AlertHistoryRow.at, AlertHistoryRow.id)
    )
    return [
        AlertTransition(
            fingerprint=row.fingerprint,
            rule_name=row.rule_name,
            episode=row.episode,
            from_state=None if row.from_state is None else AlertState(row.from_state),
            to_state=AlertState(row.to_state),
            at=row.at,
            value=row.value,
        )
        for row in session.scalars(query)
    ]


# --- silences ----------------------------------------------------------------------------------


def to_silence(row: SilenceRow) -> Silence:
    """ORM row → entity (matchers are stored as their text, e.g. ``model="credit"``)."""
    matchers = tuple(m for text in row.matchers for m in parse_matchers(text))
    return Silence(
        id=row.id,
        matchers=matchers,
        author=row.author,
        comment=row.comment,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        ends_when_resolved=row.ends_when_resolved,
    )


def save_silence(
    session: Session,
    silence: Silence,
    *,
    at: datetime,
    expired_by: str | None = None,
) -> None:
    """Insert a silence, or update its end (``expired_by`` names who ended it early)."""
    row = session.get(SilenceRow, silence.id)
    if row is None:
        row = SilenceRow(id=silence.id, created_at=at)
        session.add(row)
    row.matchers = [str(m) for m in silence.matchers]
    row.author = silence.author
    row.comment = silence.comment
    row.starts_at = silence.starts_at
    row.ends_at = silence.ends_at
    row.ends_when_resolved = silence.ends_when_resolved
    if expired_by is not None:
        row.expired_by = expired_by
        row.expired_at = at
    session.flush()


def get_silence(session: Session, silence_id: str) -> Silence | None:
    """The silence ``silence_id``, or None."""
    row = session.get(SilenceRow, silence_id)
    return None if row is None else to_silence(row)


def list_silences(session: Session, *, active_at: datetime | None = None) -> list[Silence]:
    """Silences, newest first; with ``active_at`` only those not yet ended at that time."""
    query = select(SilenceRow).order_by(SilenceRow.created_at.desc(), SilenceRow.id)
    if active_at is not None:
        query = query.where(SilenceRow.ends_at > active_at)
    return [to_silence(row) for row in session.scalars(query)]
