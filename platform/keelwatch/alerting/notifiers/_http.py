"""Sending one rendered HTTP request and classifying what came back.

Retryable: the connection failed or timed out, or the receiver answered 5xx or 429 (with its
``Retry-After`` kept for the backoff). Permanent: any other 4xx, a malformed URL, or a
redirect (a webhook that moved is a configuration mistake, and following it would resend a
signed body to a host nobody configured). Messages name the target as ``display_url``, never
the full URL, and the body the receiver answered with is cut short.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from keelwatch.alerting.notifiers._contract import (
    MASK,
    ConfigT,
    HttpRequest,
    Notifier,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

log = logging.getLogger(__name__)

_BODY_EXCERPT = 200
"""How much of a receiver's error answer goes into the message (receivers explain 400s)."""


def display_url(url: str, *, secret_path: bool = False) -> str:
    """``url`` safe to show: user info dropped, the query masked, and the path masked too when
    it is the secret (a Slack incoming-webhook URL)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = f"/{MASK}" if secret_path and parts.path not in ("", "/") else parts.path
    query = f"?{MASK}" if parts.query else ""
    return f"{parts.scheme}://{host}{path}{query}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        # An HTTP-date is allowed too; the task's own backoff applies then.
        return None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: ``httpx.Client()`` builds a new one by default,
    loading the CA bundle each time (54 of 78 ms per delivery, measured by
    ``benchmarks/alert_delivery_bench.py``), even for plain ``http://`` targets."""
    return httpx.create_ssl_context()


def send_http(
    request: HttpRequest, *, timeout_s: float, transport: httpx.BaseTransport | None = None
) -> str:
    """POST (or whatever ``request.method`` says) and return ``"POST <display> -> <status>"``."""
    where = f"{request.method} {request.display_url}"
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            transport=transport,
            verify=_tls_context(),
        ) as client:
            response = client.request(
                request.method, request.url, headers=dict(request.headers), content=request.body
            )
    except httpx.TimeoutException:
        raise RetryableDeliveryError(f"{where}: timed out after {timeout_s:g}s") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise PermanentDeliveryError(
            f"{where}: the target URL is not a valid http(s) URL"
        ) from None
    except httpx.TransportError as exc:
        # Connection refused, reset, DNS failure: the receiver may be back soon.
        raise RetryableDeliveryError(f"{where}: {type(exc).__name__}: {exc}") from None
    status = response.status_code
    outcome = f"{where} -> {status}"
    if 200 <= status < 300:
        log.debug("delivered: %s", outcome)
        return outcome
    excerpt = response.text[:_BODY_EXCERPT].strip()
    message = f"{outcome}" + (f": {excerpt}" if excerpt else "")
    if status == 429 or status >= 500:
        raise RetryableDeliveryError(
            message, response_code=status, retry_after_s=_retry_after(response)
        )
    raise PermanentDeliveryError(message, response_code=status)


def json_body(payload: object) -> bytes:
    """Compact, key-sorted JSON: the same payload always renders to the same bytes, so a
    signature or an idempotency check over the body is stable."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def isoformat(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` (what Alertmanager, PagerDuty and Slack readers expect)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class HttpNotifier(Notifier[ConfigT, HttpRequest]):
    """A notifier whose requests are HTTP requests sent by :func:`send_http`."""

    def send_one(self, request: HttpRequest) -> str:
        """Send one request with this notifier's timeout."""
        return send_http(request, timeout_s=self.config.timeout_s)
