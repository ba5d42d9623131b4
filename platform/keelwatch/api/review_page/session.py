"""The review page's browser session: cookies, CSRF tokens and the one-shot flash message.

Session: ``POST /review/login`` checks the API token a person pastes exactly as the API checks
a bearer token, then keeps THE TOKEN ITSELF in the :data:`SESSION_COOKIE` cookie (HttpOnly, so
no script reads it; SameSite=Strict, so no other site's page sends it; ``Path=/review``, so no
other route of the API receives it; Secure when the page was requested over https; no
``Max-Age``, so it ends with the browser session). Every request re-checks it like a bearer
token, so a revoked or expired token ends the session at once (within the API's token cache
TTL), and nothing new is stored server-side. Only the page's own routes read the cookie: the
JSON API under ``/review/items`` still wants an ``Authorization`` header.

CSRF: every form the page renders carries ``csrf``, the HMAC-SHA256 under the server secret of
the session's token (:func:`csrf_token`); a POST authenticated by the cookie is refused
without it. The sign-in form, before any session, carries the HMAC of a random nonce kept in
the :data:`LOGIN_COOKIE` cookie (double submit). A request authenticated by an
``Authorization`` header needs no CSRF token: a browser never adds that header on its own.

Flash: the message of a POST-redirect-GET travels in :data:`FLASH_COOKIE`, signed with the
server secret and read once by the next page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

#: The API token of a signed-in reviewer.
SESSION_COOKIE = "kw_review_session"
#: The sign-in form's nonce (double-submit CSRF before a session exists).
LOGIN_COOKIE = "kw_review_login"
#: The next page's one-shot message.
FLASH_COOKIE = "kw_review_flash"
#: Every cookie of the page is scoped to it.
COOKIE_PATH = "/review"
#: The credential CSRF tokens derive from when authentication is disabled (no token at all).
ANONYMOUS_CREDENTIAL = "anonymous"
#: Longest flash message kept (error messages of the service functions are short).
MAX_FLASH = 400

_CSRF_CONTEXT = b"keelwatch-review-csrf\x00"
_LOGIN_CONTEXT = b"keelwatch-review-login\x00"
_FLASH_CONTEXT = b"keelwatch-review-flash\x00"
FLASH_KINDS = ("ok", "error")


def _mac(key: bytes, context: bytes, value: str) -> str:
    return hmac.new(
        key, context + value.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()


def csrf_token(key: bytes, credential: str) -> str:
    """The CSRF token of the forms of a session whose credential is ``credential``."""
    return _mac(key, _CSRF_CONTEXT, credential)


def csrf_valid(key: bytes, credential: str, presented: str | None) -> bool:
    """Whether ``presented`` is the CSRF token of ``credential`` (constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(key, credential), presented)


def new_login_nonce() -> str:
    """A fresh random nonce for the sign-in form's cookie."""
    return secrets.token_urlsafe(32)


def login_csrf_token(key: bytes, nonce: str) -> str:
    """The sign-in form's CSRF token for the nonce in :data:`LOGIN_COOKIE`."""
    return _mac(key, _LOGIN_CONTEXT, nonce)


def login_csrf_valid(key: bytes, nonce: str | None, presented: str | None) -> bool:
    """Whether the sign-in form's token matches the nonce cookie (constant time)."""
    if not nonce or not presented:
        return False
    return hmac.compare_digest(login_csrf_token(key, nonce), presented)


def encode_flash(key: bytes, kind: str, message: str) -> str:
    """A signed cookie value carrying one message (``kind`` ok or error)."""
    payload = json.dumps([kind, message[:MAX_FLASH]], ensure_ascii=True).encode("ascii")
    body = base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")
    return f"{body}.{_mac(key, _FLASH_CONTEXT, body)}"


def decode_flash(key: bytes, value: str | None) -> tuple[str, str] | None:
    """``(kind, message)`` from a cookie value :func:`encode_flash` made; None for anything
    else (absent, tampered, malformed)."""
    if not value or "." not in value or len(value) > 4 * MAX_FLASH + 200:
        return None
    body, _, mac = value.rpartition(".")
    if not hmac.compare_digest(_mac(key, _FLASH_CONTEXT, body), mac):
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or decoded[0] not in FLASH_KINDS
        or not isinstance(decoded[1], str)
    ):
        return None
    return decoded[0], decoded[1]
