"""Notifier secrets encrypted at rest: what the ``notifiers`` table stores for a webhook's
HMAC key, a Slack webhook URL, a PagerDuty routing key, an Alertmanager bearer token or an
SMTP password.

Each secret field (the ``SecretStr`` fields of the notifier's config model,
:func:`secret_fields`) is stored as ``enc:v1:<key id>:<base64url(nonce | ciphertext | tag)>``:
AES-256-GCM (``cryptography``) with a random 96-bit nonce, and the notifier's name and the
field as associated data, so a value copied into another notifier or field does not decrypt.
The key id (8 hex characters of a SHA-256 of the key) names which key wrote a value, so a
process holding another key says so instead of failing obscurely.

The key: HKDF-SHA256 of ``auth.encryption_key`` when set, else of the server secret
(``auth.secret``, or ``data_dir/auth-secret``) that API tokens are hashed under; the API, the
workers (which deliver) and beat must see the same one. Values without the ``enc:v1:``
prefix, written before this existed, are read as they are (plaintext) and encrypted the next
time the notifier is written (added again); no migration is needed.

Storage knows none of this: :mod:`keelwatch.storage.notifications` takes a
:class:`NotifierSecrets` (the ``ConfigSecrets`` protocol) from its caller and never reads
settings.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from keelwatch.errors import KeelwatchError
from keelwatch.settings import Settings

#: Every encrypted value starts with this; anything else is a plaintext value from before.
SEALED_PREFIX = "enc:v1:"
_HKDF_INFO = b"keelwatch:notifier-secrets:v1"
_NONCE_BYTES = 12


class SecretsKeyError(KeelwatchError):
    """A stored secret cannot be decrypted with this process's key (a server-side setting
    differs from the one the value was written with). Names the notifier and the field,
    never a value. 503 at the API: the server is misconfigured for this notifier (nothing
    the caller sent is wrong), and the API never answers 500 on purpose."""

    status_code = 503


def derive_key(material: bytes) -> bytes:
    """A 256-bit AES key from ``material`` (HKDF-SHA256, fixed context, no salt: the input is
    already a high-entropy secret)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(material)


def is_sealed(value: object) -> bool:
    """True for a value written by :meth:`SecretBox.seal`."""
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


class SecretBox:
    """Encrypts and decrypts short strings under one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a SecretBox key is 32 bytes (use derive_key)")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"keelwatch key id:" + key).hexdigest()[:8]

    def seal(self, plaintext: str, *, context: str) -> str:
        """``enc:v1:<key id>:<data>``; ``context`` (where the value lives) must be given
        again to open it."""
        nonce = os.urandom(_NONCE_BYTES)
        data = nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        encoded = base64.urlsafe_b64encode(data).decode().rstrip("=")
        return f"{SEALED_PREFIX}{self.key_id}:{encoded}"

    def open(self, sealed: str, *, context: str) -> str:
        """The plaintext of a sealed value; :class:`ValueError` saying why it cannot be had
        (another key, a value from another place, a damaged value). Never echoes the value."""
        key_id, _, encoded = sealed.removeprefix(SEALED_PREFIX).partition(":")
        if key_id != self.key_id:
            raise ValueError(
                f"it was encrypted under key {key_id}, and this process has key {self.key_id}"
            )
        try:
            data = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            nonce, body = data[:_NONCE_BYTES], data[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, body, context.encode()).decode()
        except (binascii.Error, InvalidTag, UnicodeDecodeError, ValueError):
            raise ValueError("the stored value is damaged or belongs elsewhere") from None


@functools.cache
def secret_fields(type_name: str) -> frozenset[str]:
    """The config fields of notifier type ``type_name`` that hold secrets (its ``SecretStr``
    fields); empty for an unknown type."""
    from keelwatch.alerting.notifiers import NOTIFIER_TYPES

    notifier_type = NOTIFIER_TYPES.get(type_name)
    if notifier_type is None:
        return frozenset()
    fields = notifier_type.config_type.model_fields
    return frozenset(name for name, info in fields.items() if _holds_secret(info.annotation))


def _holds_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_holds_secret(arg) for arg in getattr(annotation, "__args__", ()))


class NotifierSecrets:
    """Seals the secret fields of a notifier config before it is stored and opens them when
    it is read (the ``ConfigSecrets`` protocol of :mod:`keelwatch.storage.notifications`)."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def seal(self, notifier: str, type_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with every non-empty secret field encrypted (others unchanged)."""
        secret = secret_fields(type_name)
        return {
            name: self.box.seal(value, context=_context(notifier, name))
            if name in secret and isinstance(value, str) and value and not is_sealed(value)
            else value
            for name, value in config.items()
        }

    def open(
        self,
        notifier: str,
        type_name: str,  # noqa: ARG002 - the protocol's signature; every sealed value opens
        config: Mapping[str, Any],
    ) -> dict[str, Any]:
        """``config`` with every encrypted value decrypted; plaintext values (rows from before
        encryption) pass as they are. :class:`SecretsKeyError` naming the notifier and field
        when one cannot be decrypted."""
        opened: dict[str, Any] = {}
        for name, value in config.items():
            if not is_sealed(value):
                opened[name] = value
                continue
            try:
                opened[name] = self.box.open(value, context=_context(notifier, name))
            except ValueError as exc:
                raise SecretsKeyError(
                    f"notifier {notifier!r}: cannot decrypt its {name!r} field: {exc}. Give "
                    "this process the key the notifier was added with "
                    "(KEELWATCH_AUTH__ENCRYPTION_KEY, or KEELWATCH_AUTH__SECRET when that is "
                    "unset), or delete the notifier and add it again"
                ) from None
        return opened


def _context(notifier: str, field: str) -> str:
    return f"notifier:{notifier}:{field}"


def notifier_secrets(settings: Settings) -> NotifierSecrets:
    """The :class:`NotifierSecrets` of this deployment: ``auth.encryption_key``, else the
    server secret (read, or created once, in the data dir), through HKDF."""
    from keelwatch.auth.secrets_file import server_secret

    configured = settings.auth.encryption_key.get_secret_value()
    material = configured.encode() if configured else server_secret(settings)
    return _secrets_for(material)


@functools.lru_cache(maxsize=8)
def _secrets_for(material: bytes) -> NotifierSecrets:
    # A worker opens one notifier per delivery: derive the key once per process, not each time.
    return NotifierSecrets(SecretBox(derive_key(material)))
