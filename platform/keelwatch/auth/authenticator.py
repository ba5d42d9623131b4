"""Turn a request's ``Authorization`` header into a :class:`Principal` (or a 401).

``Bearer kw_<prefix>_<secret>`` is a Keelwatch API token, checked against the database;
with OIDC configured, any other bearer credential is taken as a JWT access token from the
issuer. Nothing here knows HTTP frameworks: :mod:`keelwatch.api.access` calls it.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from keelwatch.auth.errors import (
    MALFORMED_CREDENTIALS,
    MISSING_CREDENTIALS,
    AuthenticationError,
)
from keelwatch.auth.secrets_file import server_secret
from keelwatch.auth.tokens import LAST_USED_EVERY, looks_like_token, record_use, verify_token
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

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an ``Authorization`` header value; raises
        :class:`AuthenticationError` (missing, malformed, expired, invalid or revoked)."""
        if authorization is None or not authorization.strip():
            raise AuthenticationError(MISSING_CREDENTIALS)
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials or " " in credentials:
            raise AuthenticationError(MALFORMED_CREDENTIALS)
        if looks_like_token(credentials):
            return self._token_principal(credentials)
        if self.oidc is not None and credentials.count(".") == 2:
            return self.oidc.verify(credentials)
        raise AuthenticationError(MALFORMED_CREDENTIALS)

    def _token_principal(self, credentials: str) -> Principal:
        with self.database.session() as session:
            token = verify_token(session, self.key, credentials, now=utcnow())
        return Principal(
            identity=token.identity,
            kind=PrincipalKind.TOKEN,
            roles=frozenset({token.role}),
            token_id=token.id,
            last_used_at=token.last_used_at,
        )

    def note_use(self, principal: Principal) -> None:
        """Record an authorized call's ``last_used_at`` (tokens only; at most once a minute,
        decided from the row just read so most calls write nothing)."""
        if principal.token_id is None:
            return
        now = utcnow()
        if principal.last_used_at is not None and now - principal.last_used_at < LAST_USED_EVERY:
            return
        with self.database.session() as session:
            record_use(session, principal.token_id, now=now)
