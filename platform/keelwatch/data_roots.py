"""Dataset paths that arrive over the API, confined to the configured data roots.

The API reads datasets (batch inputs, dataset windows, reference data) and workers write batch
outputs at paths a caller names. :func:`resolve_read` and :func:`resolve_write` turn such a
path or ``file://`` URI into a real path inside one of the roots
(``KEELWATCH_DATA_ROOTS__READ`` / ``__WRITE``), or raise :class:`DataPathError` naming the rule
it breaks. The rules, in this order:

1. no NUL byte (the operating system cannot take one, and PostgreSQL cannot store one);
2. a local path or a ``file://`` URI without a host: only local files are read today;
3. no ``..`` segment (a caller names the path inside a root, never a way out of one);
4. the real path (``os.path.realpath``: symlinks followed) lies inside a root;
5. only then, inside the roots: a dataset exists and is a regular file (not a folder, device,
   FIFO or socket); an output location is a folder or does not exist yet.

Rules 1-4 never look at what the path names, so a refusal reads the same whether the file
exists or not and says nothing about its content. A relative path is taken relative to the
first root, not the server's working directory.

The module touches the file system only through ``realpath`` and ``stat``. The local CLI's
standalone commands (an administrator on the box) do not go through it; workers call
:func:`require_inside` before writing, as a second line of defence.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from keelwatch.errors import InvalidInputError

READ_ROOTS_SETTING = "KEELWATCH_DATA_ROOTS__READ"
WRITE_ROOTS_SETTING = "KEELWATCH_DATA_ROOTS__WRITE"


class DataPathError(InvalidInputError):
    """A dataset path refused by a confinement rule (422 on the API)."""


def resolve_read(location: str, roots: Sequence[str | Path], *, field: str) -> Path:
    """The real path of the dataset file ``location`` names, inside one of ``roots``.

    ``field`` names the request field in messages (``input_uri``, ``window.uri`` ...).
    Raises :class:`DataPathError` for a path that breaks a rule (see the module docstring),
    that does not exist, or that is not a regular file.
    """
    real = _confined(location, roots, field=field, setting=READ_ROOTS_SETTING)
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        raise DataPathError(f"{field}: file not found: {real}") from None
    except OSError as exc:  # permission, a dangling symlink loop: say which, not the text
        raise DataPathError(f"{field}: cannot read {real} ({type(exc).__name__})") from None
    if not stat.S_ISREG(mode):
        raise DataPathError(
            f"{field}: {real} is not a regular file (a folder, device, FIFO or socket)"
        )
    return real


def resolve_read_folder(location: str, roots: Sequence[str | Path], *, field: str) -> Path:
    """The real path of the folder ``location`` names (a local MLflow model: its ``MLmodel``
    folder), inside one of the read ``roots``; the same rules as :func:`resolve_read`."""
    real = _confined(location, roots, field=field, setting=READ_ROOTS_SETTING)
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        raise DataPathError(f"{field}: folder not found: {real}") from None
    except OSError as exc:
        raise DataPathError(f"{field}: cannot read {real} ({type(exc).__name__})") from None
    if not stat.S_ISDIR(mode):
        raise DataPathError(f"{field}: {real} is not a folder")
    return real


def is_local_location(location: str) -> bool:
    """Whether ``location`` names a local file (a path or a ``file://`` URI) rather than a
    URI another store resolves (``runs:/``, ``models:/``, ``s3://`` ...)."""
    scheme = urlparse(location).scheme
    return not scheme or scheme == "file" or len(scheme) == 1


def resolve_write(location: str, roots: Sequence[str | Path], *, field: str) -> Path:
    """The real path of the output folder ``location`` names, inside one of ``roots``.

    The folder may not exist yet (the worker creates it); when something is there it must be a
    folder. Raises :class:`DataPathError` otherwise.
    """
    real = _confined(location, roots, field=field, setting=WRITE_ROOTS_SETTING)
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise DataPathError(f"{field}: cannot use {real} ({type(exc).__name__})") from None
    if not stat.S_ISDIR(mode):
        raise DataPathError(f"{field}: {real} exists and is not a folder")
    return real


def require_inside(path: str | Path, roots: Sequence[str | Path], *, what: str) -> Path:
    """``path``'s real path when it lies inside one of the write ``roots``, else raise.

    For paths Keelwatch computed itself (a job's output folder, read back by a worker before it
    writes): the same containment rule as :func:`resolve_write`, without the caller-input rules.
    """
    real = Path(os.path.realpath(path))
    if not _inside_any(real, roots):
        raise DataPathError(
            f"{what} is outside the configured write roots ({WRITE_ROOTS_SETTING}); "
            "refusing to write there"
        )
    return real


def _confined(location: str, roots: Sequence[str | Path], *, field: str, setting: str) -> Path:
    if "\x00" in location:
        raise DataPathError(f"{field}: the path contains a NUL byte")
    raw = _local_part(location, field=field)
    if not raw.strip():
        raise DataPathError(f"{field}: the path is empty")
    if ".." in raw.replace("\\", "/").split("/"):
        raise DataPathError(
            f"{field}: '..' segments are not allowed; name the file inside a data root ({setting})"
        )
    if not roots:
        raise DataPathError(f"{field}: no data roots are configured ({setting})")
    path = Path(raw)
    if not path.is_absolute():
        path = Path(roots[0]) / path
    real = Path(os.path.realpath(path))
    if not _inside_any(real, roots):
        raise DataPathError(f"{field}: the path is outside the configured data roots ({setting})")
    return real


def _local_part(location: str, *, field: str) -> str:
    """The path part of a local path or ``file://`` URI; other schemes are refused."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DataPathError(f"{field}: file URIs with a host are not supported")
        path = unquote(parsed.path)
        if "\x00" in path:  # file:///a%00b
            raise DataPathError(f"{field}: the path contains a NUL byte")
        return path
    # One-letter schemes are Windows drive letters, not URI schemes.
    if parsed.scheme and len(parsed.scheme) > 1:
        raise DataPathError(
            f"{field}: unsupported location scheme {parsed.scheme!r}: only local files "
            "(a path or a file:// URI) are supported"
        )
    return location


def _inside_any(real: Path, roots: Sequence[str | Path]) -> bool:
    return any(real.is_relative_to(os.path.realpath(root)) for root in roots)
