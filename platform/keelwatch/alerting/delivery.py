"""Notification delivery: from alerts to log rows to one delivery task per notification.

:func:`dispatch_notifications` runs on every tick (beat, or after a result is evaluated): for
each stored notifier (its name is the route's receiver) it plans with
:func:`keelwatch.alerting.grouping.plan_notifications` over the persisted group states, stores
the new group states and one notification-log row per intent in one transaction, commits, and
only then enqueues ``keelwatch.alerting.deliver`` for the rows *it* created. The log's UNIQUE
idempotency key (group key, state, sequence) makes a second dispatcher (another API or beat
replica, a redelivered tick) insert nothing and enqueue nothing, so nobody is paged twice.

:func:`deliver_notification` is the body of the delivery task: it claims a pending row
(pending → sending, committed before the send, so a second delivery of the row skips it), sends
it through its notifier and records the outcome; a :class:`DeliveryOutcome` of ``retry``
carries the wait (:func:`backoff_s`, exponential with full jitter) that the task retries after,
and out of attempts the row becomes a dead letter. Delivery never touches alert state.

:func:`sweep_notifications` runs on the alert-evaluation tick and enqueues again the rows whose
delivery was lost: still pending well after they were due, or claimed by a worker that died.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr

from keelwatch.alerting.grouping import muted_alerts, plan_notifications, to_notification
from keelwatch.alerting.notifiers import (
    MASK,
    DeliveryError,
    NotifierConfigError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    create_notifier,
)
from keelwatch.contract import ALERTING_DELIVER, QUEUE_MONITORING, TaskSender
from keelwatch.entities.alerts import Alert, GroupState, Route, Silence
from keelwatch.entities.notifications import (
    DeliveryStatus,
    Notification,
    NotificationState,
    NotifiedAlert,
    NotifierTarget,
)
from keelwatch.entities.time import utcnow
from keelwatch.errors import NotFoundError
from keelwatch.secrets_at_rest import SecretsKeyError, is_sealed
from keelwatch.storage import notifications as store
from keelwatch.storage.db import Database

__all__ = [
    "DeliveryOutcome",
    "backoff_s",
    "deliver_notification",
    "dispatch_notifications",
    "enqueue_delivery",
    "masked_config",
    "notification_from_payload",
    "notification_to_payload",
    "route_of",
    "sweep_notifications",
]

# --------------------------------------------------------------------------- routes and config


def route_of(target: NotifierTarget) -> Route:
    """The grouping route of a notifier (Alertmanager's defaults where ``route`` is silent)."""
    r = target.route
    defaults = Route(receiver=target.name)
    group_by = r.get("group_by")
    return Route(
        receiver=target.name,
        group_by=tuple(str(x) for x in group_by)
        if isinstance(group_by, list | tuple)
        else defaults.group_by,
        group_wait=_seconds(r.get("group_wait_s"), defaults.group_wait),
        group_interval=_seconds(r.get("group_interval_s"), defaults.group_interval),
        repeat_interval=_seconds(r.get("repeat_interval_s"), defaults.repeat_interval),
        send_resolved=bool(r.get("send_resolved", defaults.send_resolved)),
    )


def _seconds(value: object, default: timedelta) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    return default


def masked_config(type_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it may be shown: every secret field replaced by ``**********``."""
    notifier = create_notifier(type_name, config)
    shown: dict[str, Any] = {}
    for name in type(notifier.config).model_fields:
        value = getattr(notifier.config, name)
        shown[name] = MASK if isinstance(value, SecretStr) else _plain(value)
    shown["target"] = notifier.target
    return shown


def _plain(value: object) -> object:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


# --------------------------------------------------------------------------- payloads


def notification_to_payload(n: Notification) -> dict[str, Any]:
    """The notification as JSON for the log row (no notifier secret is ever in it)."""
    return {
        "group_key": n.group_key,
        "state": n.state.value,
        "sequence": n.sequence,
        "created_at": n.created_at.isoformat(),
        "receiver": n.receiver,
        "group_labels": dict(n.group_labels),
        "links": dict(n.links),
        "alerts": [
            {
                "fingerprint": a.fingerprint,
                "status": a.status.value,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "starts_at": a.starts_at.isoformat(),
                "ends_at": a.ends_at.isoformat() if a.ends_at else None,
                "value": a.value,
                "generator_url": a.generator_url,
                "runbook_url": a.runbook_url,
            }
            for a in n.alerts
        ],
    }


def notification_from_payload(payload: Mapping[str, Any]) -> Notification:
    """The inverse of :func:`notification_to_payload`."""
    return Notification(
        group_key=payload["group_key"],
        state=NotificationState(payload["state"]),
        sequence=int(payload["sequence"]),
        created_at=datetime.fromisoformat(payload["created_at"]),
        receiver=payload.get("receiver", ""),
        group_labels=payload.get("group_labels", {}),
        links=payload.get("links", {}),
        alerts=tuple(
            NotifiedAlert(
                fingerprint=a["fingerprint"],
                status=NotificationState(a["status"]),
                labels=a["labels"],
                annotations=a.get("annotations", {}),
                starts_at=datetime.fromisoformat(a["starts_at"]),
                ends_at=datetime.fromisoformat(a["ends_at"]) if a.get("ends_at") else None,
                value=a.get("value"),
                generator_url=a.get("generator_url"),
                runbook_url=a.get("runbook_url"),
            )
            for a in payload["alerts"]
        ),
    )


def _group_to_json(g: GroupState) -> dict[str, Any]:
    def iso(t: datetime | None) -> str | None:
        return None if t is None else t.isoformat()

    return {
        "labels": dict(g.labels),
        "created_at": g.created_at.isoformat(),
        "next_flush_at": g.next_flush_at.isoformat(),
        "has_flushed": g.has_flushed,
        "notified_firing": sorted(g.notified_firing),
        "notified_resolved": sorted(g.notified_resolved),
        "last_sent_at": iso(g.last_sent_at),
        "sequence": g.sequence,
        "ended_at": iso(g.ended_at),
    }


def _group_from_json(key: str, d: Mapping[str, Any]) -> GroupState:
    def when(v: str | None) -> datetime | None:
        return None if v is None else datetime.fromisoformat(v)

    return GroupState(
        key=key,
        labels=d["labels"],
        created_at=datetime.fromisoformat(d["created_at"]),
        next_flush_at=datetime.fromisoformat(d["next_flush_at"]),
        has_flushed=bool(d["has_flushed"]),
        notified_firing=frozenset(d["notified_firing"]),
        notified_resolved=frozenset(d["notified_resolved"]),
        last_sent_at=when(d["last_sent_at"]),
        sequence=int(d["sequence"]),
        ended_at=when(d["ended_at"]),
    )


# --------------------------------------------------------------------------- dispatch


def enqueue_delivery(sender: TaskSender, log_id: int) -> None:
    """Enqueue the delivery of log row ``log_id`` (after the commit that created it)."""
    sender.send_task(ALERTING_DELIVER, args=[log_id], queue=QUEUE_MONITORING)


def dispatch_notifications(
    db: Database,
    sender: TaskSender,
    now: datetime,
    *,
    alerts: Mapping[str, Alert] | None = None,
    silences: Iterable[Silence] | None = None,
) -> int:
    """Plan, log and enqueue the notifications due at ``now``; returns how many this call
    enqueued (0 for a replica that lost the race: the other one enqueued them).

    ``alerts`` and ``silences`` default to what ``keelwatch.storage.alerts`` holds.
    """
    created: list[int] = []
    with db.session() as session:
        if alerts is None or silences is None:
            from keelwatch.storage import alerts as alert_store

            if alerts is None:
                alerts = alert_store.load_alerts(session)
            if silences is None:
                silences = alert_store.list_silences(session, active_at=now)
        muted = muted_alerts(alerts.values(), now, silences=list(silences))
        for target in store.list_notifiers(session):
            route = route_of(target)
            stored = store.load_group_states(session, target.name)
            groups = {k: _group_from_json(k, v) for k, v in stored.items()}
            plan = plan_notifications(route, alerts, groups, now, muted=muted)
            changed = {
                k: _group_to_json(g)
                for k, g in plan.groups.items()
                if _group_to_json(g) != stored.get(k)
            }
            store.save_group_states(session, target.name, changed, now)
            rows: list[dict[str, Any]] = []
            for intent in plan.intents:
                notification = to_notification(intent, alerts)
                rows.append(
                    {
                        "idempotency_key": notification.idempotency_key,
                        "notifier": target.name,
                        "group_key": notification.group_key,
                        "state": notification.state.value,
                        "sequence": notification.sequence,
                        "payload": notification_to_payload(notification),
                        "created_at": now,
                    }
                )
            created.extend(store.insert_notifications(session, rows))
    for log_id in created:
        enqueue_delivery(sender, log_id)
    return len(created)


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one delivery attempt came to: ``sent``, ``skipped`` (sent or dead already, or
    claimed by another delivery), ``retry`` (retryable failure, attempts left; retry after
    ``retry_after_s`` seconds), or ``dead`` (dead-lettered)."""

    status: str
    attempts: int
    message: str = ""
    retry_after_s: float | None = None


def backoff_s(
    attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Seconds before the retry after failed attempt ``attempt`` (1-based): full jitter,
    uniform in [0, min(max_s, base_s * 2**(attempt-1))] (AWS's "full jitter"), so a receiver
    coming back is not hit by every retry at once."""
    ceiling = min(max_s, base_s * 2 ** max(attempt - 1, 0))
    return (rng or random.Random()).uniform(0.0, ceiling)  # jitter, not crypto


#: Defaults of ``KEELWATCH_ALERTING__DELIVERY_CLAIM_LEASE_S`` and ``..._SWEEP_GRACE_S``.
DEFAULT_CLAIM_LEASE = timedelta(minutes=5)
DEFAULT_SWEEP_GRACE = timedelta(minutes=2)


def deliver_notification(
    db: Database,
    log_id: int,
    *,
    max_attempts: int,
    claim_lease: timedelta = DEFAULT_CLAIM_LEASE,
    backoff_base_s: float = 2.0,
    backoff_max_s: float = 300.0,
    now: datetime | None = None,
    rng: random.Random | None = None,
    secrets: store.ConfigSecrets | None = None,
) -> DeliveryOutcome:
    """Claim log row ``log_id``, send it once through its notifier and record what happened.

    ``secrets`` decrypts the notifier's secrets (``keelwatch.secrets_at_rest``); a notifier
    whose secrets it cannot decrypt (a worker with another key than the API's) is a
    retryable failure naming the notifier, dead-lettered once out of attempts.

    The claim (pending → sending, committed before anything is sent) makes a second delivery
    of the same row skip it while the claim is younger than ``claim_lease``, so a redelivered
    message or a sweeper's re-enqueue never sends twice; an older claim is taken over (its
    worker died mid-send). A sent or dead row is skipped. A retryable failure with attempts
    left releases the claim and returns ``retry`` with the wait (:func:`backoff_s`, at least
    the receiver's ``Retry-After`` up to ``backoff_max_s``); out of attempts, or a permanent
    failure (or a notifier deleted or misconfigured since), the row is dead-lettered once.
    """
    claimed_at = now or utcnow()
    with db.session() as session:
        record = store.claim_notification(session, log_id, now=claimed_at, lease=claim_lease)
        if record is None:
            current = store.get_notification(session, log_id)
            why = (
                "claimed by another delivery"
                if current.status is DeliveryStatus.SENDING
                else f"already {current.status.value}"
            )
            return DeliveryOutcome("skipped", current.attempts, why)
        unreadable: str | None = None
        try:
            target: NotifierTarget | None = store.get_notifier(
                session, record.notifier, secrets=secrets
            )
        except NotFoundError:  # deleted since the notification was planned
            target = None
        except SecretsKeyError as exc:
            target, unreadable = None, str(exc)
    attempts = record.attempts + 1
    try:
        if unreadable is not None:
            raise RetryableDeliveryError(unreadable)
        if target is None:
            raise PermanentDeliveryError(f"notifier {record.notifier!r} no longer exists")
        if any(is_sealed(value) for value in target.config.values()):
            # Read without a key: signing with the ciphertext would fail at the receiver.
            raise RetryableDeliveryError(
                f"notifier {record.notifier!r}: its secrets are encrypted at rest and this "
                "delivery was given no key to decrypt them"
            )
        notifier = create_notifier(target.type, target.config)
        notifier.deliver(notification_from_payload(record.payload))
    except (DeliveryError, NotifierConfigError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        retryable = isinstance(exc, DeliveryError) and exc.retryable
        with db.session() as session:
            if retryable and attempts < max_attempts:
                wait = backoff_s(attempts, base_s=backoff_base_s, max_s=backoff_max_s, rng=rng)
                asked = getattr(exc, "retry_after_s", None)
                if asked is not None:
                    wait = max(wait, min(float(asked), backoff_max_s))
                store.record_failed_attempt(
                    session,
                    log_id,
                    attempts,
                    reason,
                    claimed_at=claimed_at,
                    next_attempt_at=utcnow() + timedelta(seconds=wait),
                )
                return DeliveryOutcome("retry", attempts, reason, wait)
            store.dead_letter(
                session,
                log_id,
                reason=reason,
                attempts=attempts,
                at=now or utcnow(),
                claimed_at=claimed_at,
            )
        return DeliveryOutcome("dead", attempts, reason)
    with db.session() as session:
        store.mark_sent(session, log_id, now or utcnow(), attempts)
    return DeliveryOutcome("sent", attempts)


# --------------------------------------------------------------------------- sweeping


def sweep_notifications(
    db: Database,
    sender: TaskSender,
    now: datetime,
    *,
    grace: timedelta = DEFAULT_SWEEP_GRACE,
    claim_lease: timedelta = DEFAULT_CLAIM_LEASE,
) -> int:
    """Enqueue again the deliveries that were lost; returns how many.

    A row still pending ``grace`` after it was due (its enqueue after the commit never
    happened: a crash between the commit and ``send_task``) or held by a claim older than
    ``claim_lease`` (its worker died mid-send). The alert-evaluation tick calls this; the rows
    are taken with a conditional update and enqueued after the commit, so two ticks running at
    once enqueue each row once, and the claim keeps a duplicate message from sending twice.
    """
    with db.session() as session:
        lost = store.requeue_stale_notifications(session, now=now, grace=grace, lease=claim_lease)
    for log_id in lost:
        enqueue_delivery(sender, log_id)
    return len(lost)


# --------------------------------------------------------------------------- test sends


@dataclass(frozen=True)
class TestDelivery:
    """The outcome of :func:`send_test_notification`: where it went, whether it arrived, the
    attempts made, and the error when it did not."""

    __test__ = False  # not a pytest test class, whatever its name says

    target: str
    delivered: bool
    attempts: tuple[str, ...] = ()
    error: str | None = None


def synthetic_notification(name: str, now: datetime) -> Notification:
    """The synthetic firing notification a notifier test sends (CLI and API alike)."""
    return Notification(
        group_key=f"{name}:test",
        state=NotificationState.FIRING,
        sequence=int(now.timestamp()),
        created_at=now,
        receiver=name,
        alerts=(
            NotifiedAlert(
                fingerprint="keelwatch-test",
                status=NotificationState.FIRING,
                labels={"alertname": "KeelwatchTestNotification", "severity": "info"},
                annotations={"summary": f"test notification from Keelwatch to {name}"},
                starts_at=now - timedelta(seconds=1),
            ),
        ),
    )


def send_test_notification(target: NotifierTarget, now: datetime) -> TestDelivery:
    """Send :func:`synthetic_notification` through ``target`` now, synchronously, outside the
    notification log; a receiver that fails is reported, not raised. A stored config that no
    longer validates raises ``NotifierConfigError``."""
    notifier = create_notifier(target.type, target.config)
    try:
        receipt = notifier.deliver(synthetic_notification(target.name, now))
    except DeliveryError as exc:
        return TestDelivery(notifier.target, False, error=f"{type(exc).__name__}: {exc}")
    return TestDelivery(receipt.target, True, tuple(receipt.attempts))
