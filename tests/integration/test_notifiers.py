"""Every notifier against a real receiver on loopback: one contract suite, run per notifier.

The contract (Dagster-style: the same tests, a receiver fixture per notifier): a firing and then
a resolved notification reach the receiver; ``render`` is pure and stable; a receiver that is
down or answers 5xx / 429 / SMTP 4xx gives a retryable error, a 4xx / SMTP 5xx a permanent one;
no secret appears in a repr, a target, a rendered request's repr or an error message; a bad
config is refused naming the field. Then per-notifier tests check each wire format: the signed
webhook, Slack's Block Kit, PagerDuty's Events v2 schema, Debian's real Alertmanager, and a
multipart email over STARTTLS with login.
"""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from keelwatch.alerting.notifiers import (
    MASK,
    NOTIFIER_TYPES,
    HttpRequest,
    NotifierConfigError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    create_notifier,
)
from keelwatch.alerting.notifiers.pagerduty import dedup_key
from keelwatch.alerting.notifiers.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    verify_signature,
)
from keelwatch.entities.notifications import Notification, NotificationState, NotifiedAlert
from tests.integration.notifier_channels import (
    CHANNELS,
    FIRING,
    RESOLVED,
    ROUTING_KEY,
    SLACK_PATH,
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_SECRET,
    Channel,
    json_text,
    pagerduty_check,
)
from tests.integration.notifier_receivers import (
    ALERTMANAGER_BIN,
    HttpCapture,
    alertmanager,
    http_receiver,
    smtp_receiver,
)

pytestmark = pytest.mark.integration


def make_notification(
    state: NotificationState = FIRING,
    *,
    fingerprint: str = "a1b2c3d4e5f60718",
    sequence: int = 1,
    created_at: datetime | None = None,
) -> Notification:
    created = created_at or datetime.now(UTC).replace(microsecond=0)
    alert = NotifiedAlert(
        fingerprint=fingerprint,
        status=state,
        labels={
            "alertname": "DriftDetected",
            "model": "churn",
            "version": "3",
            "severity": "critical",
            "monitor": "churn-drift",
        },
        annotations={"summary": f"Dataset drift on churn v3 ({fingerprint})"},
        value=0.4213,
        starts_at=created - timedelta(minutes=5),
        ends_at=created if state is RESOLVED else None,
        generator_url="http://keelwatch.local/monitors/churn-drift",
        runbook_url="https://runbooks.example/drift",
    )
    return Notification(
        group_key='{}:{alertname="DriftDetected"}',
        state=state,
        sequence=sequence,
        alerts=(alert,),
        created_at=created,
        receiver="ml-oncall",
        links={"mlflow": "http://mlflow.local/#/models/churn/versions/3"},
    )


def test_every_registered_notifier_has_a_contract_channel() -> None:
    assert set(CHANNELS) == set(NOTIFIER_TYPES)


@pytest.fixture(params=sorted(CHANNELS))
def channel(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Channel]:
    with CHANNELS[request.param](tmp_path) as live:
        yield live


# --------------------------------------------------------------------------- the contract


def _assert_no_secret(text: str, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        assert secret not in text


def test_firing_then_resolved_reach_the_receiver(channel: Channel) -> None:
    notifier = channel.notifier()
    fingerprint = f"fp{channel.type_name}0123"
    assert channel.state_of(fingerprint) is None

    receipt = notifier.deliver(make_notification(FIRING, fingerprint=fingerprint))
    assert channel.state_of(fingerprint) == "firing"
    assert receipt.notifier == channel.type_name
    assert receipt.attempts

    resolved = make_notification(RESOLVED, fingerprint=fingerprint, sequence=2)
    notifier.deliver(resolved)
    assert channel.state_of(fingerprint) == "resolved"
    _assert_no_secret(repr(receipt), channel.secrets)


def test_render_is_pure_and_stable(channel: Channel) -> None:
    notifier = channel.notifier()
    notification = make_notification()
    first, second = notifier.render(notification), notifier.render(notification)
    assert len(first) == len(second) >= 1

    def wire(request: Any) -> bytes:
        if isinstance(request, HttpRequest):
            return request.body
        assert isinstance(request, EmailMessage)
        return request.as_bytes()

    assert [wire(r) for r in first] == [wire(r) for r in second]
    other = notifier.render(make_notification(RESOLVED))
    assert [wire(r) for r in other] != [wire(r) for r in first]


def test_receiver_down_is_retryable_and_names_no_secret(channel: Channel) -> None:
    notifier = create_notifier(channel.type_name, channel.down_config)
    with pytest.raises(RetryableDeliveryError) as caught:
        notifier.deliver(make_notification())
    assert caught.value.retryable
    _assert_no_secret(str(caught.value), channel.secrets)


@pytest.mark.parametrize("kind", ["retryable", "permanent"])
def test_receiver_failures_are_classified(channel: Channel, kind: str) -> None:
    expected = RetryableDeliveryError if kind == "retryable" else PermanentDeliveryError
    with channel.fault(kind) as config:
        notifier = create_notifier(channel.type_name, config)
        with pytest.raises(expected) as caught:
            notifier.deliver(make_notification())
    assert caught.value.retryable is (kind == "retryable")
    assert caught.value.response_code is not None
    _assert_no_secret(str(caught.value), channel.secrets)


def test_secrets_never_show(channel: Channel) -> None:
    notifier = channel.notifier()
    shown = [
        repr(notifier),
        str(notifier),
        notifier.target,
        repr(notifier.config),
        str(notifier.config),
        repr(notifier.render(make_notification())),
    ]
    for text in shown:
        _assert_no_secret(text, channel.secrets)
    assert MASK in repr(notifier.config)


def test_bad_config_is_refused_naming_the_field(channel: Channel) -> None:
    with pytest.raises(NotifierConfigError, match="colour") as caught:
        create_notifier(channel.type_name, {**channel.config, "colour": "red"})
    assert channel.type_name in str(caught.value)
    _assert_no_secret(str(caught.value), channel.secrets)
    secret_field = next(
        k for k, v in channel.config.items() if any(s in str(v) for s in channel.secrets)
    )
    with pytest.raises(NotifierConfigError, match=secret_field):
        create_notifier(channel.type_name, {**channel.config, secret_field: 12})


def test_unknown_notifier_type_is_refused() -> None:
    with pytest.raises(NotifierConfigError, match=r"unknown notifier type 'teams'.*webhook"):
        create_notifier("teams", {})


# --------------------------------------------------------------------------- webhook


def verify_like_the_docs(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """The receiver snippet from docs/alerting.md, standard library only, kept in step here."""
    import hashlib
    import hmac

    items = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(items["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - timestamp) <= tolerance_s
    return fresh and hmac.compare_digest(expected.hexdigest(), items["v1"])


def test_webhook_is_signed_verifiable_and_idempotent() -> None:
    notification = make_notification()
    with http_receiver() as receiver:
        notifier = create_notifier("webhook", {"url": receiver.url, "secret": WEBHOOK_SECRET})
        notifier.deliver(notification)
        notifier.deliver(notification)  # a broker redelivery sends the same notification
    first, second = receiver.requests
    header = first.headers[SIGNATURE_HEADER.lower()]
    timestamp = verify_signature(WEBHOOK_SECRET, header, first.body)
    assert verify_like_the_docs(WEBHOOK_SECRET, header, first.body)
    assert first.body == second.body
    keys = {c.headers[IDEMPOTENCY_HEADER.lower()] for c in receiver.requests}
    assert keys == {notification.idempotency_key}
    body = first.json()
    assert body["status"] == "firing" and body["sequence"] == 1
    assert body["groupKey"] == notification.group_key
    (alert,) = body["alerts"]
    assert alert["labels"]["model"] == "churn" and alert["value"] == pytest.approx(0.4213)
    assert alert["runbookURL"] == "https://runbooks.example/drift"

    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(WEBHOOK_SECRET, header, first.body + b" ")
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("another-secret-0123456789", header, first.body)
    later = datetime.fromtimestamp(timestamp + 301, UTC)
    with pytest.raises(SignatureError, match="replay"):
        verify_signature(WEBHOOK_SECRET, header, first.body, now=later)
    with pytest.raises(SignatureError, match="needs t="):
        verify_signature(WEBHOOK_SECRET, "v1=00", first.body)
    # A rotated secret: either signature may match.
    rotated = f"{header},v1=" + "0" * 64
    assert verify_signature(WEBHOOK_SECRET, rotated, first.body) == timestamp


def test_webhook_signs_at_send_time_so_a_late_retry_still_verifies() -> None:
    old = make_notification(created_at=datetime.now(UTC) - timedelta(minutes=30))
    with http_receiver() as receiver:
        create_notifier("webhook", {"url": receiver.url, "secret": WEBHOOK_SECRET}).deliver(old)
    (capture,) = receiver.requests
    verify_signature(WEBHOOK_SECRET, capture.headers[SIGNATURE_HEADER.lower()], capture.body)


def test_sign_matches_a_hand_computed_hmac() -> None:
    # echo -n '1700000000.{}' | openssl dgst -sha256 -hmac 'whsec-0123456789-abcdefghij'
    import hashlib
    import hmac

    digest = hmac.new(WEBHOOK_SECRET.encode(), b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign(WEBHOOK_SECRET, b"{}", 1700000000) == f"t=1700000000,v1={digest}"


def test_too_many_requests_is_retryable_with_retry_after() -> None:
    with http_receiver() as receiver:
        receiver.status, receiver.reply_headers = 429, {"Retry-After": "7"}
        notifier = create_notifier("webhook", {"url": receiver.url, "secret": WEBHOOK_SECRET})
        with pytest.raises(RetryableDeliveryError, match="429") as caught:
            notifier.deliver(make_notification())
    assert caught.value.retry_after_s == 7.0


def test_a_receiver_that_hangs_times_out_as_retryable() -> None:
    def hang(_capture: HttpCapture) -> tuple[int, bytes]:
        time.sleep(2)
        return 200, b"late"

    with http_receiver() as receiver:
        receiver.responder = hang
        config = {"url": receiver.url, "secret": WEBHOOK_SECRET, "timeout_s": 0.3}
        with pytest.raises(RetryableDeliveryError, match="timed out"):
            create_notifier("webhook", config).deliver(make_notification())


# --------------------------------------------------------------------------- Slack


def test_slack_block_kit_message() -> None:
    with http_receiver() as receiver:
        notifier = create_notifier("slack", {"url": receiver.url + SLACK_PATH})
        notifier.deliver(make_notification(FIRING))
        notifier.deliver(make_notification(RESOLVED, sequence=2))
    firing, resolved = (c.json() for c in receiver.requests)
    assert receiver.requests[0].path == SLACK_PATH
    header, section = firing["blocks"][0], firing["blocks"][1]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[FIRING] DriftDetected"},
    }
    assert "Dataset drift on churn v3" in section["text"]["text"]
    fields = [f["text"] for f in section["fields"]]
    assert fields == ["*Model*\nchurn", "*Version*\n3", "*Value*\n0.4213", "*Severity*\ncritical"]
    buttons = {b["text"]["text"]: b["url"] for b in firing["blocks"][-1]["elements"]}
    assert buttons == {
        "Runbook": "https://runbooks.example/drift",
        "MLflow": "http://mlflow.local/#/models/churn/versions/3",
    }
    assert "DriftDetected" in firing["text"]
    assert resolved["blocks"][0]["text"]["text"] == "[RESOLVED] DriftDetected"
    assert "resolved" in json_text(resolved["blocks"][1])


# --------------------------------------------------------------------------- PagerDuty


def test_pagerduty_events_share_a_stable_dedup_key() -> None:
    with http_receiver() as receiver:
        receiver.responder = pagerduty_check
        config = {"routing_key": ROUTING_KEY, "url": f"{receiver.url}/v2/enqueue"}
        notifier = create_notifier("pagerduty", config)
        firing = make_notification(FIRING)
        notifier.deliver(firing)
        notifier.deliver(make_notification(NotificationState.ACKNOWLEDGED, sequence=2))
        notifier.deliver(make_notification(RESOLVED, sequence=3))
    events = [c.json() for c in receiver.requests]
    assert all(pagerduty_check(c)[0] == 202 for c in receiver.requests)
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {dedup_key(firing.alerts[0])}
    assert dedup_key(firing.alerts[0]) == "keelwatch-a1b2c3d4e5f60718"
    payload = events[0]["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "churn"
    assert payload["custom_details"]["labels"]["monitor"] == "churn-drift"
    assert "payload" not in events[2]
    assert events[0]["links"][0] == {"href": "https://runbooks.example/drift", "text": "Runbook"}


def test_pagerduty_default_endpoint_is_the_public_events_api() -> None:
    notifier = create_notifier("pagerduty", {"routing_key": ROUTING_KEY})
    assert notifier.target == "https://events.pagerduty.com/v2/enqueue"


# --------------------------------------------------------------------------- Alertmanager


@pytest.mark.skipif(ALERTMANAGER_BIN is None, reason="prometheus-alertmanager is not installed")
def test_alertmanager_holds_the_alert_with_its_labels_then_drops_it(tmp_path: Path) -> None:
    with alertmanager(tmp_path) as am:
        notifier = create_notifier("alertmanager", {"url": am.url})
        notifier.deliver(make_notification(FIRING))
        (alert,) = am.alerts()
        assert alert["labels"] == {
            "alertname": "DriftDetected",
            "model": "churn",
            "version": "3",
            "severity": "critical",
            "monitor": "churn-drift",
        }
        assert alert["annotations"]["summary"].startswith("Dataset drift on churn v3")
        assert alert["annotations"]["value"] == "0.4213"
        assert alert["generatorURL"] == "http://keelwatch.local/monitors/churn-drift"
        assert alert["status"]["state"] in {"active", "unprocessed"}
        notifier.deliver(make_notification(RESOLVED, sequence=2))
        active = [a for a in am.alerts() if datetime.fromisoformat(a["endsAt"]) > datetime.now(UTC)]
        assert active == []


# --------------------------------------------------------------------------- email


def _parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_email_is_multipart_plain_and_html_over_plain_smtp() -> None:
    notification = make_notification()
    with smtp_receiver() as smtp:
        config = {
            "host": smtp.host,
            "port": smtp.port,
            "from_addr": "keelwatch@example.org",
            "to": ["oncall@example.org"],
        }
        create_notifier("email", config).deliver(notification)
    (capture,) = smtp.handler.messages
    assert capture.rcpt_tos == ["oncall@example.org"]
    message = _parse(capture.content)
    assert message["Subject"] == (
        "[Keelwatch] [FIRING] Dataset drift on churn v3 (a1b2c3d4e5f60718)"
    )
    assert message["Message-ID"] == f"<{notification.idempotency_key}@keelwatch>"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    assert "model: churn" in plain.get_content()
    assert "<strong>firing</strong>" in rich.get_content()


def test_email_starttls_with_login_and_trust(tmp_path: Path) -> None:
    with smtp_receiver(tls_dir=tmp_path, login=(SMTP_USER, SMTP_PASSWORD)) as smtp:
        config = {
            "host": smtp.host,
            "port": smtp.port,
            "from_addr": "keelwatch@example.org",
            "to": ["oncall@example.org"],
            "starttls": True,
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
            "ca_file": str(smtp.ca_file),
        }
        create_notifier("email", config).deliver(make_notification())
        assert len(smtp.handler.messages) == 1

        wrong = {**config, "password": "not-the-password-0000"}
        with pytest.raises(PermanentDeliveryError, match="login as 'keelwatch' refused") as bad:
            create_notifier("email", wrong).deliver(make_notification())
        assert "not-the-password-0000" not in str(bad.value)

        untrusted = {k: v for k, v in config.items() if k != "ca_file"}
        with pytest.raises(PermanentDeliveryError, match="certificate not trusted"):
            create_notifier("email", untrusted).deliver(make_notification())

        without_tls = {**config, "starttls": False}
        with pytest.raises(PermanentDeliveryError):
            # The server requires STARTTLS first, so it refuses (530) the login or the mail.
            create_notifier("email", without_tls).deliver(make_notification())
    assert len(smtp.handler.messages) == 1


# --------------------------------------------------------------------------- layers


def test_the_layer_contract_keeps_storage_and_the_broker_out_of_notifiers(tmp_path: Path) -> None:
    from tests.unit.test_import_contracts import copy_sources, lint_imports

    copy_sources(tmp_path)
    slack = tmp_path / "platform" / "keelwatch" / "alerting" / "notifiers" / "slack.py"
    slack.write_text(slack.read_text() + "\nimport sqlalchemy\nimport keelwatch.storage.db\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "keelwatch.alerting.notifiers is not allowed to import sqlalchemy" in result.stdout
    assert (
        "keelwatch.alerting.notifiers is not allowed to import keelwatch.storage" in result.stdout
    )


def test_email_subject_is_one_line_and_addresses_cannot_inject_headers() -> None:
    multi_line = make_notification()
    alert = replace(
        multi_line.alerts[0], annotations={"summary": "Drift on churn\nBcc: attacker@example.org"}
    )
    multi_line = replace(multi_line, alerts=(alert,))
    config = {"host": "127.0.0.1", "from_addr": "keelwatch@example.org", "to": ["a@example.org"]}
    (message,) = create_notifier("email", config).render(multi_line)
    assert message["Subject"] == "[Keelwatch] [FIRING] Drift on churn Bcc: attacker@example.org"
    assert message["Bcc"] is None
    injected = {**config, "from_addr": "keelwatch@example.org\nBcc: attacker@example.org"}
    with pytest.raises(NotifierConfigError, match="from_addr"):
        create_notifier("email", injected)
    with pytest.raises(NotifierConfigError, match=r"to\.0"):
        create_notifier("email", {**config, "to": ["a@example.org\r\nBcc: b@example.org"]})
