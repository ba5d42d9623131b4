"""The sweepers on the alert-evaluation tick: notifications and action executions whose
enqueue after the commit was lost are enqueued again once, and muted (silenced or inhibited)
alerts start no action until they are unmuted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from keelwatch.actions.dispatch import dispatch_for_alerts, sweep_executions
from keelwatch.actions.policies import parse_policy
from keelwatch.alerting import service as engine
from keelwatch.alerting.delivery import sweep_notifications
from keelwatch.alerting.signals import known_signal_names
from keelwatch.contract import ACTION_EXECUTE, ALERTING_DELIVER
from keelwatch.entities.actions import ExecutionStatus
from keelwatch.entities.alerts import AlertState
from keelwatch.entities.notifications import DeliveryStatus
from keelwatch.entities.signals import Signal
from keelwatch.entities.time import utcnow
from keelwatch.storage import actions as action_store
from keelwatch.storage import notifications as store
from keelwatch.storage.db import Database
from tests.integration.test_actions import firing_alert
from tests.integration.test_notification_delivery import T0, add_webhook
from tests.integration.test_notification_delivery import firing_alert as churn_alert

pytestmark = pytest.mark.integration

GRACE = timedelta(minutes=2)
LEASE = timedelta(minutes=5)


class Sender:
    """A TaskSender that keeps (task name, args, kwargs, queue); nothing reaches a broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, dict[str, Any], str | None]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        self.sent.append((name, args, dict(kwargs or {}), options.get("queue")))


def test_lost_notification_deliveries_are_enqueued_again_once(database: Database) -> None:
    from keelwatch.alerting.delivery import dispatch_notifications

    add_webhook(database, "http://127.0.0.1:9/")
    alerts = {a.fingerprint: a for a in (churn_alert(),)}
    # The rows are committed, but the process died before it sent the tasks: a sender that
    # drops them stands for that.
    assert dispatch_notifications(database, Sender(), T0, alerts=alerts, silences=[]) == 1
    with database.session() as session:
        (row,) = store.list_notifications(session)

    def sweep(at: timedelta) -> list[Any]:
        sender = Sender()
        sweep_notifications(database, sender, T0 + at, grace=GRACE, claim_lease=LEASE)
        return sender.sent

    assert sweep(timedelta(seconds=30)) == []  # its own task may still be on the way
    assert sweep(timedelta(minutes=3)) == [(ALERTING_DELIVER, [row.id], {}, "monitoring")]
    # A second tick at the same moment (another beat replica) finds nothing to take.
    assert sweep(timedelta(minutes=3)) == []
    # ...and the next sweep waits a grace period after the re-enqueue.
    assert sweep(timedelta(minutes=4)) == []

    # A worker claims the row at 6m and dies mid-send: left alone while the claim is fresh,
    # released and enqueued again once it is older than the lease.
    with database.session() as session:
        assert store.claim_notification(session, row.id, now=T0 + timedelta(minutes=6), lease=LEASE)
    assert sweep(timedelta(minutes=10)) == []
    assert sweep(timedelta(minutes=11, seconds=1)) == [
        (ALERTING_DELIVER, [row.id], {}, "monitoring")
    ]
    with database.session() as session:
        released = store.get_notification(session, row.id)
    assert released.status is DeliveryStatus.PENDING and released.claimed_at is None

    # A row waiting for its retry's backoff is not lost: left alone until it is due.
    with database.session() as session:
        claimed_at = T0 + timedelta(minutes=12)
        assert store.claim_notification(session, row.id, now=claimed_at, lease=LEASE)
        assert store.record_failed_attempt(
            session,
            row.id,
            1,
            "DeliveryError: 503",
            claimed_at=claimed_at,
            next_attempt_at=T0 + timedelta(minutes=20),
        )
    assert sweep(timedelta(minutes=21)) == []
    assert sweep(timedelta(minutes=22, seconds=1)) == [
        (ALERTING_DELIVER, [row.id], {}, "monitoring")
    ]


def test_lost_action_executions_are_enqueued_again_on_their_queue(database: Database) -> None:
    now = utcnow()
    policies = [
        parse_policy({"name": "rollback", "action": "rollback"}),
        parse_policy({"name": "retrain", "action": "retrain", "params": {"queue": "gpu"}}),
        parse_policy({"name": "manual", "action": "promote", "mode": "manual"}),
    ]
    # Created and committed; their enqueue after the commit was lost.
    assert dispatch_for_alerts(database, Sender(), [firing_alert("1")], now, policies=policies)
    with database.session() as session:
        by_policy = {e.policy: e for e in action_store.list_executions(session)}
    assert by_policy["manual"].status is ExecutionStatus.AWAITING_APPROVAL

    def sweep(at: timedelta) -> list[tuple[str, int, str | None]]:
        sender = Sender()
        sweep_executions(database, sender, now + at, grace=GRACE)
        return sorted(
            (name, kwargs["execution_id"], queue) for name, _, kwargs, queue in sender.sent
        )

    assert sweep(timedelta(seconds=30)) == []
    assert sweep(timedelta(minutes=3)) == sorted(
        [
            (ACTION_EXECUTE, by_policy["rollback"].id, "cpu"),
            (ACTION_EXECUTE, by_policy["retrain"].id, "gpu"),
        ]
    )
    assert sweep(timedelta(minutes=3)) == []  # a second tick at once takes nothing
    # Claimed by a worker: running executions are never swept (their delivery resumes them).
    with database.session() as session:
        assert action_store.claim_execution(session, by_policy["rollback"].id, now, claimed_by="t")
    assert sweep(timedelta(minutes=10)) == [(ACTION_EXECUTE, by_policy["retrain"].id, "gpu")]


RULES = """\
- name: dataset-drift
  signal: drift.dataset.drifted
  comparison: ">="
  threshold: 1
  for: 0s
  severity: critical
- name: share-drifted
  signal: drift.dataset.share_drifted
  comparison: ">"
  threshold: 0.1
  for: 0s
  severity: warning
"""


def test_a_silenced_alert_starts_no_action_until_the_silence_ends(database: Database) -> None:
    now = utcnow()
    labels = {"model": "credit", "alias": "champion"}
    with database.session() as session:
        engine.apply_rules(session, RULES, "ann", known_signal_names(), now=now)
        for policy in (
            parse_policy(
                {"name": "rollback", "match": '{alertname="dataset-drift"}', "action": "rollback"}
            ),
            parse_policy(
                {"name": "notify-share", "match": '{alertname="share-drifted"}', "action": "notify"}
            ),
        ):
            action_store.save_policy(session, policy, actor="ann", now=now)
        engine.evaluate(session, [Signal("drift.dataset.drifted", 1, labels, now)], now)
        engine.create_silence(
            session,
            matchers='{alertname="dataset-drift", model="credit"}',
            author="erin",
            comment="rolling back by hand",
            starts_at=now,
            ends_at=now + timedelta(hours=1),
            actor="erin",
            now=now,
        )
    with database.session() as session:
        (alert,) = engine.list_alerts(session, states=[AlertState.FIRING])

    sender = Sender()
    engine.after_commit_dispatch(database, sender, now + timedelta(minutes=1))
    assert sender.sent == []
    with database.session() as session:
        assert action_store.list_executions(session) == []

    # The silence has ended and the alert still fires: the next tick acts.
    engine.after_commit_dispatch(database, sender, now + timedelta(hours=2))
    with database.session() as session:
        (execution,) = action_store.list_executions(session)
    assert (execution.policy, execution.alert_fingerprint) == ("rollback", alert.fingerprint)
    assert [name for name, *_ in sender.sent] == [ACTION_EXECUTE]

    # A warning inhibited by that firing critical alert of the same model does not act (the
    # critical alert's own policies do); its notify policy would have matched.
    later = now + timedelta(hours=3)
    with database.session() as session:
        engine.evaluate(session, [Signal("drift.dataset.share_drifted", 0.5, labels, later)], later)
    engine.after_commit_dispatch(database, Sender(), later)
    with database.session() as session:
        assert [e.policy for e in action_store.list_executions(session)] == ["rollback"]
