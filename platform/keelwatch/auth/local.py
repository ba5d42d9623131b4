"""The local admin token that ``keelwatch up`` and ``make demo`` create on first start.

One command still gives a working install with authentication on: the token is written to
``<data_dir>/admin-token`` (mode 0600) and the command prints that path, never the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keelwatch.auth.errors import AuthenticationError
from keelwatch.auth.secrets_file import (
    admin_token_path,
    read_admin_token,
    server_secret,
    write_private_file,
)
from keelwatch.auth.tokens import create_token, revoke_tokens, verify_token
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.db import Database
from keelwatch.storage.tokens import unrevoked_named

LOCAL_ADMIN_NAME = "local-admin"


@dataclass(frozen=True)
class LocalAdminToken:
    """Where the local admin token is and whether this call created it."""

    path: Path
    created: bool

    def describe(self) -> str:
        """``<path> (created)`` or ``<path>`` for a console line."""
        return f"{self.path} (created)" if self.created else str(self.path)


def ensure_local_admin_token(
    database: Database, settings: Settings, *, actor: str
) -> LocalAdminToken:
    """Keep a working admin token in ``<data_dir>/admin-token``.

    A file whose token still authenticates is left alone. Otherwise (first start, a file
    deleted, a database reset, a revoked token) any unrevoked ``local-admin`` token is revoked
    and a new one is created and written; both are audited as ``actor``.
    """
    path = admin_token_path(settings)
    key = server_secret(settings)
    existing = read_admin_token(settings)
    now = utcnow()
    with database.session() as session:
        if existing is not None:
            try:
                verify_token(session, key, existing, now=now)
            except AuthenticationError:
                pass
            else:
                return LocalAdminToken(path, created=False)
        if unrevoked_named(session, LOCAL_ADMIN_NAME):
            revoke_tokens(
                session,
                LOCAL_ADMIN_NAME,
                actor=actor,
                now=now,
                reason=f"replaced: {path} was missing or no longer valid",
            )
        issued = create_token(
            session, key, name=LOCAL_ADMIN_NAME, role=Role.ADMIN, actor=actor, now=now
        )
    write_private_file(path, issued.secret + "\n", replace=True)
    return LocalAdminToken(path, created=True)


def prepare_local_admin_token(settings: Settings, *, actor: str) -> LocalAdminToken:
    """:func:`ensure_local_admin_token` on a database of its own (for ``keelwatch up``)."""
    database = Database(settings.database.url)
    try:
        return ensure_local_admin_token(database, settings, actor=actor)
    finally:
        database.dispose()
