"""Optional OIDC: JWT access tokens signed by keys the test makes, served by a local JWKS HTTP
server, checked by the real app (issuer, audience, expiry, signature, roles claim)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from keelwatch.api.app import create_app
from keelwatch.settings import OidcSettings, Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from tests.integration.conftest import bearer, issue_token

pytestmark = pytest.mark.integration

ISSUER = "https://idp.example.test/realms/ml"
AUDIENCE = "keelwatch-api"
KID = "test-key-1"


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A loopback HTTP server answering the issuer's JWKS (the public half of signing_key)."""
    public = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    finally:
        server.shutdown()
        server.server_close()


def access_token(
    key: rsa.RSAPrivateKey,
    *,
    kid: str = KID,
    algorithm: str = "RS256",
    lifetime_s: int = 300,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@example.test",
        "iat": now,
        "exp": now + lifetime_s,
        "roles": ["operator"],
        **claims,
    }
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
def oidc_client(settings: Settings, jwks_url: str) -> Iterator[TestClient]:
    settings.auth.oidc = OidcSettings(issuer=ISSUER, jwks_url=jwks_url, audience=AUDIENCE)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_a_valid_access_token_acts_as_its_subject(
    oidc_client: TestClient, signing_key: rsa.RSAPrivateKey, database: Database
) -> None:
    token = access_token(signing_key)
    response = oidc_client.post(
        "/predictions/labels",
        json={"labels": [{"request_id": "r-1", "label": 1}]},
        headers={**bearer(token), "X-Keelwatch-Actor": "someone-else"},
    )
    assert response.status_code == 200, response.text
    with database.session() as session:
        (entry,) = list_audit(session, action="labels.record")
    assert entry.actor == "oidc:alice@example.test"


def test_roles_claim_decides_what_is_allowed(
    oidc_client: TestClient, signing_key: rsa.RSAPrivateKey
) -> None:
    viewer = access_token(signing_key, roles="viewer some-other-app-role")
    assert oidc_client.get("/jobs", headers=bearer(viewer)).status_code == 200
    refused = oidc_client.post("/jobs/j1/cancel", headers=bearer(viewer))
    assert refused.status_code == 403
    assert "needs role 'operator'" in refused.json()["error"]
    approver = access_token(signing_key, roles=["approver"])
    assert oidc_client.post("/models/m/rollback", headers=bearer(approver)).status_code not in (
        401,
        403,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lifetime_s": -120}, "token expired"),
        ({"aud": "another-api"}, "invalid or revoked token"),
        ({"iss": "https://evil.example.test"}, "invalid or revoked token"),
        ({"roles": ["superuser"]}, "invalid or revoked token"),
        ({"roles": None}, "invalid or revoked token"),
        ({"kid": "unknown-key"}, "invalid or revoked token"),
    ],
)
def test_bad_access_tokens_are_401(
    oidc_client: TestClient,
    signing_key: rsa.RSAPrivateKey,
    change: dict[str, Any],
    message: str,
) -> None:
    token = access_token(signing_key, **change)
    response = oidc_client.get("/jobs", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == message
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_token_signed_by_another_key_or_with_hmac_is_refused(
    oidc_client: TestClient, signing_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    forged = access_token(rsa_key())  # same kid, wrong key
    assert oidc_client.get("/jobs", headers=bearer(forged)).status_code == 401
    # The classic confusion attack: HS256 "signed" with the public key's PEM bytes (built by
    # hand: PyJWT itself refuses to make one).
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 60}
    signing_input = ".".join(
        base64url(json.dumps(part).encode())
        for part in ({"alg": "HS256", "typ": "JWT", "kid": KID}, claims)
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    hmac_token = f"{signing_input}.{base64url(signature)}"
    assert oidc_client.get("/jobs", headers=bearer(hmac_token)).status_code == 401


def test_keelwatch_tokens_still_work_next_to_oidc(
    oidc_client: TestClient, settings: Settings
) -> None:
    token = issue_token(settings, name="ci")
    assert oidc_client.get("/jobs", headers=bearer(token)).status_code == 200


def test_half_configured_oidc_stops_the_app_at_start(settings: Settings) -> None:
    settings.auth.oidc = OidcSettings(issuer=ISSUER)
    with pytest.raises(ValueError, match=r"KEELWATCH_AUTH__OIDC__JWKS_URL and .*AUDIENCE"):
        create_app(settings)
