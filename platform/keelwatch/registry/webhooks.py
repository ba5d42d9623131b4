"""MLflow registry webhooks: checking a delivery's signature and reading what it is about.

MLflow 3's tracking server (with a SQL store; a file store sends none) posts registry events to
webhooks made with ``MlflowClient.create_webhook``. Keelwatch subscribes to
``model_version_alias.created`` and ``model_version_alias.deleted`` at
``POST /registry/webhooks/mlflow`` so an alias changed outside Keelwatch is watched at once
instead of at the next poll (``registry.watch_interval_s``, which stays on: a delivery can be
lost, and a server without webhooks sends none).

A delivery is signed as MLflow documents it (Standard Webhooks style): the header
``X-MLflow-Signature: v1,<base64 HMAC-SHA256>`` over ``<delivery id>.<timestamp>.<body>``,
with ``X-MLflow-Delivery-Id`` and ``X-MLflow-Timestamp`` (Unix seconds), keyed by the secret
given to ``create_webhook`` (``registry.webhook_secret`` here).

Pure: bytes and headers in, an event or an :class:`AuthenticationError` / 422 out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from keelwatch.auth.errors import AuthenticationError
from keelwatch.errors import InvalidInputError
from keelwatch.registry.refs import validate_model_name

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
#: The MLflow webhook events that mean "an alias changed": the ones to subscribe.
ALIAS_EVENTS = ("model_version_alias.created", "model_version_alias.deleted")


def sign_delivery(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow sends for ``body`` (``v1,<base64>``)."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def check_delivery_signature(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: datetime, max_age_s: float
) -> None:
    """Accept a delivery signed with ``secret`` within ``max_age_s`` of ``now``; raise
    :class:`AuthenticationError` (401) otherwise. No message repeats what was sent."""
    if not secret:
        raise AuthenticationError(
            "MLflow webhooks are disabled: no secret is configured (registry.webhook_secret)"
        )
    signature = headers.get(SIGNATURE_HEADER)
    delivery_id = headers.get(DELIVERY_ID_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    for name, value in (
        (SIGNATURE_HEADER, signature),
        (DELIVERY_ID_HEADER, delivery_id),
        (TIMESTAMP_HEADER, timestamp),
    ):
        if not value:
            raise AuthenticationError(f"missing {name} header")
    assert signature is not None and delivery_id is not None and timestamp is not None
    if not timestamp.strip().isdigit():
        raise AuthenticationError(f"{TIMESTAMP_HEADER} is not a Unix timestamp")
    sent_at = int(timestamp.strip())
    expected = sign_delivery(secret, delivery_id, sent_at, body)
    # Several space-separated signatures are allowed (a secret being rotated); every one is
    # compared, so timing says nothing about which matched.
    candidates = signature.split()
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]
    if not any(matches):
        raise AuthenticationError(f"{SIGNATURE_HEADER} does not match the body")
    skew = abs(now.timestamp() - sent_at)
    if skew > max_age_s:
        raise AuthenticationError(
            f"{TIMESTAMP_HEADER} is {skew:.0f}s away from now (limit {max_age_s:g}s): rejected "
            "as a possible replay"
        )


@dataclass(frozen=True)
class WebhookEvent:
    """What a delivery is about: ``entity.action`` and the model it names (if any)."""

    event: str
    model: str | None

    @property
    def changes_aliases(self) -> bool:
        """An alias was set or deleted: the model's aliases need a watch."""
        return self.event in ALIAS_EVENTS and self.model is not None


def parse_delivery(body: bytes) -> WebhookEvent:
    """MLflow's webhook body (``{"entity", "action", "timestamp", "data": {"name", ...}}``);
    :class:`InvalidInputError` (422) naming the field that is missing or wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError("webhook body is not JSON") from exc
    if not isinstance(payload, dict):
        raise InvalidInputError("webhook body must be a JSON object")
    parts = []
    for field in ("entity", "action"):
        value = payload.get(field)
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"webhook field {field!r} must be a non-empty string")
        parts.append(value)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise InvalidInputError("webhook field 'data' must be an object")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidInputError("webhook field 'data.name' must be a string")
    return WebhookEvent(
        event=".".join(parts), model=validate_model_name(name) if name is not None else None
    )
