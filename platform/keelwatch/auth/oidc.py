"""Optional OIDC: JWT access tokens from an identity provider, checked with PyJWT.

A token is accepted when it is signed (RS256/ES256 family, never ``none`` or HMAC) by a key
the issuer publishes at ``auth.oidc.jwks_url``, its ``iss`` is ``auth.oidc.issuer``, its
``aud`` contains ``auth.oidc.audience``, it has not expired, and its ``auth.oidc.roles_claim``
names at least one Keelwatch role. The audit actor is ``oidc:<sub>``. Signing keys are
fetched from the JWKS URL and cached by PyJWT's client (refetched for an unknown ``kid``).
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from jwt import PyJWKClient

from keelwatch.auth.errors import EXPIRED_TOKEN, INVALID_TOKEN, AuthenticationError
from keelwatch.entities.auth import Principal, PrincipalKind, Role
from keelwatch.settings import OidcSettings

logger = logging.getLogger(__name__)

#: Asymmetric algorithms only: an HMAC "signature" made with the public key is refused.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
_JWKS_TIMEOUT_S = 5
_JWKS_CACHE_S = 300
_LEEWAY_S = 30


def roles_from_claim(value: Any) -> frozenset[Role]:
    """Keelwatch roles named by a claim value (a list, or a space/comma-separated string);
    names that are not Keelwatch roles are ignored."""
    if isinstance(value, str):
        names = value.replace(",", " ").split()
    elif isinstance(value, list | tuple):
        names = [item for item in value if isinstance(item, str)]
    else:
        return frozenset()
    known = {role.value: role for role in Role}
    return frozenset(known[name.strip().lower()] for name in names if name.strip().lower() in known)


class OidcVerifier:
    """Verifies access tokens of one issuer."""

    def __init__(self, settings: OidcSettings) -> None:
        missing = [
            f"KEELWATCH_AUTH__OIDC__{name.upper()}"
            for name in ("jwks_url", "audience")
            if not getattr(settings, name)
        ]
        if missing:
            raise ValueError(f"OIDC is on (issuer set) but {' and '.join(missing)} is empty")
        self.settings = settings
        self._keys = PyJWKClient(
            settings.jwks_url, cache_keys=True, lifespan=_JWKS_CACHE_S, timeout=_JWKS_TIMEOUT_S
        )

    def verify(self, token: str) -> Principal:
        """The principal of a valid token, or :class:`AuthenticationError` (expired, or
        "invalid or revoked token" for anything else; the reason is logged without the
        token)."""
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError(EXPIRED_TOKEN) from None
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("OIDC signing keys unavailable (%s)", type(exc).__name__)
            raise AuthenticationError(INVALID_TOKEN) from None
        except jwt.PyJWTError as exc:
            logger.info("OIDC token refused (%s)", type(exc).__name__)
            raise AuthenticationError(INVALID_TOKEN) from None
        subject = claims.get("sub")
        roles = roles_from_claim(claims.get(self.settings.roles_claim))
        if not isinstance(subject, str) or not subject or not roles:
            logger.info("OIDC token refused (no subject or no Keelwatch role in its claims)")
            raise AuthenticationError(INVALID_TOKEN)
        return Principal(identity=f"oidc:{subject}", kind=PrincipalKind.OIDC, roles=roles)
