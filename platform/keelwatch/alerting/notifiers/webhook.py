"""Generic webhook: a JSON body signed with HMAC-SHA256, Stripe-style.

Headers on every request:

- ``X-Keelwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``
- ``X-Keelwatch-Idempotency-Key: <key>`` (the same for every resend of one notification)

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes, compares it
in constant time, and rejects a timestamp older than its tolerance, so a captured request
cannot be replayed later. :func:`verify_signature` does exactly that; ``docs/alerting.md``
shows the same check in a dozen lines of standard-library Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr

from keelwatch.alerting.inbound import (
    DEFAULT_SIGNATURE_TOLERANCE_S,
    SIGNATURE_HEADER,
    AuthenticationError,
    check_body_signature,
    sign_body,
)
from keelwatch.alerting.notifiers._contract import HttpRequest, NotifierConfig
from keelwatch.alerting.notifiers._http import HttpNotifier, display_url, isoformat, json_body
from keelwatch.entities.notifications import Notification, NotifiedAlert
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError

IDEMPOTENCY_HEADER = "X-Keelwatch-Idempotency-Key"
PAYLOAD_VERSION = "1"
DEFAULT_TOLERANCE_S = DEFAULT_SIGNATURE_TOLERANCE_S


class SignatureError(InvalidInputError):
    """A webhook request's signature is missing, malformed, wrong or too old."""


class WebhookConfig(NotifierConfig):
    """``url``: where to POST; ``secret``: the shared HMAC key (at least 16 characters)."""

    url: AnyHttpUrl
    secret: SecretStr = Field(min_length=16)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Keelwatch-Signature`` header value for ``body`` sent at ``timestamp``.

    One scheme for both directions: inbound alerts (``keelwatch.alerting.inbound``) accept the
    same header, so this delegates to it rather than keeping a second copy of the HMAC."""
    return sign_body(secret, body, timestamp)


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: datetime | None = None,
) -> int:
    """Check an ``X-Keelwatch-Signature`` header against the raw ``body``; return its timestamp.

    Raises :class:`SignatureError` when the header is malformed, no ``v1`` signature matches
    (several are accepted, so a secret can be rotated), or the timestamp is more than
    ``tolerance_s`` away from ``now`` (a replay). ``now`` defaults to the current time.
    """
    try:
        return check_body_signature(
            header, body, secret, now=now or utcnow(), tolerance_s=tolerance_s
        )
    except AuthenticationError as exc:
        raise SignatureError(str(exc)) from None


def alert_payload(alert: NotifiedAlert) -> dict[str, Any]:
    """One alert as the webhook (and other JSON notifiers) show it."""
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "value": alert.value,
        "startsAt": isoformat(alert.starts_at),
        "endsAt": isoformat(alert.ends_at) if alert.ends_at else None,
        "generatorURL": alert.generator_url,
        "runbookURL": alert.runbook_url,
    }


def notification_payload(notification: Notification) -> dict[str, Any]:
    """The webhook body: the group, its state and sequence, and every alert."""
    return {
        "version": PAYLOAD_VERSION,
        "groupKey": notification.group_key,
        "status": notification.state.value,
        "sequence": notification.sequence,
        "idempotencyKey": notification.idempotency_key,
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "links": dict(notification.links),
        "createdAt": isoformat(notification.created_at),
        "alerts": [alert_payload(alert) for alert in notification.alerts],
    }


class WebhookNotifier(HttpNotifier[WebhookConfig]):
    """POSTs :func:`notification_payload` as JSON, signed with the shared secret."""

    type_name = "webhook"
    config_type = WebhookConfig

    @property
    def target(self) -> str:
        """The webhook URL with its query (often a token) masked."""
        return display_url(str(self.config.url))

    def render(self, notification: Notification) -> Sequence[HttpRequest]:
        """One POST of the JSON body, not yet signed (see :meth:`send_one`)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "keelwatch-notifier",
            IDEMPOTENCY_HEADER: notification.idempotency_key,
        }
        body = json_body(notification_payload(notification))
        return (HttpRequest("POST", str(self.config.url), self.target, headers, body),)

    def send_one(self, request: HttpRequest) -> str:
        """Sign at send time, not render time: a retry minutes later must still fall inside
        the receiver's replay tolerance, and the body (hence the idempotency) is unchanged."""
        timestamp = int(utcnow().timestamp())
        signature = sign(self.config.secret.get_secret_value(), request.body, timestamp)
        signed = replace(request, headers={**request.headers, SIGNATURE_HEADER: signature})
        return super().send_one(signed)


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SignatureError",
    "WebhookConfig",
    "WebhookNotifier",
    "alert_payload",
    "notification_payload",
    "sign",
    "verify_signature",
]
