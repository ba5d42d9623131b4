"""PagerDuty Events API v2: one event per alert, deduplicated by the alert's fingerprint.

``dedup_key`` is ``keelwatch-<fingerprint>``: the same alert always maps to the same PagerDuty
incident, so a second replica or a redelivered task that triggers it again is folded into the
open incident instead of paging twice, and ``resolve`` / ``acknowledge`` find it. The
endpoint is configurable (default ``https://events.pagerduty.com/v2/enqueue``) for EU
accounts, proxies and tests. The routing key is a secret: it lives only in the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr

from keelwatch.alerting.notifiers._contract import HttpRequest, NotifierConfig
from keelwatch.alerting.notifiers._http import HttpNotifier, display_url, isoformat, json_body
from keelwatch.entities.notifications import Notification, NotificationState, NotifiedAlert

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEDUP_PREFIX = "keelwatch-"
_SUMMARY_LIMIT = 1024
_SEVERITIES = ("critical", "error", "warning", "info")
_SEVERITY_ALIASES = {"page": "critical", "high": "error", "medium": "warning", "low": "info"}
_ACTIONS = {
    NotificationState.FIRING: "trigger",
    NotificationState.ACKNOWLEDGED: "acknowledge",
    NotificationState.RESOLVED: "resolve",
}


class PagerDutyConfig(NotifierConfig):
    """``routing_key``: the integration key (secret); ``url``: the Events API v2 endpoint;
    ``source``: what PagerDuty shows as the affected system."""

    routing_key: SecretStr = Field(min_length=1)
    url: AnyHttpUrl = AnyHttpUrl(DEFAULT_EVENTS_URL)
    source: str = "keelwatch"


def dedup_key(alert: NotifiedAlert) -> str:
    """The stable PagerDuty ``dedup_key`` of ``alert`` (at most 255 characters)."""
    return (DEDUP_PREFIX + alert.fingerprint)[:255]


def pagerduty_severity(label: str) -> str:
    """Keelwatch's ``severity`` label as one of PagerDuty's four; unknown ones become error."""
    label = label.lower()
    if label in _SEVERITIES:
        return label
    return _SEVERITY_ALIASES.get(label, "error")


def _event_action(notification: Notification, alert: NotifiedAlert) -> str:
    # A resolved alert resolves its incident even inside a group that still fires; an
    # acknowledgement applies to the whole group.
    if notification.state is NotificationState.ACKNOWLEDGED:
        return "acknowledge"
    return _ACTIONS[alert.status]


def pagerduty_event(
    notification: Notification, alert: NotifiedAlert, routing_key: str, source: str
) -> dict[str, Any]:
    """One Events API v2 event for ``alert``; ``payload`` only on ``trigger``, as the API asks."""
    action = _event_action(notification, alert)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(alert),
    }
    if action != "trigger":
        return event
    summary = alert.summary
    if alert.value is not None:
        summary = f"{summary} (value {alert.value:.6g})"
    event["payload"] = {
        "summary": summary[:_SUMMARY_LIMIT],
        "source": alert.labels.get("model", source),
        "severity": pagerduty_severity(alert.severity),
        "timestamp": isoformat(alert.starts_at),
        "component": alert.labels.get("model", source),
        "group": alert.labels.get("monitor", notification.group_key)[:255],
        "class": alert.name,
        "custom_details": {
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "value": alert.value,
            "group_key": notification.group_key,
            "fingerprint": alert.fingerprint,
        },
    }
    event["client"] = "Keelwatch"
    links = [{"href": alert.runbook_url, "text": "Runbook"}] if alert.runbook_url else []
    links += [{"href": url, "text": name} for name, url in sorted(notification.links.items())]
    if alert.generator_url:
        event["client_url"] = alert.generator_url
    if links:
        event["links"] = links
    return event


class PagerDutyNotifier(HttpNotifier[PagerDutyConfig]):
    """Sends one Events API v2 event per alert of the notification."""

    type_name = "pagerduty"
    config_type = PagerDutyConfig

    @property
    def target(self) -> str:
        """The Events API endpoint (the routing key is never part of it)."""
        return display_url(str(self.config.url))

    def render(self, notification: Notification) -> Sequence[HttpRequest]:
        """One POST per alert; a resend carries the same ``dedup_key`` values."""
        headers = {"Content-Type": "application/json", "User-Agent": "keelwatch-notifier"}
        key = self.config.routing_key.get_secret_value()
        return tuple(
            HttpRequest(
                "POST",
                str(self.config.url),
                self.target,
                headers,
                json_body(pagerduty_event(notification, alert, key, self.config.source)),
            )
            for alert in notification.alerts
        )
