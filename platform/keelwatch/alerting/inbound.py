"""Inbound alerts: what another alerting system tells Keelwatch, turned into signals.

Prometheus Alertmanager posts its webhook payload (parsed and validated by
:func:`keelwatch.schemas.alerts.parse_alertmanager_webhook`) to
``POST /alerts/inbound/alertmanager``; each alert in it becomes one signal, so a Prometheus rule
on latency or errors (Keelwatch's own metrics or the user's serving stack) can drive Keelwatch
rules and actions like any drift result:

- name ``inbound.alertmanager.firing``, value ``1.0`` while the alert fires and ``0.0`` once
  Alertmanager says it resolved;
- labels: the alert's own labels (``alertname`` among them, as Alertmanager always sends it);
- ``observed_at``: when Keelwatch received the notification;
- source ``alertmanager:<fingerprint>`` (Alertmanager's fingerprint of the alert's labels).

Authentication, checked before the body is parsed: a bearer token (what Alertmanager's
``http_config.authorization`` sends) or, for senders that can sign, an HMAC-SHA256 signature in
``X-Keelwatch-Signature: t=<unix seconds>,v1=<hex>`` over ``f"{t}."`` + the raw body, the same
scheme Keelwatch's own webhook notifier signs with, so a replayed request is rejected.

Pure: the standard library, entities and errors only; the alert shapes are described by a
protocol that the Pydantic schema satisfies, so this module never imports Pydantic or the API.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError, KeelwatchError

#: The signal every inbound Alertmanager alert becomes.
ALERTMANAGER_SIGNAL = "inbound.alertmanager.firing"
#: Prefix of the signal's source; the alert's fingerprint follows.
ALERTMANAGER_SOURCE_PREFIX = "alertmanager:"
#: Header carrying an HMAC signature of the request body.
SIGNATURE_HEADER = "X-Keelwatch-Signature"
#: How far a signature's timestamp may be from now before the request counts as a replay.
DEFAULT_SIGNATURE_TOLERANCE_S = 300.0


class InboundAlert(Protocol):
    """What the conversion reads of one alert (:class:`~keelwatch.schemas.alerts.AlertmanagerAlert`
    has these attributes)."""

    @property
    def status(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def fingerprint(self) -> str: ...


class AuthenticationError(KeelwatchError):
    """The request is not from a sender that knows the shared token or secret (HTTP 401)."""

    status_code = 401


# --------------------------------------------------------------------------- signals


def alertmanager_signals(alerts: Iterable[InboundAlert], *, received_at: datetime) -> list[Signal]:
    """One ``inbound.alertmanager.firing`` signal per alert (1.0 firing, 0.0 resolved).

    ``received_at`` (timezone-aware) is the signals' time. An alert whose status is neither
    ``firing`` nor ``resolved`` raises :class:`~keelwatch.errors.InvalidInputError` naming its
    position.
    """
    signals = []
    for index, alert in enumerate(alerts):
        if alert.status not in ("firing", "resolved"):
            raise InvalidInputError(f"alerts[{index}].status: expected 'firing' or 'resolved'")
        signals.append(
            Signal(
                name=ALERTMANAGER_SIGNAL,
                value=1.0 if alert.status == "firing" else 0.0,
                labels=dict(alert.labels),
                observed_at=received_at,
                source=f"{ALERTMANAGER_SOURCE_PREFIX}{alert.fingerprint}",
            )
        )
    return signals


# --------------------------------------------------------------------------- authentication


def check_bearer_token(authorization: str | None, expected: str) -> None:
    """Accept ``Authorization: Bearer <expected>``; raise :class:`AuthenticationError` otherwise.

    The comparison takes the same time whatever the token (``hmac.compare_digest``), and no
    message repeats what was sent.
    """
    if not expected:
        raise AuthenticationError("inbound alerts are disabled: no token is configured")
    if not authorization:
        raise AuthenticationError("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization header must be 'Bearer <token>'")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthenticationError("invalid bearer token")


def sign_body(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Keelwatch-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def check_body_signature(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    now: datetime,
    tolerance_s: float = DEFAULT_SIGNATURE_TOLERANCE_S,
) -> int:
    """Check an ``X-Keelwatch-Signature`` header against the raw ``body``; return its timestamp.

    Several ``v1=`` values are accepted (a secret being rotated). Raises
    :class:`AuthenticationError` when the header is missing or malformed, no signature matches,
    or the timestamp is more than ``tolerance_s`` away from ``now`` (a possible replay).
    """
    if not secret:
        raise AuthenticationError("signed inbound alerts are disabled: no secret is configured")
    if not header:
        raise AuthenticationError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise AuthenticationError(f"{SIGNATURE_HEADER}: malformed item (expected k=v)")
        if key == "t":
            if not value.isdigit():
                raise AuthenticationError(f"{SIGNATURE_HEADER}: t is not a Unix timestamp")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise AuthenticationError(f"{SIGNATURE_HEADER}: needs t=<timestamp> and v1=<signature>")
    expected = sign_body(secret, body, timestamp).rpartition("v1=")[2]
    # Every candidate is compared, matched or not, so timing says nothing about which one.
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]
    if not any(matches):
        raise AuthenticationError(f"{SIGNATURE_HEADER}: signature does not match the body")
    skew = abs(now.timestamp() - timestamp)
    if skew > tolerance_s:
        raise AuthenticationError(
            f"{SIGNATURE_HEADER}: timestamp is {skew:.0f}s away from now "
            f"(tolerance {tolerance_s:g}s): rejected as a possible replay"
        )
    return timestamp
