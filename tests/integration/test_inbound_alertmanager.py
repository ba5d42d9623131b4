"""A real Alertmanager's webhook payload parses into signals.

Debian's ``prometheus-alertmanager`` runs on a free loopback port with a webhook receiver that
points at an HTTP server in this test and sends a bearer token. The test posts an alert to
Alertmanager's ``/api/v2/alerts``, captures what Alertmanager sends, checks the token with
:func:`check_bearer_token`, parses the body with the schema and converts it to signals; then
it resolves the alert and checks the resolved notification the same way.
"""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from keelwatch.alerting.inbound import ALERTMANAGER_SIGNAL, alertmanager_signals, check_bearer_token
from keelwatch.schemas.alerts import parse_alertmanager_webhook

pytestmark = pytest.mark.integration

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "inbound-token-for-tests"
#: Generous bounds for a loaded CI machine; waiting is not what is asserted.
WAIT_S = 60.0


@dataclass
class Delivery:
    authorization: str | None
    body: bytes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[Delivery]]]:
    """A local HTTP server that records every POST it gets."""
    deliveries: queue.Queue[Delivery] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            deliveries.put(Delivery(self.headers.get("Authorization"), self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the default writes every request to stderr."""
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts/inbound/alertmanager", deliveries
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: tuple[str, queue.Queue[Delivery]]) -> Iterator[str]:
    """A real Alertmanager whose only receiver is the test's HTTP server; yields its base URL."""
    if ALERTMANAGER is None:
        pytest.skip("Alertmanager not installed (apt-get install -y prometheus-alertmanager)")
    url, _ = receiver
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: keelwatch
  group_by: [alertname, model]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: keelwatch
    webhook_configs:
      - url: "{url}"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: "{TOKEN}"
"""
    )
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Alertmanager did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def next_delivery(deliveries: queue.Queue[Delivery], status: str) -> Delivery:
    """The next notification with the given group status (earlier ones are skipped)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {status} notification from Alertmanager"
        delivery = deliveries.get(timeout=remaining)
        if parse_alertmanager_webhook(delivery.body).status == status:
            return delivery


def post_alert(base: str, starts: datetime, ends: datetime | None = None) -> None:
    alert: dict[str, object] = {
        "labels": {"alertname": "ServingLatencyHigh", "model": "churn", "severity": "warning"},
        "annotations": {"summary": "p95 latency above 300 ms"},
        "startsAt": starts.isoformat(),
        "generatorURL": "http://prometheus.example/graph",
    }
    if ends is not None:
        alert["endsAt"] = ends.isoformat()
    response = httpx.post(f"{base}/api/v2/alerts", json=[alert], timeout=10)
    assert response.status_code == 200, response.text


def test_real_alertmanager_payload_becomes_signals(
    alertmanager: str, receiver: tuple[str, queue.Queue[Delivery]]
) -> None:
    _, deliveries = receiver
    started = datetime.now(UTC) - timedelta(minutes=1)
    post_alert(alertmanager, started)

    delivery = next_delivery(deliveries, "firing")
    check_bearer_token(delivery.authorization, TOKEN)  # what Alertmanager's http_config sends
    webhook = parse_alertmanager_webhook(delivery.body)
    assert webhook.version == "4"
    assert webhook.receiver == "keelwatch"
    assert webhook.group_labels == {"alertname": "ServingLatencyHigh", "model": "churn"}
    [alert] = webhook.alerts
    assert alert.status == "firing"
    assert alert.annotations == {"summary": "p95 latency above 300 ms"}
    assert abs(alert.starts_at - started) < timedelta(seconds=1)
    received = datetime.now(UTC)
    [signal] = alertmanager_signals(webhook.alerts, received_at=received)
    assert signal.name == ALERTMANAGER_SIGNAL
    assert signal.value == 1.0
    assert signal.labels == {
        "alertname": "ServingLatencyHigh",
        "model": "churn",
        "severity": "warning",
    }
    assert len(alert.fingerprint) == 16
    assert signal.source == f"alertmanager:{alert.fingerprint}"

    # Alertmanager's own API knows the alert by the same fingerprint.
    listed = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=10).json()
    assert [a["fingerprint"] for a in listed] == [alert.fingerprint]

    post_alert(alertmanager, started, ends=datetime.now(UTC) - timedelta(seconds=1))
    resolved_delivery = next_delivery(deliveries, "resolved")
    check_bearer_token(resolved_delivery.authorization, TOKEN)
    resolved = parse_alertmanager_webhook(resolved_delivery.body)
    [resolved_signal] = alertmanager_signals(resolved.alerts, received_at=datetime.now(UTC))
    assert resolved_signal.value == 0.0
    assert resolved_signal.source == signal.source
    assert resolved_signal.fingerprint == signal.fingerprint  # the same series
    assert resolved.alerts[0].ends_at is not None
    assert resolved.alerts[0].ends_at > alert.starts_at
