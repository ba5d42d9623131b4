"""The alert engine on the platform: rules, alerts and silences through storage, the pure
engine in between.

Every function takes the caller's session and never commits; mutations by a person are
audited in that same transaction (``rule.apply``, ``rule.delete``, ``alert.ack``,
``silence.create``, ``silence.expire``). :func:`evaluate` is what runs when a result arrives
(the drift check calls it with the result's signals, in the transaction that stores them) and
on the beat tick (:func:`evaluate_tick`: the latest signal of every series a rule watches, with
``resolve_missing``). After the transaction commits, the caller hands the outcome to
:func:`after_commit_dispatch`, which enqueues notifications and actions.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from keelwatch.alerting.evaluation import evaluate as evaluate_rules
from keelwatch.alerting.lifecycle import acknowledge as acknowledge_alert
from keelwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
from keelwatch.alerting.rules import load_rules_yaml, rules_from_dicts
from keelwatch.alerting.silences import end_resolved_silences, new_silence
from keelwatch.entities.alerts import Alert, AlertState, AlertTransition, Matcher, Rule, Silence
from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.storage import alerts as store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.signals import latest_by_series

if TYPE_CHECKING:
    from keelwatch.contract import TaskSender
    from keelwatch.storage.db import Database

__all__ = [
    "ENGINE_ACTOR",
    "AppliedRules",
    "EvaluationOutcome",
    "acknowledge",
    "after_commit_dispatch",
    "apply_rules",
    "create_silence",
    "delete_rule",
    "evaluate",
    "evaluate_tick",
    "expire_silence",
    "list_alerts",
    "show_alert",
]

logger = logging.getLogger(__name__)

#: The audit actor of what the engine does by itself (ending silences whose alerts resolved).
ENGINE_ACTOR = "alerting:engine"


@dataclass(frozen=True)
class AppliedRules:
    """What :func:`apply_rules` did, rule names per outcome."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvaluationOutcome:
    """The alerts that changed and their transitions, in order, as persisted."""

    changed: list[Alert] = field(default_factory=list)
    transitions: list[AlertTransition] = field(default_factory=list)


# --- rules -------------------------------------------------------------------------------------


def apply_rules(
    session: Session,
    rules: str | Sequence[object],
    actor: str,
    known_signals: Iterable[str] | None,
    *,
    now: datetime,
    source: str = "api",
    reason: str = "",
) -> AppliedRules:
    """Validate rules (a YAML text, or a list of mappings from the API) and upsert them by name.

    A mistake raises :class:`~keelwatch.alerting.rules.RuleError` (an ``InvalidInputError``)
    naming the rule, the field and, for YAML, ``source:line:column``; nothing is written then.
    Rules not named here are left alone (delete them with :func:`delete_rule`).
    """
    catalogue = None if known_signals is None else frozenset(known_signals)
    if isinstance(rules, str):
        parsed = load_rules_yaml(rules, source=source, known_signals=catalogue)
    else:
        parsed = rules_from_dicts(rules, known_signals=catalogue)
    outcome = AppliedRules()
    for rule in parsed:
        kind = store.upsert_rule(session, rule, source=source, actor=actor, at=now)
        getattr(outcome, kind).append(rule.name)
    record_audit(
        session,
        actor=actor,
        action="rule.apply",
        target=",".join(r.name for r in parsed)[:255] or "(none)",
        reason=reason,
        details={
            "source": source,
            "created": outcome.created,
            "updated": outcome.updated,
            "unchanged": outcome.unchanged,
        },
        at=now,
    )
    return outcome


def delete_rule(
    session: Session, name: str, actor: str, *, now: datetime, reason: str = ""
) -> None:
    """Delete a rule (audited ``rule.delete``); its active alerts resolve on the next tick."""
    if not store.delete_rule(session, name):
        raise NotFoundError(f"no alerting rule named {name!r}")
    record_audit(
        session, actor=actor, action="rule.delete", target=f"rule:{name}", reason=reason, at=now
    )


def list_rules(session: Session) -> list[store.StoredRule]:
    """Every rule, by name."""
    return store.list_rules(session)


# --- evaluation --------------------------------------------------------------------------------


def evaluate(
    session: Session,
    signals: Iterable[Signal],
    now: datetime,
    *,
    resolve_missing: bool = False,
    rules: Sequence[Rule] | None = None,
) -> EvaluationOutcome:
    """Run the rules over ``signals`` and persist the alerts that changed and their history.

    Without ``resolve_missing`` (a result arrived) only the rules watching a signal name in the
    batch take part, with their alerts: the others are not this batch's business. With it (the
    tick) every rule and every alert take part, and active alerts whose series has no signal,
    or whose rule is gone, are released. Silences with ``ends_when_resolved`` whose alerts have
    all resolved end here.
    """
    batch = list(signals)
    if rules is None:
        names = None if resolve_missing else {s.name for s in batch}
        rules = [stored.rule for stored in store.list_rules(session, signals=names)]
    if not resolve_missing and not rules:
        return EvaluationOutcome()
    scope = None if resolve_missing else {r.name for r in rules}
    current = store.load_alerts(session, rule_names=scope, for_update=True)
    result = evaluate_rules(rules, batch, now, current, resolve_missing=resolve_missing)
    changed = result.changed
    # Alerts whose only change is a new value or evaluation time are kept up to date too.
    touched = [a for fp, a in result.alerts.items() if current.get(fp) != a]
    store.save_alerts(session, touched)
    store.save_transitions(session, result.transitions)
    if result.transitions:
        _end_resolved_silences(session, list(result.alerts.values()), now)
    return EvaluationOutcome(changed=changed, transitions=list(result.transitions))


def evaluate_or_defer(
    session: Session, signals: Sequence[Signal], now: datetime, *, what: str
) -> EvaluationOutcome | None:
    """:func:`evaluate` on a result's new ``signals`` in a savepoint of the caller's
    transaction; None when there are none or the evaluation failed.

    A failed evaluation (a concurrent writer inserted the same alert first, a rule that no
    longer validates) must never cost the result it was run for: the savepoint rolls back,
    the failure is logged as one line naming ``what`` signals, and the alert tick, which
    evaluates every rule again, picks the signals up.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from keelwatch.errors import KeelwatchError

    if not signals:
        return None
    try:
        with session.begin_nested():
            return evaluate(session, signals, now)
    except (SQLAlchemyError, KeelwatchError) as exc:
        logger.warning(
            "rule evaluation of %d %s signals deferred to the tick: %s",
            len(signals),
            what,
            type(exc).__name__,
        )
        return None


def evaluate_tick(
    session: Session, now: datetime, *, stale_after: Mapping[str, timedelta] | None = None
) -> EvaluationOutcome:
    """The beat tick: the latest signal of every series each rule watches, ``resolve_missing``
    (so pending alerts fire once ``for`` has passed and firing ones whose value is back below
    the threshold resolve).

    ``stale_after`` maps signal-name prefixes to an age (the longest matching prefix wins):
    a series whose newest point is older no longer counts, so its alerts resolve, as a
    Prometheus series goes stale. Without it every series counts however old its point.
    """
    rules = [stored.rule for stored in store.list_rules(session)]
    signals: list[Signal] = []
    for name in sorted({r.signal for r in rules}):
        max_age = staleness_of(name, stale_after or {})
        since = None if max_age is None else now - max_age
        signals.extend(latest_by_series(session, name, since=since))
    return evaluate(session, signals, now, resolve_missing=True, rules=rules)


def staleness_of(name: str, stale_after: Mapping[str, timedelta]) -> timedelta | None:
    """The age after which a point of signal ``name`` is stale: the entry of the longest
    prefix of ``name`` in ``stale_after``, or None (never)."""
    matching = [prefix for prefix in stale_after if name.startswith(prefix)]
    return stale_after[max(matching, key=len)] if matching else None


def _end_resolved_silences(session: Session, alerts: list[Alert], now: datetime) -> None:
    active = [s for s in store.list_silences(session, active_at=now) if s.ends_when_resolved]
    for ended in end_resolved_silences(active, alerts, now):
        store.save_silence(session, ended, at=now, expired_by=ENGINE_ACTOR)
        record_audit(
            session,
            actor=ENGINE_ACTOR,
            action="silence.expire",
            target=f"silence:{ended.id}",
            reason="the alerts it silenced resolved",
            at=now,
        )


def after_commit_dispatch(db: Database, sender: TaskSender, now: datetime) -> None:
    """After an evaluation committed: hand the new alert states to notification delivery and
    to action policies (each opens its own transaction and enqueues after its commit).

    Delivery and actions are idempotent on their own keys, so calling this twice for one
    evaluation (a redelivered task) sends and acts once. A failure here never undoes the
    evaluation: the next tick dispatches again.

    Muted alerts do not act: a firing alert matched by an active silence (the person who
    silenced it is handling it) or inhibited by a firing critical alert of the same model
    (whose own policies act) starts no action; once the silence ends or the inhibiting alert
    resolves, the next call dispatches it if it still fires. An execution already created is
    not undone by a later silence.
    """
    from keelwatch.actions.dispatch import dispatch_for_alerts
    from keelwatch.alerting.delivery import dispatch_notifications
    from keelwatch.alerting.grouping import muted_alerts

    with db.session() as session:
        alerts = store.load_alerts(session)
        silences = store.list_silences(session, active_at=now)
    # Notifications run on every call, changed or not: group_wait, group_interval and
    # repeat_interval come due with time alone.
    dispatch_notifications(db, sender, now, alerts=alerts, silences=silences)
    # Every firing alert, not only the ones that just fired: one whose dispatch was lost (a
    # crash after the evaluation committed) is picked up here; executions are unique per
    # (policy, fingerprint, episode), so the others are not run twice. The same muting as
    # notifications (silences, inhibition) keeps muted alerts from acting.
    muted = muted_alerts(alerts.values(), now, silences=silences)
    firing = [
        alert
        for alert in alerts.values()
        if alert.state is AlertState.FIRING and alert.fingerprint not in muted
    ]
    dispatch_for_alerts(db, sender, firing, now)


# --- alerts ------------------------------------------------------------------------------------


def list_alerts(
    session: Session,
    *,
    states: Iterable[AlertState] | None = None,
    rule_name: str | None = None,
    limit: int = 500,
) -> list[Alert]:
    """Alerts, most recently evaluated first."""
    wanted = None if states is None else set(states)
    return store.list_alerts(session, states=wanted, rule_name=rule_name, limit=limit)


def show_alert(session: Session, fingerprint: str) -> tuple[Alert, list[AlertTransition]]:
    """One alert and its history, oldest transition first."""
    alert = store.get_alert(session, fingerprint)
    if alert is None:
        raise NotFoundError(f"no alert with fingerprint {fingerprint!r}")
    return alert, store.history(session, fingerprint)


def acknowledge(
    session: Session,
    fingerprint: str,
    assignee: str,
    actor: str,
    comment: str = "",
    *,
    now: datetime,
) -> Alert:
    """A person takes an active alert (audited ``alert.ack``); again: a hand-over."""
    alert = store.get_alert(session, fingerprint)
    if alert is None:
        raise NotFoundError(f"no alert with fingerprint {fingerprint!r}")
    acked = acknowledge_alert(alert, assignee, now, comment)
    store.save_alerts(session, [acked])
    record_audit(
        session,
        actor=actor,
        action="alert.ack",
        target=f"alert:{fingerprint}",
        reason=comment,
        details={"assignee": assignee.strip(), "episode": alert.episode},
        at=now,
    )
    return acked


# --- silences ----------------------------------------------------------------------------------


def _silence_matchers(matchers: str | Sequence[Matcher]) -> tuple[Matcher, ...]:
    if not isinstance(matchers, str):
        return tuple(matchers)
    try:
        return parse_matchers(matchers)
    except MatcherSyntaxError as err:
        raise InvalidInputError(f"silence matchers, column {err.column}: {err.reason}") from err


def create_silence(
    session: Session,
    *,
    matchers: str | Sequence[Matcher],
    author: str,
    comment: str,
    starts_at: datetime,
    ends_at: datetime,
    actor: str,
    now: datetime,
    ends_when_resolved: bool = False,
) -> Silence:
    """Validate and store a silence (audited ``silence.create``)."""
    silence = new_silence(
        id=str(uuid.uuid4()),
        matchers=_silence_matchers(matchers),
        author=author,
        comment=comment,
        starts_at=starts_at,
        ends_at=ends_at,
        ends_when_resolved=ends_when_resolved,
    )
    store.save_silence(session, silence, at=now)
    record_audit(
        session,
        actor=actor,
        action="silence.create",
        target=f"silence:{silence.id}",
        reason=silence.comment,
        details={
            "matchers": [str(m) for m in silence.matchers],
            "author": silence.author,
            "starts_at": silence.starts_at.isoformat(),
            "ends_at": silence.ends_at.isoformat(),
            "ends_when_resolved": silence.ends_when_resolved,
        },
        at=now,
    )
    return silence


def expire_silence(session: Session, silence_id: str, actor: str, *, now: datetime) -> Silence:
    """End a silence now (audited ``silence.expire``); one already over is left as it was."""
    silence = store.get_silence(session, silence_id)
    if silence is None:
        raise NotFoundError(f"no silence with id {silence_id!r}")
    if silence.ends_at <= now:
        return silence
    ended = replace(silence, ends_at=max(now, silence.starts_at))
    store.save_silence(session, ended, at=now, expired_by=actor)
    record_audit(
        session, actor=actor, action="silence.expire", target=f"silence:{silence_id}", at=now
    )
    return ended


def list_silences(session: Session, *, active_at: datetime | None = None) -> list[Silence]:
    """Silences, newest first; with ``active_at`` only those not ended by then."""
    return store.list_silences(session, active_at=active_at)
