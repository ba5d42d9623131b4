"""The notifier contract's channels: each notifier type wired to a real receiver on loopback.

A channel gives the contract suite in ``test_notifiers.py`` what it needs to know about one
notifier: a config for its live receiver and for one that is down, the secrets that must never
show, the last state the receiver holds for an alert, and a way to make the receiver fail.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keelwatch.alerting.notifiers import Notifier, create_notifier
from keelwatch.entities.notifications import NotificationState
from tests.integration.notifier_receivers import (
    ALERTMANAGER_BIN,
    HttpCapture,
    HttpReceiver,
    alertmanager,
    free_port,
    http_receiver,
    smtp_receiver,
)

FIRING, RESOLVED = NotificationState.FIRING, NotificationState.RESOLVED
WEBHOOK_SECRET = "whsec-0123456789-abcdefghij"
SLACK_PATH = "/services/T0KEEL/B0WATCH/slackSecretPath0123456789"
ROUTING_KEY = "R0uTiNgKeY0123456789abcdefABCDEF"
AM_TOKEN = "am-bearer-token-0123456789"
SMTP_USER, SMTP_PASSWORD = "keelwatch", "smtp-password-0123456789"


# --------------------------------------------------------------------------- channels


@dataclass
class Channel:
    """One notifier type wired to its live receiver."""

    type_name: str
    config: dict[str, Any]
    down_config: dict[str, Any]
    secrets: tuple[str, ...]
    state_of: Callable[[str], str | None]
    """The last state the receiver holds for an alert fingerprint (``None``: never seen)."""
    fault: Callable[[str], contextlib.AbstractContextManager[dict[str, Any]]]
    """``fault("retryable"|"permanent")`` yields the config of a receiver failing that way."""

    def notifier(self) -> Notifier[Any, Any]:
        return create_notifier(self.type_name, self.config)


def _status_fault(receiver: HttpReceiver, config: dict[str, Any]) -> Callable[..., Any]:
    @contextlib.contextmanager
    def fault(kind: str) -> Iterator[dict[str, Any]]:
        receiver.status = 503 if kind == "retryable" else 400
        try:
            yield config
        finally:
            receiver.status = 200

    return fault


def _last(captures: list[HttpCapture], pick: Callable[[HttpCapture], str | None]) -> str | None:
    states = [state for state in map(pick, captures) if state is not None]
    return states[-1] if states else None


@contextlib.contextmanager
def webhook_channel(_tmp_path: Path) -> Iterator[Channel]:
    with http_receiver() as receiver:

        def state_of(fingerprint: str) -> str | None:
            def pick(capture: HttpCapture) -> str | None:
                for alert in capture.json()["alerts"]:
                    if alert["fingerprint"] == fingerprint:
                        return str(alert["status"])
                return None

            return _last(receiver.requests, pick)

        config = {"url": f"{receiver.url}/hooks/keelwatch", "secret": WEBHOOK_SECRET}
        down = {**config, "url": f"http://127.0.0.1:{free_port()}/hooks"}
        yield Channel(
            "webhook", config, down, (WEBHOOK_SECRET,), state_of, _status_fault(receiver, config)
        )


@contextlib.contextmanager
def slack_channel(_tmp_path: Path) -> Iterator[Channel]:
    with http_receiver() as receiver:

        def state_of(fingerprint: str) -> str | None:
            def pick(capture: HttpCapture) -> str | None:
                message = capture.json()
                if fingerprint not in json_text(message["blocks"]):
                    return None
                header = message["blocks"][0]["text"]["text"]
                return "resolved" if header.startswith("[RESOLVED]") else "firing"

            return _last(receiver.requests, pick)

        config = {"url": receiver.url + SLACK_PATH}
        down = {"url": f"http://127.0.0.1:{free_port()}{SLACK_PATH}"}
        secrets = (SLACK_PATH.rsplit("/", 1)[1],)
        yield Channel("slack", config, down, secrets, state_of, _status_fault(receiver, config))


def json_text(value: Any) -> str:
    return json.dumps(value)


PD_SEVERITIES = {"critical", "error", "warning", "info"}


def pagerduty_check(capture: HttpCapture) -> tuple[int, bytes]:
    """What PagerDuty's Events API v2 checks before it answers 202."""
    event = capture.json()
    errors = []
    if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
        errors.append("routing_key must be a 32-character string")
    if event.get("event_action") not in {"trigger", "acknowledge", "resolve"}:
        errors.append("event_action is invalid")
    if not 0 < len(event.get("dedup_key", "")) <= 255:
        errors.append("dedup_key is required for this receiver and at most 255 characters")
    if event.get("event_action") == "trigger":
        payload = event.get("payload") or {}
        errors += [
            f"payload.{k} is missing"
            for k in ("summary", "source", "severity")
            if not payload.get(k)
        ]
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append("payload.severity is invalid")
        if len(payload.get("summary", "")) > 1024:
            errors.append("payload.summary is too long")
        datetime.fromisoformat(payload["timestamp"])
    if errors:
        return 400, json_text({"status": "invalid event", "errors": errors}).encode()
    body = {"status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]}
    return 202, json_text(body).encode()


@contextlib.contextmanager
def pagerduty_channel(_tmp_path: Path) -> Iterator[Channel]:
    with http_receiver() as receiver:
        receiver.responder = pagerduty_check

        def state_of(fingerprint: str) -> str | None:
            def pick(capture: HttpCapture) -> str | None:
                event = capture.json()
                if event["dedup_key"] != f"keelwatch-{fingerprint}":
                    return None
                return {"trigger": "firing", "resolve": "resolved"}.get(event["event_action"])

            accepted = [c for c in receiver.requests if pagerduty_check(c)[0] == 202]
            return _last(accepted, pick)

        config = {"routing_key": ROUTING_KEY, "url": f"{receiver.url}/v2/enqueue"}
        down = {**config, "url": f"http://127.0.0.1:{free_port()}/v2/enqueue"}
        yield Channel(
            "pagerduty", config, down, (ROUTING_KEY,), state_of, _status_fault(receiver, config)
        )


@contextlib.contextmanager
def alertmanager_channel(tmp_path: Path) -> Iterator[Channel]:
    if ALERTMANAGER_BIN is None:
        pytest.skip(
            "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
        )
    with alertmanager(tmp_path) as am:

        def state_of(fingerprint: str) -> str | None:
            now = datetime.now(UTC)
            for alert in am.alerts():
                if alert["annotations"].get("keelwatch_fingerprint") == fingerprint:
                    ends = datetime.fromisoformat(alert["endsAt"])
                    return "resolved" if ends <= now else "firing"
            # Alertmanager's API lists active alerts only: a resolved one drops out.
            return "resolved" if seen.get(fingerprint) else None

        seen: dict[str, bool] = {}

        def tracking_state_of(fingerprint: str) -> str | None:
            state = state_of(fingerprint)
            if state == "firing":
                seen[fingerprint] = True
            return state

        @contextlib.contextmanager
        def fault(kind: str) -> Iterator[dict[str, Any]]:
            # The real Alertmanager cannot be told to fail; a stand-in answers like a proxy would.
            with http_receiver() as stand_in:
                stand_in.status = 503 if kind == "retryable" else 400
                yield {"url": stand_in.url, "bearer_token": AM_TOKEN}

        config = {"url": am.url, "bearer_token": AM_TOKEN}
        down = {**config, "url": f"http://127.0.0.1:{free_port()}"}
        yield Channel("alertmanager", config, down, (AM_TOKEN,), tracking_state_of, fault)


@contextlib.contextmanager
def email_channel(tmp_path: Path) -> Iterator[Channel]:
    with smtp_receiver(tls_dir=tmp_path, login=(SMTP_USER, SMTP_PASSWORD)) as smtp:
        handler = smtp.handler

        def state_of(fingerprint: str) -> str | None:
            states = []
            for capture in handler.messages:
                message = email.message_from_bytes(capture.content, policy=email.policy.default)
                if fingerprint in str(message["Subject"]):
                    states.append(str(message["X-Keelwatch-State"]))
            return states[-1] if states else None

        @contextlib.contextmanager
        def fault(kind: str) -> Iterator[dict[str, Any]]:
            if kind == "retryable":
                handler.data_reply = "451 4.3.0 Mailbox temporarily unavailable"
            else:
                handler.rcpt_reply = "550 5.1.1 No such user"
            try:
                yield config
            finally:
                handler.data_reply = handler.rcpt_reply = None

        config = {
            "host": smtp.host,
            "port": smtp.port,
            "from_addr": "keelwatch@example.org",
            "to": ["oncall@example.org", "ml@example.org"],
            "starttls": True,
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
            "ca_file": str(smtp.ca_file),
        }
        down = {**config, "port": free_port()}
        yield Channel("email", config, down, (SMTP_PASSWORD,), state_of, fault)


CHANNELS = {
    "webhook": webhook_channel,
    "slack": slack_channel,
    "pagerduty": pagerduty_channel,
    "alertmanager": alertmanager_channel,
    "email": email_channel,
}
