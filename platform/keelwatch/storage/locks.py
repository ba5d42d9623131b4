"""Per-model locks that serialise registry changes across threads, processes and hosts.

A registry change reads MLflow (where does the alias point now?), moves the alias, and records
the move in alias history; two changes of one model interleaving those steps leave a history
that disagrees with MLflow. :func:`lock_model` makes the caller's transaction the only one
changing that model until it commits or rolls back. The lock lives in Keelwatch's database, so
it holds between API replicas and workers, not only between threads of one process:

- PostgreSQL: ``pg_advisory_xact_lock`` on a stable 64-bit hash of the model name. Only
  changes of the same model wait for each other; the lock ends with the transaction, so a
  crashed client cannot leave it held.
- SQLite: ``BEGIN IMMEDIATE``, which takes the database's write lock at once. SQLite has one
  writer per database file, so this serialises every registry change (of any model) with every
  other write for the length of the change; the alternative, a lock-row table updated first,
  takes exactly the same database-wide lock and adds a schema change for nothing.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from keelwatch.errors import UnavailableError

#: How long a change waits for another change of the same model before giving up (503). The
#: SQLite engine's busy timeout (storage.db) is the same 30 s.
LOCK_WAIT_S = 30.0

_NAMESPACE = b"keelwatch.registry.model:"
_PG_LOCK_NOT_AVAILABLE = "55P03"


def model_lock_key(model_name: str) -> int:
    """The signed 64-bit advisory-lock key of ``model_name``: the same in every process and
    Python version (unlike ``hash()``), namespaced so other advisory-lock users do not collide."""
    digest = hashlib.sha256(_NAMESPACE + model_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_model(session: Session, model_name: str, *, wait_s: float = LOCK_WAIT_S) -> None:
    """Hold the registry lock of ``model_name`` until ``session``'s transaction ends.

    Call it first in the transaction, before the reads the change depends on: a read made
    under the lock sees every change committed before it. Waiting longer than ``wait_s`` for
    another change raises :class:`~keelwatch.errors.UnavailableError` (503, retry).
    """
    dialect = session.get_bind().dialect.name
    try:
        if dialect == "postgresql":
            # SET LOCAL: the limit ends with this transaction, pooled connections keep theirs.
            session.execute(
                text("SELECT set_config('lock_timeout', :limit, true)"),
                {"limit": f"{int(wait_s * 1000)}ms"},
            )
            session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": model_lock_key(model_name)}
            )
        elif dialect == "sqlite":
            _begin_immediate(session)
        else:  # only SQLite and PostgreSQL are supported stores
            raise NotImplementedError(f"no registry lock for database dialect {dialect!r}")
    except OperationalError as exc:
        if not _is_lock_wait_timeout(exc):
            raise
        raise UnavailableError(
            f"model {model_name!r} is being changed by another request (waited "
            f"{wait_s:g} s for it); retry"
        ) from exc


def _begin_immediate(session: Session) -> None:
    # Python's sqlite3 opens a deferred transaction only before the first write; a change must
    # take the write lock before its first read instead, or two changes would both read the
    # old alias. The busy timeout (storage.db) is how long BEGIN IMMEDIATE waits.
    raw = session.connection().connection.dbapi_connection
    if getattr(raw, "in_transaction", False):
        raise RuntimeError("lock_model must be the first write of its transaction on SQLite")
    session.execute(text("BEGIN IMMEDIATE"))


def _is_lock_wait_timeout(exc: OperationalError) -> bool:
    original = exc.orig
    if getattr(original, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
        return True
    return "database is locked" in str(original)
