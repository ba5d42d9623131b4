"""Email over SMTP: a multipart message (plain text and HTML), STARTTLS and login optional.

The ``Message-ID`` is derived from the notification's idempotency key, so a resent
notification carries the same id and mail clients thread (or drop) the duplicate. SMTP
replies are classified by their code: 4xx (and a dropped or refused connection) is
retryable, 5xx (a refused sender, recipient or login) is permanent; a certificate that fails
verification is permanent too, since it will fail the same way next time.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Annotated

from pydantic import Field, SecretStr

from keelwatch.alerting.notifiers._contract import (
    DeliveryError,
    Notifier,
    NotifierConfig,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from keelwatch.entities.notifications import Notification, NotifiedAlert

# An address (optionally with a display name) on one line: a CR or LF would inject headers.
Address = Annotated[str, Field(pattern=r"^[^\r\n]+@[^\r\n]+$", max_length=320)]


class EmailConfig(NotifierConfig):
    """Where and how to send: ``host``/``port`` of the SMTP server, ``from_addr``, ``to``
    (one address or more), ``starttls`` (upgrade the connection before login), ``username`` and
    ``password`` (secret), ``ca_file`` (a CA bundle to trust, e.g. a private CA), and
    ``subject_prefix``."""

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    from_addr: Address
    to: list[Address] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = None
    subject_prefix: str = "[Keelwatch]"


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def subject(notification: Notification, prefix: str) -> str:
    """``[Keelwatch] [FIRING] drift_detected on churn (2 alerts)``."""
    first = notification.alerts[0]
    # A templated summary may span lines; a header may not (it would inject headers).
    summary = " ".join(first.summary.split())
    text = f"{prefix} [{notification.state.value.upper()}] {summary}".strip()
    if len(notification.alerts) > 1:
        text += f" ({len(notification.alerts)} alerts)"
    return text


def _alert_lines(alert: NotifiedAlert) -> list[str]:
    lines = [f"- {alert.summary} [{alert.status.value}, severity {alert.severity}]"]
    if alert.value is not None:
        lines.append(f"  value: {_value(alert.value)}")
    lines += [f"  {k}: {v}" for k, v in sorted(alert.labels.items())]
    if alert.runbook_url:
        lines.append(f"  runbook: {alert.runbook_url}")
    return lines


def plain_text(notification: Notification) -> str:
    """The text/plain part."""
    lines = [f"Alert group {notification.group_key} is {notification.state.value}.", ""]
    for alert in notification.alerts:
        lines += _alert_lines(alert)
    if notification.links:
        lines.append("")
        lines += [f"{name}: {url}" for name, url in sorted(notification.links.items())]
    return "\n".join(lines) + "\n"


def html_text(notification: Notification) -> str:
    """The text/html part (every value escaped)."""
    e = html.escape
    rows = []
    for alert in notification.alerts:
        labels = ", ".join(f"{e(k)}={e(v)}" for k, v in sorted(alert.labels.items()))
        runbook = f' <a href="{e(alert.runbook_url)}">runbook</a>' if alert.runbook_url else ""
        rows.append(
            f"<tr><td>{e(alert.status.value)}</td><td>{e(alert.severity)}</td>"
            f"<td>{e(alert.summary)}{runbook}</td><td>{e(_value(alert.value))}</td>"
            f"<td>{labels}</td></tr>"
        )
    links = "".join(
        f'<li><a href="{e(url)}">{e(name)}</a></li>'
        for name, url in sorted(notification.links.items())
    )
    return (
        f"<html><body><p>Alert group <code>{e(notification.group_key)}</code> is "
        f"<strong>{e(notification.state.value)}</strong>.</p>"
        "<table><tr><th>status</th><th>severity</th><th>summary</th><th>value</th>"
        f"<th>labels</th></tr>{''.join(rows)}</table>"
        + (f"<ul>{links}</ul>" if links else "")
        + "</body></html>\n"
    )


def email_message(notification: Notification, config: EmailConfig) -> EmailMessage:
    """The multipart message for ``notification``; headers are deterministic."""
    message = EmailMessage()
    message["Subject"] = subject(notification, config.subject_prefix)
    message["From"] = config.from_addr
    message["To"] = ", ".join(config.to)
    message["Date"] = format_datetime(notification.created_at)
    message["Message-ID"] = f"<{notification.idempotency_key}@keelwatch>"
    message["X-Keelwatch-Idempotency-Key"] = notification.idempotency_key
    message["X-Keelwatch-State"] = notification.state.value
    message.set_content(plain_text(notification))
    message.add_alternative(html_text(notification), subtype="html")
    # The default boundary is random; a fixed one keeps rendering a pure function.
    message.set_boundary(f"==keelwatch-{notification.idempotency_key}==")
    return message


def _reply(code: int, error: bytes | str, where: str, what: str) -> DeliveryError:
    text = error.decode(errors="replace") if isinstance(error, bytes) else error
    message = f"{where}: {what} {code} {text}".strip()
    if 400 <= code < 500:
        return RetryableDeliveryError(message, response_code=code)
    return PermanentDeliveryError(message, response_code=code)


class EmailNotifier(Notifier[EmailConfig, EmailMessage]):
    """Sends one multipart email per notification to every configured recipient."""

    type_name = "email"
    config_type = EmailConfig

    @property
    def target(self) -> str:
        """``smtp://host:port`` (``smtp+starttls://`` when upgraded) and the recipients."""
        scheme = "smtp+starttls" if self.config.starttls else "smtp"
        return f"{scheme}://{self.config.host}:{self.config.port} to {', '.join(self.config.to)}"

    def render(self, notification: Notification) -> Sequence[EmailMessage]:
        """One message."""
        return (email_message(notification, self.config),)

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file)

    def send_one(self, request: EmailMessage) -> str:
        """Connect, optionally STARTTLS and log in, send; classify the SMTP reply."""
        cfg = self.config
        where = f"SMTP {cfg.host}:{cfg.port}"
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=self._tls_context())
                if cfg.username:
                    password = cfg.password.get_secret_value() if cfg.password else ""
                    smtp.login(cfg.username, password)
                refused = smtp.send_message(request)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentDeliveryError(
                f"{where}: login as {cfg.username!r} refused ({exc.smtp_code})",
                response_code=exc.smtp_code,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise PermanentDeliveryError(
                f"{where}: the server does not offer STARTTLS or AUTH"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            # Retry only if every refusal is temporary; one hard 5xx will not go away.
            code = max(codes) if codes else 550
            detail = "; ".join(f"{rcpt}: {c}" for rcpt, (c, _) in sorted(exc.recipients.items()))
            raise _reply(code, detail, where, "recipients refused") from None
        except smtplib.SMTPResponseException as exc:
            raise _reply(exc.smtp_code, exc.smtp_error, where, "server replied") from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentDeliveryError(
                f"{where}: TLS certificate not trusted ({exc.verify_message})"
            ) from None
        except smtplib.SMTPServerDisconnected:
            raise RetryableDeliveryError(f"{where}: server closed the connection") from None
        except TimeoutError:
            raise RetryableDeliveryError(f"{where}: timed out after {cfg.timeout_s:g}s") from None
        except OSError as exc:
            # Connection refused or reset, DNS failure, a TLS handshake cut short.
            raise RetryableDeliveryError(f"{where}: {type(exc).__name__}: {exc}") from None
        accepted = len(cfg.to) - len(refused)
        partly = f", refused: {', '.join(sorted(refused))}" if refused else ""
        return f"{where} -> {accepted} recipient(s) accepted{partly}"


__all__ = ["EmailConfig", "EmailNotifier", "email_message", "html_text", "plain_text", "subject"]
