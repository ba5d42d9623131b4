"""Files in the data dir that hold secrets: the server's HMAC key and the local admin token.

Both are created once, atomically (written to a private temporary file, then linked into
place, so two processes starting together agree on one value), readable by the owner only
(0600), and never logged.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from keelwatch.settings import Settings

AUTH_SECRET_FILE = "auth-secret"
ADMIN_TOKEN_FILE = "admin-token"


def write_private_file(path: Path, text: str, *, replace: bool = False) -> bool:
    """Write ``text`` to ``path`` with mode 0600. Without ``replace``, an existing file wins
    (False is returned and nothing is written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        if replace:
            temporary.replace(path)
            return True
        try:
            os.link(temporary, path)  # fails if another process got there first
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def server_secret(settings: Settings) -> bytes:
    """The key API tokens are hashed under: ``auth.secret``, else ``<data_dir>/auth-secret``
    (32 random bytes in hex, generated on first use)."""
    configured = settings.auth.secret.get_secret_value()
    if configured:
        return configured.encode()
    path = settings.data_dir / AUTH_SECRET_FILE
    if not path.exists():
        write_private_file(path, secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def admin_token_path(settings: Settings) -> Path:
    """Where ``keelwatch up`` and ``make demo`` keep the local admin token."""
    return settings.data_dir / ADMIN_TOKEN_FILE


def read_admin_token(settings: Settings) -> str | None:
    """The local admin token file's content, or None when there is none (or it is unreadable)."""
    try:
        text = admin_token_path(settings).read_text().strip()
    except OSError:
        return None
    return text or None


def cli_token(settings: Settings) -> str | None:
    """The token a CLI presents to the API: ``KEELWATCH_TOKEN``, else the local admin token."""
    explicit = settings.token.get_secret_value().strip()
    return explicit or read_admin_token(settings)
