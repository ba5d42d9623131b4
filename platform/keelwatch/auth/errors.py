"""Authentication and authorization failures (401 and 403 at the API).

Messages never say whether a token exists: a wrong secret, an unknown prefix and a revoked
token all read "invalid or revoked token". Only a caller who proved they hold the secret
learns that it expired.
"""

from __future__ import annotations

from keelwatch.entities.auth import Role
from keelwatch.errors import KeelwatchError

MISSING_CREDENTIALS = "authentication required: send 'Authorization: Bearer <token>'"
MALFORMED_CREDENTIALS = (
    "malformed credentials: expected 'Authorization: Bearer <token>' with a Keelwatch token "
    "(kw_<prefix>_<secret>) or an OIDC access token"
)
INVALID_TOKEN = "invalid or revoked token"
EXPIRED_TOKEN = "token expired"


class AuthenticationError(KeelwatchError):
    """No credentials, or credentials that do not authenticate anyone (401)."""

    status_code = 401


class PermissionDeniedError(KeelwatchError):
    """An authenticated caller whose roles do not grant what the route needs (403)."""

    status_code = 403

    def __init__(self, needed: Role, held: frozenset[Role]) -> None:
        have = ", ".join(sorted(role.value for role in held)) or "none"
        super().__init__(f"forbidden: this route needs role '{needed.value}' (you have: {have})")
        self.needed = needed
