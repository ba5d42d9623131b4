"""Grouping timelines: (time, event) tables → the notifications Alertmanager's timers send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from keelwatch.alerting.grouping import (
    group_labels,
    muted_alerts,
    plan_notifications,
    to_notification,
)
from keelwatch.alerting.lifecycle import alert_fingerprint
from keelwatch.alerting.matchers import parse_matchers
from keelwatch.alerting.silences import new_silence
from keelwatch.entities.alerts import (
    Alert,
    AlertState,
    GroupState,
    NotificationIntent,
    Route,
    Severity,
    Silence,
)
from keelwatch.entities.notifications import NotificationState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROUTE = Route(
    receiver="ops",
    group_by=("alertname",),
    group_wait=timedelta(seconds=30),
    group_interval=timedelta(seconds=60),
    repeat_interval=timedelta(seconds=300),
)


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make(name: str, rule: str = "drift", severity: str = "warning", model: str = "m") -> Alert:
    labels = {"alertname": rule, "name": name, "severity": severity, "model": model}
    return Alert(
        fingerprint=alert_fingerprint(labels),
        rule_name=rule,
        labels=labels,
        annotations={"summary": name},
        severity=Severity(severity),
        state=AlertState.FIRING,
        value=1.0,
        episode=1,
        active_since=T0,
        last_evaluated_at=T0,
    )


class Timeline:
    """Drives the planner on a 10 s beat with alerts that fire and resolve at given times."""

    def __init__(self, route: Route = ROUTE) -> None:
        self.route = route
        self.alerts: dict[str, Alert] = {}
        self.groups: dict[str, GroupState] = {}
        self.silences: list[Silence] = []
        self.names: dict[str, str] = {}
        self.sent: list[tuple[int, str, int, tuple[str, ...], tuple[str, ...]]] = []
        self.intents: list[NotificationIntent] = []

    def fire(self, now: int, name: str, rule: str = "drift", severity: str = "warning") -> None:
        alert = replace(make(name, rule, severity), fired_at=t(now), active_since=t(now))
        old = self.alerts.get(alert.fingerprint)
        if old is not None:
            alert = replace(alert, episode=old.episode + 1)
        self.alerts[alert.fingerprint] = alert
        self.names[alert.fingerprint] = name

    def resolve(self, now: int, name: str) -> None:
        for fp, alert in self.alerts.items():
            if self.names[fp] == name:
                self.alerts[fp] = replace(alert, state=AlertState.RESOLVED, resolved_at=t(now))

    def run(self, events: Mapping[int, Any], until: int) -> list[tuple[object, ...]]:
        for now in range(0, until + 1, 10):
            for event in events.get(now, []):
                getattr(self, event[0])(now, *event[1:])
            muted = muted_alerts(self.alerts.values(), t(now), silences=self.silences)
            plan = plan_notifications(self.route, self.alerts, self.groups, t(now), muted=muted)
            self.groups = plan.groups
            self.intents.extend(plan.intents)
            for intent in plan.intents:
                self.sent.append(
                    (
                        now,
                        intent.state.value,
                        intent.sequence,
                        tuple(sorted(self.names[fp] for fp in intent.firing)),
                        tuple(sorted(self.names[fp] for fp in intent.resolved)),
                    )
                )
        return list(self.sent)


def test_group_wait_group_interval_repeat_and_resolution() -> None:
    events = {
        0: [("fire", "a")],
        40: [("fire", "b")],  # joins the flushed group: waits for the next group_interval look
        400: [("resolve", "a")],
        460: [("resolve", "b")],
    }
    assert Timeline().run(events, 700) == [
        (30, "firing", 1, ("a",), ()),  # group_wait after the group was created
        (90, "firing", 2, ("a", "b"), ()),  # group_interval after the first flush: b is new
        (390, "firing", 3, ("a", "b"), ()),  # unchanged: repeat_interval after the last send
        (450, "firing", 4, ("b",), ("a",)),  # a resolved: sent at the next look
        (510, "resolved", 5, (), ("b",)),  # all resolved: the group ends
    ]


def test_alerts_starting_together_go_out_together_and_groups_are_separate() -> None:
    events = {0: [("fire", "a"), ("fire", "c", "latency")], 20: [("fire", "b")]}
    assert Timeline().run(events, 60) == [
        (30, "firing", 1, ("a", "b"), ()),  # b arrived within a's group_wait
        (30, "firing", 1, ("c",), ()),  # another alertname, another group
    ]


def test_a_group_that_ends_starts_again_with_group_wait_and_a_later_sequence() -> None:
    events = {0: [("fire", "a")], 40: [("resolve", "a")], 200: [("fire", "a")]}
    timeline = Timeline()
    assert timeline.run(events, 300) == [
        (30, "firing", 1, ("a",), ()),
        (90, "resolved", 2, (), ("a",)),
        (230, "firing", 3, ("a",), ()),  # waits group_wait again; sequence carries on
    ]
    keys = [(i.group_key, i.state, i.sequence) for i in timeline.intents]
    assert len(set(keys)) == len(keys)  # no (group key, state, sequence) is ever reused


def test_an_alert_that_fires_and_resolves_inside_group_wait_sends_nothing() -> None:
    assert Timeline().run({0: [("fire", "a")], 20: [("resolve", "a")]}, 200) == []


def test_a_late_first_look_flushes_at_once() -> None:
    # The alert fired 100 s before the planner first saw it (engine down): no extra group_wait.
    timeline = Timeline()
    old = replace(make("a"), fired_at=t(0))
    timeline.alerts[old.fingerprint] = old
    timeline.names[old.fingerprint] = "a"
    assert timeline.run({}, 0) == []  # sanity: at t=0 the wait is not over
    late = Timeline()
    late.alerts, late.names = dict(timeline.alerts), dict(timeline.names)
    plan = plan_notifications(ROUTE, late.alerts, {}, t(100))
    assert [(i.sequence, i.at) for i in plan.intents] == [(1, t(100))]


def test_send_resolved_false_sends_no_resolved_notice() -> None:
    route = replace(ROUTE, send_resolved=False)
    events = {0: [("fire", "a"), ("fire", "b")], 40: [("resolve", "a")], 100: [("resolve", "b")]}
    assert Timeline(route).run(events, 300) == [(30, "firing", 1, ("a", "b"), ())]


def test_silenced_alert_still_gets_its_resolved_notice() -> None:
    # alertmanager#226: the receiver was told "firing", so it must be told "resolved".
    timeline = Timeline()
    silence = new_silence(
        id="s1",
        matchers=parse_matchers('name="a"'),
        author="ana",
        comment="known issue",
        starts_at=t(50),
        ends_at=t(10_000),
    )
    timeline.silences.append(silence)
    events = {0: [("fire", "a")], 400: [("resolve", "a")]}
    assert timeline.run(events, 600) == [
        (30, "firing", 1, ("a",), ()),
        # silenced from 50 s: the repeat at 330 s is muted, the resolution is still sent
        (450, "resolved", 2, (), ("a",)),
    ]


def test_an_alert_silenced_from_the_start_is_never_notified() -> None:
    timeline = Timeline()
    timeline.silences.append(
        new_silence(
            id="s1",
            matchers=parse_matchers('name="a"'),
            author="ana",
            comment="maintenance",
            starts_at=t(0),
            ends_at=t(10_000),
        )
    )
    assert timeline.run({0: [("fire", "a")], 100: [("resolve", "a")]}, 300) == []


def test_silence_expiry_lets_the_alert_through_at_the_next_look() -> None:
    timeline = Timeline()
    timeline.silences.append(
        new_silence(
            id="s1",
            matchers=parse_matchers('name="a"'),
            author="ana",
            comment="deploy",
            starts_at=t(0),
            ends_at=t(100),
        )
    )
    assert timeline.run({0: [("fire", "a")]}, 200) == [(150, "firing", 1, ("a",), ())]


def test_inhibited_warning_is_left_out_while_the_critical_fires() -> None:
    route = replace(ROUTE, group_by=("model",))
    events = {
        0: [("fire", "warn"), ("fire", "crit", "down", "critical")],
        100: [("resolve", "crit")],
    }
    assert Timeline(route).run(events, 200) == [
        (30, "firing", 1, ("crit",), ()),  # the warning of the same model is inhibited
        (150, "firing", 2, ("warn",), ("crit",)),  # critical resolved: the warning goes out
    ]


def test_muted_alert_told_firing_keeps_its_resolved_notice_while_others_repeat() -> None:
    timeline = Timeline()
    timeline.silences.append(
        new_silence(
            id="s1",
            matchers=parse_matchers('name="a"'),
            author="ana",
            comment="known",
            starts_at=t(50),
            ends_at=t(10_000),
        )
    )
    events = {0: [("fire", "a"), ("fire", "b")], 400: [("resolve", "a")]}
    assert timeline.run(events, 500) == [
        (30, "firing", 1, ("a", "b"), ()),
        (330, "firing", 2, ("b",), ()),  # the repeat leaves the silenced a out...
        (450, "firing", 3, ("b",), ("a",)),  # ...but a's resolution is still sent
    ]


def test_group_by_all_labels_and_group_labels() -> None:
    everything = replace(ROUTE, group_by=("...",))
    assert Timeline(everything).run({0: [("fire", "a"), ("fire", "b")]}, 30) == [
        (30, "firing", 1, ("a",), ()),
        (30, "firing", 1, ("b",), ()),
    ]
    labels = {"alertname": "x", "model": "m", "column": "c"}
    assert group_labels(replace(ROUTE, group_by=("model", "absent")), labels) == {"model": "m"}
    assert group_labels(everything, labels) == dict(sorted(labels.items()))


def test_same_state_same_plan_so_two_replicas_agree() -> None:
    alerts = {a.fingerprint: a for a in (replace(make("a"), fired_at=T0),)}
    one = plan_notifications(ROUTE, alerts, {}, t(30))
    two = plan_notifications(ROUTE, alerts, {}, t(30))
    assert one == two and len(one.intents) == 1


def test_to_notification_carries_alerts_and_a_stable_idempotency_key() -> None:
    firing = replace(make("a"), fired_at=T0)
    resolved = replace(make("b"), fired_at=T0, state=AlertState.RESOLVED, resolved_at=t(5))
    alerts = {firing.fingerprint: firing, resolved.fingerprint: resolved}
    intent = NotificationIntent(
        receiver="ops",
        group_key='ops:{alertname="drift"}',
        group_labels={"alertname": "drift"},
        state=NotificationState.FIRING,
        sequence=4,
        firing=(firing.fingerprint,),
        resolved=(resolved.fingerprint,),
        at=t(10),
    )
    note = to_notification(intent, alerts)
    assert [a.fingerprint for a in note.firing] == [firing.fingerprint]
    assert [(a.fingerprint, a.ends_at) for a in note.resolved] == [(resolved.fingerprint, t(5))]
    assert note.idempotency_key == to_notification(intent, alerts).idempotency_key
    assert (
        note.idempotency_key != to_notification(replace(intent, sequence=5), alerts).idempotency_key
    )
