"""Who is calling: roles, principals and API tokens (the listable part, never the secret).

Plain values: :mod:`keelwatch.auth` decides what a role may do and checks credentials,
``storage.tokens`` turns rows into :class:`ApiToken`, the API and the CLI render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    """What a principal may do. ``viewer < operator < approver < admin``; ``reviewer`` is a
    separate branch (it implies ``viewer`` only) and ``admin`` implies every role.

    See :data:`keelwatch.auth.roles.ROLE_GRANTS` for the whole hierarchy."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    ADMIN = "admin"


class PrincipalKind(StrEnum):
    """How a principal was authenticated."""

    TOKEN = "token"
    OIDC = "oidc"
    #: ``auth.mode = disabled``: nobody is authenticated, every call is allowed.
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``identity`` is what the audit log records as the actor (``token:<name>``,
    ``oidc:<subject>``, ``anonymous``); ``token_id`` is set for API tokens only.
    """

    identity: str
    kind: PrincipalKind
    roles: frozenset[Role]
    token_id: int | None = None
    last_used_at: datetime | None = None


class TokenState(StrEnum):
    """Whether a token authenticates right now."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored API token as it may be shown: no secret, no hash.

    ``prefix`` is the public part of ``kw_<prefix>_<secret>``: listable, and how a request's
    token finds its row.
    """

    id: int
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def identity(self) -> str:
        """The audit actor of calls made with this token."""
        return f"token:{self.name}"

    def state(self, now: datetime) -> TokenState:
        """Revoked wins over expired: a revoked token stays revoked whatever its expiry."""
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: ``secret`` (the whole ``kw_<prefix>_<secret>`` string) is shown
    to its owner once and never stored."""

    token: ApiToken
    secret: str
