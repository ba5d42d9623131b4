"""Pure ASGI middleware guarding the API's edges: request size and strings, security headers,
and the last-resort 500 that keeps the connection open.

* :class:`RequestGuardMiddleware` refuses a body larger than ``api.max_body_bytes`` with 413
  (up front from ``Content-Length``, or as soon as a chunked body's count passes the limit,
  without reading the rest), and a NUL character anywhere in the path, a query parameter or a
  JSON string with 422 naming where it is: PostgreSQL cannot store one and the operating system
  cannot take one in a path, so it would otherwise surface as a 500.
* :class:`SecurityHeadersMiddleware` adds ``nosniff``, ``DENY`` framing, ``no-referrer``, a
  Content-Security-Policy (strict for data, just enough for the ``/docs`` and ``/redoc`` pages)
  and ``Cache-Control: no-store`` on JSON to every response.
* :class:`UnhandledErrorMiddleware` turns an exception no handler took into a JSON 500 with an
  error id and nothing else. Starlette's own last handler re-raises after answering, and uvicorn
  then drops the keep-alive connection, so the client's *next* request failed too.

Pure ASGI rather than ``BaseHTTPMiddleware``: no extra task per request, and streamed bodies
stay streamed to the point where the limit is decided.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

#: What JSON writes for a NUL character; a body without it cannot hold one in a string.
_ESCAPED_NUL = b"\\u0000"
#: HTML pages the API serves itself (Swagger UI, ReDoc): their inline bootstrap script, inline
#: styles, data: icons and ReDoc's blob: worker; everything from the API's own origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Everything else is data: nothing in it may load, run or be framed.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    """Answer with a JSON body (the API's ``{"error": ...}`` shape) straight from middleware."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# --------------------------------------------------------------------------- size and strings


class RequestGuardMiddleware:
    """413 for bodies over ``max_body_bytes``; 422 for a NUL in the path, query or JSON body.

    The body is read (counted) before the app runs and handed to it unchanged, so a refused
    request never reaches a handler and nothing is written for it.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in_path_or_query(scope)
        if where is not None:
            await _refuse_nul(send, where)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(send)  # the body is never read
            return
        body, complete = await self._read_body(receive)
        if not complete:
            await self._too_large(send)
            return
        if _ESCAPED_NUL in body:
            where = _nul_in_json(body)
            if where is not None:
                await _refuse_nul(send, where)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        """The whole body, or (what was read, False) once it passes the limit."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(parts), True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", False
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts), True

    async def _too_large(self, send: Send) -> None:
        await send_json(
            send,
            413,
            {
                "error": f"request body is larger than {self.max_body_bytes} bytes "
                "(KEELWATCH_API__MAX_BODY_BYTES)"
            },
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the buffered body, then defers to the server's."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # waits for http.disconnect

    return replayed


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses malformed lengths before we see them
    return None


def _nul_in_path_or_query(scope: Scope) -> str | None:
    if "\x00" in str(scope.get("path", "")):
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return f"query.{name.replace(chr(0), '?')}"
    return None


def _nul_in_json(body: bytes) -> str | None:
    """Where the first string holding a NUL sits (``body.labels.0.request_id``), or None.

    A body that is not JSON is left to the handler's own parser (it answers 422 malformed).
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return _find_nul(data, "body")


def _find_nul(value: Any, location: str) -> str | None:
    if isinstance(value, str):
        return location if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            if "\x00" in name:
                return f"{location}.{name.replace(chr(0), '?')}"
            found = _find_nul(item, f"{location}.{name}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{location}.{index}")
            if found is not None:
                return found
    return None


async def _refuse_nul(send: Send, location: str) -> None:
    message = "contains a NUL character (\\u0000), which is not allowed"
    await send_json(
        send,
        422,
        {
            "error": f"invalid request: {location}: {message}",
            "problems": [{"location": location, "message": message}],
        },
    )


# --------------------------------------------------------------------------- headers


class SecurityHeadersMiddleware:
    """Security headers on every response; a handler's own value for one of them wins."""

    def __init__(self, app: ASGIApp, *, docs_paths: frozenset[str]) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path") in self.docs_paths else DATA_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                content_type = next(
                    (value for name, value in headers if name.lower() == b"content-type"), b""
                )
                wanted = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", csp.encode()),
                ]
                if content_type.startswith(b"application/json"):
                    wanted.append((b"cache-control", b"no-store"))
                headers += [(name, value) for name, value in wanted if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --------------------------------------------------------------------------- last resort


class UnhandledErrorMiddleware:
    """A JSON 500 with an error id for any exception no handler took; the exception stops here.

    The log line carries the error id, the exception type and the stack frames, not the
    exception's message (it may quote request data). ``on_error`` counts it (metrics).
    """

    def __init__(self, app: ASGIApp, *, on_error: Callable[[BaseException], None]) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # half a response is out: only the server can end it
                raise
            error_id = log_unhandled(exc)
            self.on_error(exc)
            await send_json(send, 500, internal_error_body(error_id))


def log_unhandled(exc: BaseException) -> str:
    """Log an unhandled exception by type and frames (never its message); return its id."""
    error_id = uuid.uuid4().hex[:16]
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("unhandled %s [error id %s]\n%s", type(exc).__name__, error_id, frames)
    return error_id


def internal_error_body(error_id: str) -> dict[str, Any]:
    """The body of every 500: a fixed sentence and the id to find the log line by."""
    return {"error": f"internal error (error id {error_id}; see the API log)", "error_id": error_id}
