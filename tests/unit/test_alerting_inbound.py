"""Inbound Alertmanager payloads: parsing with clear errors, conversion to signals, and the
bearer-token and HMAC checks that guard the route."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keelwatch.alerting.inbound import (
    ALERTMANAGER_SIGNAL,
    AuthenticationError,
    alertmanager_signals,
    check_bearer_token,
    check_body_signature,
    sign_body,
)
from keelwatch.errors import InvalidInputError
from keelwatch.schemas.alerts import parse_alertmanager_webhook

RECEIVED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "inbound-secret-0123456789"
#: hmac.new(b"key", b"1.{}", hashlib.sha256).hexdigest(), computed once by hand.
KNOWN_DIGEST = "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"


def payload(**changes: Any) -> dict[str, Any]:
    """A version-4 payload as Alertmanager 0.25 sends it: one firing and one resolved alert."""
    body: dict[str, Any] = {
        "receiver": "keelwatch",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "ServingLatencyHigh",
                    "model": "churn",
                    "severity": "warning",
                },
                "annotations": {"summary": "p95 above 300 ms"},
                "startsAt": "2025-03-01T11:58:00.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
                "fingerprint": "c3f1a2b4d5e6f708",
            },
            {
                "status": "resolved",
                "labels": {"alertname": "ServingErrors", "model": "churn"},
                "annotations": {},
                "startsAt": "2025-03-01T11:00:00Z",
                "endsAt": "2025-03-01T11:30:00Z",
                "generatorURL": "",
                "fingerprint": "0a1b2c3d4e5f6071",
            },
        ],
        "groupLabels": {"model": "churn"},
        "commonLabels": {"model": "churn"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{model="churn"}',
        "truncatedAlerts": 0,
    }
    body.update(changes)
    return body


def test_payload_becomes_one_signal_per_alert() -> None:
    webhook = parse_alertmanager_webhook(json.dumps(payload()).encode())
    assert webhook.group_key == '{}:{model="churn"}'
    assert webhook.alerts[0].ends_at == datetime(1, 1, 1, tzinfo=UTC)

    firing, resolved = alertmanager_signals(webhook.alerts, received_at=RECEIVED)

    assert firing.name == resolved.name == ALERTMANAGER_SIGNAL
    assert (firing.value, resolved.value) == (1.0, 0.0)
    assert firing.labels == {
        "alertname": "ServingLatencyHigh",
        "model": "churn",
        "severity": "warning",
    }
    assert firing.source == "alertmanager:c3f1a2b4d5e6f708"
    assert resolved.source == "alertmanager:0a1b2c3d4e5f6071"
    assert firing.observed_at == resolved.observed_at == RECEIVED
    # The same alert is the same series however often it is re-sent.
    again = alertmanager_signals(parse_alertmanager_webhook(payload()).alerts, received_at=RECEIVED)
    assert again[0].fingerprint == firing.fingerprint


def test_unknown_fields_are_ignored() -> None:
    webhook = parse_alertmanager_webhook(payload(newField={"x": 1}))
    assert len(webhook.alerts) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON at position 1"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (payload(version="3"), "version: Alertmanager webhook payload version '4'"),
        ({k: v for k, v in payload().items() if k != "alerts"}, "alerts: Field required"),
        ({k: v for k, v in payload().items() if k != "groupKey"}, "groupKey: Field required"),
        (payload(status="pending"), "status: Input should be 'firing' or 'resolved'"),
        (payload(truncatedAlerts=-1), "truncatedAlerts: Input should be greater than"),
    ],
)
def test_malformed_payload_names_the_field(body: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_alertmanager_webhook(body)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "silenced"}, "alerts[1].status: Input should be 'firing' or 'resolved'"),
        ({"startsAt": "yesterday"}, "alerts[1].startsAt: Input should be a valid datetime"),
        ({"fingerprint": ""}, "alerts[1].fingerprint: String should have at least 1 character"),
        ({"labels": {"bad-name": "v"}}, "alerts[1].labels.bad-name.[key]: String should match"),
        ({"labels": {"model": 3}}, "alerts[1].labels.model: Input should be a valid string"),
    ],
)
def test_malformed_alert_names_its_position(change: dict[str, Any], message: str) -> None:
    body = payload()
    body["alerts"][1].update(change)
    with pytest.raises(InvalidInputError) as caught:
        parse_alertmanager_webhook(body)
    assert message in str(caught.value)
    # The sender's values are never echoed back.
    for value in change.values():
        if isinstance(value, str) and value:
            assert value not in str(caught.value)


def test_bearer_token() -> None:
    check_bearer_token("Bearer s3cret-token", "s3cret-token")
    check_bearer_token("bearer  s3cret-token ", "s3cret-token")
    for header, message in [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <token>'"),
        ("Bearer", "must be 'Bearer <token>'"),
        ("Bearer wrong", "invalid bearer token"),
    ]:
        with pytest.raises(AuthenticationError, match=message) as caught:
            check_bearer_token(header, "s3cret-token")
        assert caught.value.status_code == 401
        assert "s3cret-token" not in str(caught.value)
    with pytest.raises(AuthenticationError, match="no token is configured"):
        check_bearer_token("Bearer ", "")


def test_body_signature() -> None:
    body = json.dumps(payload()).encode()
    now = RECEIVED
    stamp = int(now.timestamp())
    header = sign_body(SECRET, body, stamp)
    # A known answer, so the scheme cannot drift unnoticed: HMAC-SHA256(secret, "<t>." + body).
    assert sign_body("key", b"{}", 1) == "t=1,v1=" + KNOWN_DIGEST
    assert check_body_signature(header, body, SECRET, now=now) == stamp
    # Rotation: the old and new secrets' signatures both accepted.
    rotated = f"{header},v1={sign_body('other-secret-0123456', body, stamp).split('v1=')[1]}"
    assert check_body_signature(rotated, body, SECRET, now=now) == stamp

    failures = [
        (None, body, now, "missing X-Keelwatch-Signature"),
        ("garbage", body, now, "malformed item"),
        ("t=abc,v1=00", body, now, "t is not a Unix timestamp"),
        (f"t={stamp}", body, now, "needs t=<timestamp> and v1=<signature>"),
        (header, body + b" ", now, "does not match the body"),
        (sign_body("wrong-secret-000000", body, stamp), body, now, "does not match"),
        (header, body, now + timedelta(minutes=6), "rejected as a possible replay"),
    ]
    for sent, sent_body, at, message in failures:
        with pytest.raises(AuthenticationError, match=message):
            check_body_signature(sent, sent_body, SECRET, now=at)
    with pytest.raises(AuthenticationError, match="no secret is configured"):
        check_body_signature(header, body, "", now=now)
