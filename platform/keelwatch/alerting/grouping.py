"""Grouping and the notification planner, with Alertmanager's timers.

Firing alerts are grouped per :class:`~keelwatch.entities.alerts.Route` by the values of its
``group_by`` labels (``("...",)``: all labels, one alert per group). For each group:

- **group_wait**: a new group waits this long before its first notification, so alerts that
  start together go out together. If its earliest alert fired longer ago than that (the engine
  was down, a tick came late) it is flushed at once, as Alertmanager does.
- **group_interval**: after a flush the group is looked at again every ``group_interval``. A
  notification goes out then if the group changed: an alert fires that was not in the last
  notification, or (with ``send_resolved``) one of those resolved.
- **repeat_interval**: an unchanged firing group is sent again once ``repeat_interval`` has
  passed since its last notification (checked at the ``group_interval`` looks, so the repeat
  lands on the first look at or after it).

Silenced and inhibited alerts are left out of the firing set, but an alert that was notified
as firing always gets its resolved notice, silenced or not (alertmanager#226). When every alert
of a group has resolved and been notified, the group ends; a later alert starts it again (and
it waits ``group_wait`` again) with its sequence carried on. Each notification carries a
per-group ``sequence``: (group key, state, sequence) identifies it, so delivery can drop
replays.

:func:`plan_notifications` is pure: the engine calls it on every beat tick with the alerts and
the group states it stored, and stores the group states it returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from keelwatch.alerting.inhibition import DEFAULT_INHIBIT_RULES, inhibited_by
from keelwatch.alerting.silences import silenced_by
from keelwatch.entities.alerts import (
    Alert,
    AlertState,
    GroupState,
    InhibitRule,
    NotificationIntent,
    Route,
    Silence,
)
from keelwatch.entities.notifications import Notification, NotificationState, NotifiedAlert

__all__ = ["NotificationPlan", "group_labels", "muted_alerts", "plan_notifications"]

GROUP_BY_ALL = "..."


def group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that name an alert's group: its ``group_by`` labels that it has."""
    if GROUP_BY_ALL in route.group_by:
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(route.group_by) if name in labels}


def group_key(route: Route, labels: Mapping[str, str]) -> str:
    """``<receiver>:{name="value",...}``: the same alerts always land in the same group."""
    body = ",".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in labels.items())
    return f"{route.receiver}:{{{body}}}"


def muted_alerts(
    alerts: Iterable[Alert],
    now: datetime,
    *,
    silences: Iterable[Silence] = (),
    inhibit_rules: Sequence[InhibitRule] = DEFAULT_INHIBIT_RULES,
) -> dict[str, str]:
    """Fingerprints of muted alerts and why: ``silence:<id>`` or ``inhibited:<fingerprint>``."""
    alerts = list(alerts)
    silences = list(silences)
    muted: dict[str, str] = {}
    for alert in alerts:
        ids = silenced_by(alert.labels, silences, now)
        if ids:
            muted[alert.fingerprint] = f"silence:{ids[0]}"
    for target, source in inhibited_by(alerts, inhibit_rules).items():
        muted.setdefault(target, f"inhibited:{source}")
    return muted


@dataclass(frozen=True)
class NotificationPlan:
    """What to send now, and the group states to keep until the next tick."""

    intents: list[NotificationIntent] = field(default_factory=list)
    groups: dict[str, GroupState] = field(default_factory=dict)


def _needs_update(
    group: GroupState, firing: frozenset[str], resolved: frozenset[str], route: Route, now: datetime
) -> bool:
    # Alertmanager's DedupStage.needsUpdate, with the group state as its notification log.
    if group.last_sent_at is None:
        return bool(firing)
    if not firing <= group.notified_firing:
        return True
    if not firing:
        return bool(group.notified_firing)
    if route.send_resolved and not resolved <= group.notified_resolved:
        return True
    return now - group.last_sent_at >= route.repeat_interval


def plan_notifications(
    route: Route,
    alerts: Mapping[str, Alert],
    groups: Mapping[str, GroupState],
    now: datetime,
    *,
    muted: Mapping[str, str] | None = None,
) -> NotificationPlan:
    """Decide which groups notify at ``now`` and advance their timers.

    ``alerts`` are all known alerts by fingerprint; ``groups`` the states of this route's groups
    from the previous tick; ``muted`` the fingerprints to leave out of firing notices (see
    :func:`muted_alerts`).
    """
    muted = muted or {}
    members: dict[str, list[Alert]] = {}
    labels_of: dict[str, dict[str, str]] = {}
    notified = {fp for g in groups.values() for fp in g.notified_firing}
    for alert in alerts.values():
        if alert.state is not AlertState.FIRING and alert.fingerprint not in notified:
            continue
        if alert.state is AlertState.PENDING:
            continue
        labels = group_labels(route, alert.labels)
        key = group_key(route, labels)
        members.setdefault(key, []).append(alert)
        labels_of[key] = labels
    plan = NotificationPlan(groups={})
    for key in sorted(set(members) | set(groups)):
        group = groups.get(key)
        in_group = members.get(key, [])
        if group is None or group.ended_at is not None:
            fired = [a.fired_at or now for a in in_group if a.state is AlertState.FIRING]
            if not fired:
                if group is not None:
                    plan.groups[key] = group  # dormant: keeps its sequence
                continue
            due = max(now, min(fired) + route.group_wait)
            group = GroupState(
                key=key,
                labels=labels_of[key],
                created_at=now,
                next_flush_at=due,
                sequence=group.sequence if group is not None else 0,
            )
        if now < group.next_flush_at:
            plan.groups[key] = group
            continue
        group = _flush(route, group, in_group, muted, now, plan)
        still_firing = any(a.state is AlertState.FIRING for a in in_group)
        if not still_firing and not group.notified_firing:
            group = GroupState(
                key=key,
                labels=group.labels,
                created_at=group.created_at,
                next_flush_at=now,
                sequence=group.sequence,
                ended_at=now,
            )
        plan.groups[key] = group
    return plan


def _flush(
    route: Route,
    group: GroupState,
    in_group: list[Alert],
    muted: Mapping[str, str],
    now: datetime,
    plan: NotificationPlan,
) -> GroupState:
    firing = frozenset(
        a.fingerprint
        for a in in_group
        if a.state is AlertState.FIRING and a.fingerprint not in muted
    )
    # Resolved notices go to receivers that were told the alert fired, muted or not (#226).
    resolved = frozenset(
        a.fingerprint
        for a in in_group
        if not a.state.active and a.fingerprint in group.notified_firing
    )
    flushed = replace(group, has_flushed=True, next_flush_at=now + route.group_interval)
    # Alertmanager stops the pipeline when muting leaves nothing to say.
    if not (firing or resolved) or not _needs_update(group, firing, resolved, route, now):
        return flushed
    # A muted alert the receiver was told is firing stays "told", so it still gets its
    # resolved notice later (alertmanager#226).
    still_told = frozenset(
        a.fingerprint
        for a in in_group
        if a.state is AlertState.FIRING and a.fingerprint in group.notified_firing
    )
    sequence = group.sequence + 1
    sent = replace(
        flushed,
        notified_firing=firing | still_told,
        notified_resolved=resolved,
        last_sent_at=now,
        sequence=sequence,
    )
    shown_resolved = resolved if route.send_resolved else frozenset()
    if firing or shown_resolved:
        plan.intents.append(
            NotificationIntent(
                receiver=route.receiver,
                group_key=group.key,
                group_labels=dict(group.labels),
                state=NotificationState.FIRING if firing else NotificationState.RESOLVED,
                sequence=sequence,
                firing=tuple(sorted(firing)),
                resolved=tuple(sorted(shown_resolved)),
                at=now,
            )
        )
    return sent


def to_notification(intent: NotificationIntent, alerts: Mapping[str, Alert]) -> Notification:
    """The notifiers' view of an intent: each alert with its labels, annotations and times."""

    def notified(fingerprint: str, status: NotificationState) -> NotifiedAlert:
        alert = alerts[fingerprint]
        return NotifiedAlert(
            fingerprint=fingerprint,
            status=status,
            labels=alert.labels,
            starts_at=alert.fired_at or alert.active_since,
            annotations=alert.annotations,
            value=alert.value,
            ends_at=alert.resolved_at if status is NotificationState.RESOLVED else None,
            runbook_url=alert.runbook_url,
        )

    return Notification(
        group_key=intent.group_key,
        state=intent.state,
        sequence=intent.sequence,
        alerts=(
            *(notified(fp, NotificationState.FIRING) for fp in intent.firing),
            *(notified(fp, NotificationState.RESOLVED) for fp in intent.resolved),
        ),
        created_at=intent.at,
        receiver=intent.receiver,
        group_labels=intent.group_labels,
    )
