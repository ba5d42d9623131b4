"""Slack incoming webhook: one Block Kit message per notification.

The message: a header (``[FIRING]`` or ``[RESOLVED]`` and the alert name), per alert a section
with its summary and fields (model, version, value, severity), and link buttons for the
runbook and the notification's links (MLflow, Keelwatch). The incoming-webhook URL's path is
the credential, so the URL is a secret and only ``https://hooks.slack.com/**********`` is
ever shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr, field_validator

from keelwatch.alerting.notifiers._contract import HttpRequest, NotifierConfig
from keelwatch.alerting.notifiers._http import HttpNotifier, display_url, json_body
from keelwatch.entities.notifications import Notification, NotificationState, NotifiedAlert

MAX_ALERTS_SHOWN = 10
"""Slack caps a message at 50 blocks; beyond this many alerts the message says how many more."""

_HEADER_LIMIT = 150
_MAX_BUTTONS = 5
_LINK_NAMES = {"mlflow": "MLflow", "keelwatch": "Keelwatch", "runbook": "Runbook"}
_TEXT_LIMIT = 3000
_STATE_WORD = {
    NotificationState.FIRING: "FIRING",
    NotificationState.RESOLVED: "RESOLVED",
    NotificationState.ACKNOWLEDGED: "ACKNOWLEDGED",
}
_STATE_EMOJI = {
    NotificationState.FIRING: ":red_circle:",
    NotificationState.RESOLVED: ":large_green_circle:",
    NotificationState.ACKNOWLEDGED: ":eyes:",
}


class SlackConfig(NotifierConfig):
    """``url``: the incoming-webhook URL (secret); ``username``: optional display name."""

    url: SecretStr
    username: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _alert_blocks(alert: NotifiedAlert) -> list[dict[str, Any]]:
    labels = alert.labels
    fields = [
        ("Model", labels.get("model", "-")),
        ("Version", labels.get("version", labels.get("alias", "-"))),
        ("Value", _value(alert.value)),
        ("Severity", alert.severity),
    ]
    word = "resolved" if alert.status is NotificationState.RESOLVED else alert.status.value
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(f"*{alert.summary}* ({word})", _TEXT_LIMIT)},
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
        }
    ]


def _buttons(notification: Notification) -> list[dict[str, Any]]:
    links: dict[str, str] = {}
    runbook = next((a.runbook_url for a in notification.alerts if a.runbook_url), None)
    if runbook:
        links["Runbook"] = runbook
    for name, url in sorted(notification.links.items()):
        links.setdefault(_LINK_NAMES.get(name, name.capitalize()), url)
    return [
        {"type": "button", "text": {"type": "plain_text", "text": _cut(name, 75)}, "url": url}
        for name, url in list(links.items())[:_MAX_BUTTONS]
    ]


def slack_message(notification: Notification, username: str | None = None) -> dict[str, Any]:
    """The Block Kit message for ``notification`` (``text`` is the fallback for previews)."""
    first = notification.alerts[0]
    state = notification.state
    title = f"[{_STATE_WORD[state]}] {first.name}"
    if len(notification.alerts) > 1:
        title += f" ({len(notification.alerts)} alerts)"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_LIMIT)}}
    ]
    if state is NotificationState.RESOLVED:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "All alerts resolved."}]}
        )
    for alert in notification.alerts[:MAX_ALERTS_SHOWN]:
        blocks.extend(_alert_blocks(alert))
    hidden = len(notification.alerts) - MAX_ALERTS_SHOWN
    if hidden > 0:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {hidden} more"}]}
        )
    buttons = _buttons(notification)
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    message: dict[str, Any] = {
        "text": f"{_STATE_EMOJI[state]} {title}: {first.summary}",
        "blocks": blocks,
    }
    if username:
        message["username"] = username
    return message


class SlackNotifier(HttpNotifier[SlackConfig]):
    """POSTs :func:`slack_message` to a Slack incoming webhook."""

    type_name = "slack"
    config_type = SlackConfig

    @property
    def target(self) -> str:
        """The webhook's scheme and host; its path (the credential) masked."""
        return display_url(self.config.url.get_secret_value(), secret_path=True)

    def render(self, notification: Notification) -> Sequence[HttpRequest]:
        """One POST of the Block Kit message."""
        body = json_body(slack_message(notification, self.config.username))
        headers = {"Content-Type": "application/json", "User-Agent": "keelwatch-notifier"}
        return (
            HttpRequest("POST", self.config.url.get_secret_value(), self.target, headers, body),
        )
