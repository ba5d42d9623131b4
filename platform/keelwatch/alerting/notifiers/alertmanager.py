"""Prometheus Alertmanager: ``POST <url>/api/v2/alerts`` with the group's alerts.

Each alert carries its labels, annotations (the summary, the value, the runbook), ``startsAt``,
``generatorURL`` and, once resolved, ``endsAt`` = the resolution time, which is how
Alertmanager learns an alert ended. A firing alert gets ``endsAt`` = now +
``firing_ends_after_s`` when that is set (what Prometheus does, so an alert that Keelwatch
stops re-sending expires); otherwise Alertmanager's own ``resolve_timeout`` applies.

Alertmanager accepts only label names matching ``[a-zA-Z_][a-zA-Z0-9_]*``; other characters
become ``_``. Acknowledged groups are re-sent as firing: Alertmanager has no acknowledgement
(alertmanager#1860), so silencing it there stays a person's decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr

from keelwatch.alerting.notifiers._contract import HttpRequest, NotifierConfig
from keelwatch.alerting.notifiers._http import HttpNotifier, display_url, isoformat, json_body
from keelwatch.entities.notifications import Notification, NotificationState, NotifiedAlert

ALERTS_PATH = "/api/v2/alerts"
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class AlertmanagerConfig(NotifierConfig):
    """``url``: Alertmanager's base URL (``http://alertmanager:9093``); ``bearer_token``:
    optional, for an Alertmanager behind an authenticating proxy; ``firing_ends_after_s``:
    optional expiry sent with firing alerts."""

    url: AnyHttpUrl
    bearer_token: SecretStr | None = None
    firing_ends_after_s: float | None = Field(default=None, gt=0)


def label_name(name: str) -> str:
    """``name`` as a valid Prometheus label name."""
    cleaned = _INVALID_LABEL_CHARS.sub("_", name) or "_"
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    out = {label_name(k): str(v) for k, v in labels.items() if str(v)}
    out.setdefault("alertname", "keelwatch_alert")
    return out


def postable_alert(
    notification: Notification, alert: NotifiedAlert, firing_ends_after_s: float | None
) -> dict[str, Any]:
    """One ``postableAlert`` of Alertmanager's v2 API for ``alert``."""
    annotations = {label_name(k): v for k, v in alert.annotations.items()}
    if alert.value is not None:
        annotations.setdefault("value", f"{alert.value:.6g}")
    if alert.runbook_url:
        annotations.setdefault("runbook_url", alert.runbook_url)
    annotations.setdefault("keelwatch_fingerprint", alert.fingerprint)
    body: dict[str, Any] = {
        "labels": _labels(alert.labels),
        "annotations": annotations,
        "startsAt": isoformat(alert.starts_at),
    }
    if alert.status is NotificationState.RESOLVED:
        body["endsAt"] = isoformat(alert.ends_at or notification.created_at)
    elif firing_ends_after_s is not None:
        ends = notification.created_at + timedelta(seconds=firing_ends_after_s)
        body["endsAt"] = isoformat(ends)
    if alert.generator_url:
        body["generatorURL"] = alert.generator_url
    return body


class AlertmanagerNotifier(HttpNotifier[AlertmanagerConfig]):
    """Posts the group's alerts to Alertmanager in one request."""

    type_name = "alertmanager"
    config_type = AlertmanagerConfig

    @property
    def _endpoint(self) -> str:
        return str(self.config.url).rstrip("/") + ALERTS_PATH

    @property
    def target(self) -> str:
        """The alerts endpoint."""
        return display_url(self._endpoint)

    def render(self, notification: Notification) -> Sequence[HttpRequest]:
        """One POST with every alert of the group."""
        headers = {"Content-Type": "application/json", "User-Agent": "keelwatch-notifier"}
        if self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token.get_secret_value()}"
        alerts = [
            postable_alert(notification, alert, self.config.firing_ends_after_s)
            for alert in notification.alerts
        ]
        return (HttpRequest("POST", self._endpoint, self.target, headers, json_body(alerts)),)
