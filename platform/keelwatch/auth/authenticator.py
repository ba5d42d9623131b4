"""Turn a request's ``Authorization`` header into a :class:`Principal` (or a 401).

``Bearer kw_<prefix>_<secret>`` is a Keelwatch API token, checked against the database;
with OIDC configured, any other bearer credential is taken as a JWT access token from the
issuer. Nothing here knows HTTP frameworks: :mod:`keelwatch.api.access` calls it.

Two paths, one answer: :meth:`Authenticator.cached` answers from memory (no I/O, so the API
calls it on the event loop) for an API token checked within ``auth.token_cache_ttl_s``
(:mod:`keelwatch.auth.cache`), and returns None when only the database can tell;
:meth:`Authenticator.authenticate` then reads the row (in a thread) and fills the cache. Both
refuse with the same :class:`AuthenticationError` messages, and both refuse an expired token.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from keelwatch.auth.cache import TokenCache
from keelwatch.auth.errors import (
    EXPIRED_TOKEN,
    MALFORMED_CREDENTIALS,
    MISSING_CREDENTIALS,
    AuthenticationError,
)
from keelwatch.auth.secrets_file import server_secret
from keelwatch.auth.tokens import (
    LAST_USED_EVERY,
    hash_token,
    looks_like_token,
    record_use,
    verify_token,
)
from keelwatch.entities.auth import Principal, PrincipalKind
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.db import Database

if TYPE_CHECKING:
    from keelwatch.auth.oidc import OidcVerifier


class Authenticator:
    """Checks bearer credentials for one process (the API builds one in ``create_app``)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.cache = TokenCache(settings.auth.token_cache_ttl_s)
        # token id -> the newest last_used_at this process knows (read or written by it)
        self._last_used: dict[int, datetime | None] = {}

    @cached_property
    def key(self) -> bytes:
        """The server secret tokens are hashed under (read or generated on first use)."""
        return server_secret(self.settings)

    @cached_property
    def oidc(self) -> OidcVerifier | None:
        """The OIDC verifier, when ``auth.oidc.issuer`` is set."""
        if not self.settings.auth.oidc.issuer:
            return None
        from keelwatch.auth.oidc import OidcVerifier

        return OidcVerifier(self.settings.auth.oidc)

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal from memory, or None when the database must be asked.

        No I/O. Raises :class:`AuthenticationError` as :meth:`authenticate` would for a missing
        or malformed header and for a cached token that has expired since it was checked.
        """
        credentials = _bearer_credentials(authorization)
        if not looks_like_token(credentials):
            return None  # an OIDC access token, or junk: the full check decides
        entry = self.cache.get(hash_token(self.key, credentials))
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= utcnow():
            raise AuthenticationError(EXPIRED_TOKEN)
        return entry.principal

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an ``Authorization`` header value; raises
        :class:`AuthenticationError` (missing, malformed, expired, invalid or revoked)."""
        credentials = _bearer_credentials(authorization)
        if looks_like_token(credentials):
            return self._token_principal(credentials)
        if self.oidc is not None and credentials.count(".") == 2:
            return self.oidc.verify(credentials)
        raise AuthenticationError(MALFORMED_CREDENTIALS)

    def _token_principal(self, credentials: str) -> Principal:
        digest = hash_token(self.key, credentials)
        generation = self.cache.generation  # a revocation during the read voids this entry
        with self.database.session() as session:
            token = verify_token(session, self.key, credentials, now=utcnow())
        principal = Principal(
            identity=token.identity,
            kind=PrincipalKind.TOKEN,
            roles=frozenset({token.role}),
            token_id=token.id,
            last_used_at=token.last_used_at,
        )
        self._last_used[token.id] = token.last_used_at
        self.cache.put(
            digest,
            principal,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            generation=generation,
        )
        return principal

    def use_due(self, principal: Principal) -> bool:
        """True when this call should record ``last_used_at`` (an API token whose last
        recorded use is a minute old or more). No I/O: the answer comes from memory, and a
        True claims the write, so concurrent calls of one token do not all write."""
        if principal.token_id is None:
            return False
        now = utcnow()
        last = self._last_used.get(principal.token_id, principal.last_used_at)
        if last is not None and now - last < LAST_USED_EVERY:
            return False
        self._last_used[principal.token_id] = now
        return True

    def note_use(self, principal: Principal) -> None:
        """Record an authorized call's ``last_used_at`` (tokens only; at most once a minute
        per token: call it when :meth:`use_due` says so). One conditional UPDATE, so replicas
        racing on one token write once."""
        if principal.token_id is None:
            return
        with self.database.session() as session:
            record_use(session, principal.token_id, now=utcnow())


def _bearer_credentials(authorization: str | None) -> str:
    """The credentials of a ``Bearer`` header value; :class:`AuthenticationError` otherwise."""
    if authorization is None or not authorization.strip():
        raise AuthenticationError(MISSING_CREDENTIALS)
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials or " " in credentials:
        raise AuthenticationError(MALFORMED_CREDENTIALS)
    return credentials
