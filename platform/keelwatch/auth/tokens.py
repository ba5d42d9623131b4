"""API tokens: the ``kw_<prefix>_<secret>`` format, hashing, creation, revocation, checks.

A token is shown once, when it is created. The database keeps HMAC-SHA256(server secret,
token) and the public ``prefix``; a request's token finds its row by prefix and is compared
with :func:`hmac.compare_digest`. Functions take the caller's session and never commit;
creation and revocation write their audit entry (``token.create``, ``token.revoke``) in the
same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import event
from sqlalchemy.orm import Session

from keelwatch.auth.cache import forget_token
from keelwatch.auth.errors import EXPIRED_TOKEN, INVALID_TOKEN, AuthenticationError
from keelwatch.entities.auth import ApiToken, IssuedToken, Role, TokenState
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.storage import tokens as store
from keelwatch.storage.audit import record_audit

TOKEN_SCHEME = "kw"
_PREFIX_BYTES = 4  # 8 hex characters: public, only has to be unique
_SECRET_BYTES = 32  # 256 bits of secret
TOKEN_PATTERN = re.compile(r"^kw_(?P<prefix>[0-9a-f]{8,16})_(?P<secret>[A-Za-z0-9_-]{32,128})$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_DURATION = re.compile(r"^\s*(?P<amount>\d{1,6})\s*(?P<unit>[smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: The longest ``--expires`` accepted: ten years (a typo like 9000w is an error, not forever).
MAX_LIFETIME = timedelta(days=3650)
#: ``last_used_at`` is written at most this often per token (not once per request).
LAST_USED_EVERY = timedelta(minutes=1)


def token_prefix(token: str) -> str | None:
    """The public prefix of a well-formed token, or None when it is not ``kw_<prefix>_<secret>``."""
    match = TOKEN_PATTERN.match(token)
    return match.group("prefix") if match else None


def looks_like_token(text: str) -> bool:
    """True for text in the ``kw_<prefix>_<secret>`` shape (JWTs and junk are not)."""
    return TOKEN_PATTERN.match(text) is not None


def hash_token(key: bytes, token: str) -> str:
    """HMAC-SHA256 of the whole token under the server secret, in hex (what is stored)."""
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def parse_lifetime(text: str) -> timedelta:
    """``"90d"`` → 90 days. Units: s, m, h, d, w; positive and at most ten years."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInputError(
            f"--expires {text!r} is not a duration: use a number and a unit (s, m, h, d, w), "
            "e.g. 90d"
        )
    lifetime = timedelta(**{_UNITS[match.group("unit")]: int(match.group("amount"))})
    if lifetime <= timedelta(0) or lifetime > MAX_LIFETIME:
        raise InvalidInputError(f"--expires {text!r} must be more than 0 and at most 3650d")
    return lifetime


def check_name(name: str) -> str:
    """A token name: 1-128 letters, digits, '.', '_', '-', '@', starting with a letter or digit."""
    if not NAME_PATTERN.match(name):
        raise InvalidInputError(
            "token name must be 1-128 characters (letters, digits, '.', '_', '-', '@'), "
            "starting with a letter or digit"
        )
    return name


def create_token(
    session: Session,
    key: bytes,
    *,
    name: str,
    role: Role,
    actor: str,
    now: datetime,
    lifetime: timedelta | None = None,
) -> IssuedToken:
    """Create and audit a token; the returned :class:`IssuedToken` carries the only copy of its
    secret. A name held by an active token is a conflict (rotate: create ``name-2``, move the
    clients, revoke ``name``; or revoke first)."""
    check_name(name)
    clash = [t for t in store.unrevoked_named(session, name) if t.state(now) is TokenState.ACTIVE]
    if clash:
        raise ConflictError(f"an active token is already named {name!r} (prefix {clash[0].prefix})")
    expires_at = now + lifetime if lifetime is not None else None
    prefix = secrets.token_hex(_PREFIX_BYTES)
    while store.find_by_prefix(session, prefix) is not None:  # 1 in 4 billion; cheap to rule out
        prefix = secrets.token_hex(_PREFIX_BYTES)
    secret = f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    token = store.insert_token(
        session,
        name=name,
        role=role,
        prefix=prefix,
        secret_hash=hash_token(key, secret),
        created_by=actor,
        created_at=now,
        expires_at=expires_at,
    )
    record_audit(
        session,
        actor=actor,
        action="token.create",
        target=token.identity,
        reason=f"API token with role {role.value}",
        details={
            "name": name,
            "role": role.value,
            "prefix": prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        at=now,
    )
    return IssuedToken(token=token, secret=secret)


def revoke_tokens(
    session: Session, name_or_prefix: str, *, actor: str, now: datetime, reason: str = ""
) -> list[ApiToken]:
    """Revoke the token with this prefix (``kw_`` optional), else every unrevoked token with
    this name; audits each. NotFoundError when nothing matches, ConflictError when the prefix
    names a token already revoked.

    The API's token caches in this process forget each revoked token now and again when the
    session commits (a request that read the row in between cannot keep it); other processes
    notice within ``auth.token_cache_ttl_s``."""
    wanted = name_or_prefix.strip()
    bare = wanted.removeprefix(f"{TOKEN_SCHEME}_")
    by_prefix = store.find_by_prefix(session, bare)
    if by_prefix is not None:
        targets = [by_prefix[0]]
        if targets[0].revoked_at is not None:
            raise ConflictError(f"token with prefix {bare} is already revoked")
    else:
        targets = store.unrevoked_named(session, wanted)
    if not targets:
        raise NotFoundError(f"no unrevoked token named or prefixed {wanted!r}")
    revoked: list[ApiToken] = []
    for token in targets:
        if not store.revoke(session, token.id, at=now):
            continue  # revoked concurrently: that revocation was audited
        record_audit(
            session,
            actor=actor,
            action="token.revoke",
            target=token.identity,
            reason=reason or "revoked",
            details={"name": token.name, "role": token.role.value, "prefix": token.prefix},
            at=now,
        )
        revoked.append(token)
        _forget_now_and_on_commit(session, token.id)
    return revoked


def _forget_now_and_on_commit(session: Session, token_id: int) -> None:
    forget_token(token_id)
    event.listen(session, "after_commit", lambda _session: forget_token(token_id), once=True)


def verify_token(session: Session, key: bytes, token: str, *, now: datetime) -> ApiToken:
    """The active token ``token`` is, or :class:`AuthenticationError`.

    Unknown prefix, wrong secret and revoked all raise "invalid or revoked token"; expiry is
    only reported once the secret matched. Reads only: nothing is written here.
    """
    prefix = token_prefix(token)
    found = store.find_by_prefix(session, prefix) if prefix is not None else None
    # Compare against something even for an unknown prefix: the answer takes as long.
    stored_hash = found[1] if found is not None else "0" * 64
    matches = hmac.compare_digest(hash_token(key, token), stored_hash)
    if found is None or not matches:
        raise AuthenticationError(INVALID_TOKEN)
    state = found[0].state(now)
    if state is TokenState.REVOKED:
        raise AuthenticationError(INVALID_TOKEN)
    if state is TokenState.EXPIRED:
        raise AuthenticationError(EXPIRED_TOKEN)
    return found[0]


def record_use(session: Session, token_id: int, *, now: datetime) -> bool:
    """Note that the token was used (at most one write per :data:`LAST_USED_EVERY`)."""
    return store.touch_last_used(session, token_id, now=now, every=LAST_USED_EVERY)
