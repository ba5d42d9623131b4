"""Real receivers on loopback for the notifier tests: an HTTP server, an SMTP server (aiosmtpd,
plain or STARTTLS with a self-signed certificate made here), and Debian's Alertmanager."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ALERTMANAGER_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    """A TCP port nothing listens on right now (also used as "a receiver that is down")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- HTTP


@dataclass
class HttpCapture:
    """One request an :class:`HttpReceiver` got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A real HTTP server on loopback that records every request and answers ``status``
    (or what ``responder`` returns for the request)."""

    url: str
    requests: list[HttpCapture] = field(default_factory=list)
    status: int = 200
    reply_headers: dict[str, str] = field(default_factory=dict)
    responder: Callable[[HttpCapture], tuple[int, bytes]] | None = None


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    """Start a threaded HTTP server on a free loopback port; stop it on exit."""
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            capture = HttpCapture(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            receiver.requests.append(capture)
            # A status other than 200 is an injected fault and wins over the responder.
            if receiver.status != 200 or receiver.responder is None:
                status, body = receiver.status, b"ok" if receiver.status < 300 else b"fault"
            else:
                status, body = receiver.responder(capture)
            self.send_response(status)
            for name, value in receiver.reply_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on captures, not on stderr."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = HttpReceiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- SMTP


@dataclass
class SmtpCapture:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


class SmtpHandler:
    """aiosmtpd handler: records messages; ``rcpt_reply`` / ``data_reply`` inject refusals."""

    def __init__(self) -> None:
        self.messages: list[SmtpCapture] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        _rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(SmtpCapture(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 Message accepted"


@dataclass
class SmtpReceiver:
    host: str
    port: int
    handler: SmtpHandler
    ca_file: Path | None = None


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keelwatch-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class PasswordCheck:
    """aiosmtpd authenticator accepting one login."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(
        self,
        _server: SMTP,
        _session: Session,
        _envelope: Envelope,
        _mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_receiver(
    tls_dir: Path | None = None, login: tuple[str, str] | None = None
) -> Iterator[SmtpReceiver]:
    """A real SMTP server on loopback; with ``tls_dir`` it requires STARTTLS (self-signed
    certificate, returned as ``ca_file`` for the client to trust) and, with ``login``, AUTH."""
    handler = SmtpHandler()
    port = free_port()
    kwargs: dict[str, Any] = {}
    ca_file = None
    if tls_dir is not None:
        ca_file, key_file = self_signed_cert(tls_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca_file, key_file)
        kwargs.update(tls_context=context, require_starttls=True)
    if login is not None:
        kwargs.update(authenticator=PasswordCheck(*login), auth_require_tls=tls_dir is not None)
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpReceiver("127.0.0.1", port, handler, ca_file)
    finally:
        controller.stop()


# --------------------------------------------------------------------------- Alertmanager


@dataclass
class AlertmanagerProcess:
    url: str
    process: subprocess.Popen[bytes]

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


AM_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 0s
receivers:
  - name: blackhole
"""


@contextmanager
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerProcess]:
    """Debian's ``prometheus-alertmanager`` on a free loopback port, clustering off."""
    assert ALERTMANAGER_BIN is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(AM_CONFIG)
    storage = tmp_path / "am-data"
    storage.mkdir()
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            ALERTMANAGER_BIN,
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    "alertmanager did not start:\n"
                    + (tmp_path / "alertmanager.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        yield AlertmanagerProcess(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
