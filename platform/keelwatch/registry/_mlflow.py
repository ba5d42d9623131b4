"""MLflow plumbing shared by the façade: entity conversion, error translation and the undo log
that keeps MLflow and Keelwatch's database consistent.

MLflow is imported lazily (inside functions) so that importing :mod:`keelwatch.registry` stays
cheap for the CLI and the API routers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from keelwatch.entities.registry import (
    TAG_APPROVAL,
    TAG_APPROVAL_ACTOR,
    TAG_APPROVAL_REASON,
    TAG_ROLLED_BACK,
    ApprovalState,
    ModelVersionInfo,
    RegisteredModelInfo,
)
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})


def mlflow_error_code(exc: BaseException) -> str | None:
    """The MLflow error code of ``exc`` (``RESOURCE_DOES_NOT_EXIST`` ...), None for others."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return str(exc.error_code)
    return None


@contextmanager
def translated_mlflow_errors(not_found: str | None = None) -> Iterator[None]:
    """Re-raise MLflow's "does not exist" / "invalid value" errors as Keelwatch errors.

    ``not_found`` replaces MLflow's message for a missing resource with one that names what the
    user asked for.
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        code = str(exc.error_code)
        if code in NOT_FOUND_CODES:
            raise NotFoundError(not_found or exc.message) from exc
        if code == "INVALID_PARAMETER_VALUE":
            raise InvalidInputError(exc.message) from exc
        raise


def from_millis(millis: int | None) -> datetime:
    """MLflow's epoch milliseconds → aware UTC datetime (epoch when unknown)."""
    return datetime.fromtimestamp((millis or 0) / 1000, tz=UTC)


def to_version_info(version: Any, aliases: tuple[str, ...] | None = None) -> ModelVersionInfo:
    """MLflow ``ModelVersion`` → :class:`ModelVersionInfo`."""
    tags: dict[str, str] = dict(version.tags or {})
    raw_state = tags.get(TAG_APPROVAL, ApprovalState.PENDING.value)
    try:
        approval = ApprovalState(raw_state)
    except ValueError:  # a hand-edited tag in the MLflow UI must not break listing
        approval = ApprovalState.PENDING
    return ModelVersionInfo(
        name=version.name,
        version=str(version.version),
        source=version.source or "",
        run_id=version.run_id or None,
        created_at=from_millis(version.creation_timestamp),
        approval=approval,
        approval_actor=tags.get(TAG_APPROVAL_ACTOR),
        approval_reason=tags.get(TAG_APPROVAL_REASON),
        aliases=tuple(sorted(version.aliases or ())) if aliases is None else aliases,
        rolled_back=tags.get(TAG_ROLLED_BACK, "").lower() == "true",
        description=version.description or "",
        tags=tags,
    )


def to_model_info(model: Any, latest_version: str | None) -> RegisteredModelInfo:
    """MLflow ``RegisteredModel`` → :class:`RegisteredModelInfo`."""
    return RegisteredModelInfo(
        name=model.name,
        description=model.description or "",
        created_at=from_millis(model.creation_timestamp),
        updated_at=from_millis(model.last_updated_timestamp),
        latest_version=latest_version,
        aliases={alias: str(version) for alias, version in (model.aliases or {}).items()},
    )


def alias_target(model: Any, alias: str) -> str | None:
    """The version (as a string) that ``alias`` of an MLflow ``RegisteredModel`` points to."""
    version = (model.aliases or {}).get(alias)
    return str(version) if version is not None else None


def aliases_by_version(model: Any) -> dict[str, tuple[str, ...]]:
    """Version → its aliases, from an MLflow ``RegisteredModel``."""
    grouped: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        grouped.setdefault(str(version), []).append(alias)
    return {version: tuple(sorted(names)) for version, names in grouped.items()}


@dataclass
class Change:
    """One registry change in progress: a DB session plus how to undo the MLflow writes.

    Used through :func:`registry_change`. MLflow and Keelwatch's database cannot share a
    transaction, so every change runs as: validate (reads only) → MLflow write(s), each
    registering its inverse with :meth:`on_undo` → audit/history rows in ``session`` → commit.
    If anything after the first MLflow write fails (a later MLflow call, the audit insert, the
    commit itself), the DB transaction rolls back and the MLflow writes are undone newest
    first, so neither side keeps a half-applied change.
    """

    session: Session
    undo_steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def on_undo(self, description: str, undo: Callable[[], None]) -> None:
        """Remember how to reverse the MLflow write that just succeeded."""
        self.undo_steps.append((description, undo))

    def undo(self) -> None:
        """Reverse the recorded MLflow writes, newest first; log (never raise) undo failures."""
        for description, step in reversed(self.undo_steps):
            try:
                step()
            except Exception:
                logger.exception("could not undo MLflow change (%s); fix it by hand", description)
        self.undo_steps.clear()


@contextmanager
def registry_change(db: Database) -> Iterator[Change]:
    """Run one change all-or-nothing across MLflow and the database (see :class:`Change`)."""
    change: Change | None = None
    try:
        with db.session() as session:
            change = Change(session=session)
            yield change
    except BaseException:
        if change is not None:
            change.undo()
        raise


def move_alias(
    client: Any, change: Change, name: str, alias: str, version: str | None, previous: str | None
) -> None:
    """Point ``alias`` at ``version`` (delete it when None), registering the inverse."""
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)
    if previous is None:
        change.on_undo(
            f"delete alias {name}@{alias}",
            partial(client.delete_registered_model_alias, name, alias),
        )
    else:
        change.on_undo(
            f"restore alias {name}@{alias} -> {previous}",
            partial(client.set_registered_model_alias, name, alias, previous),
        )


def set_version_tags(
    client: Any,
    change: Change,
    name: str,
    version: str,
    tags: dict[str, str],
    previous: dict[str, str] | None = None,
) -> None:
    """Set version tags one by one, registering how to restore each previous value."""
    if previous is None:
        previous = dict(client.get_model_version(name, version).tags or {})
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
        old = previous.get(key)
        if old is None:
            change.on_undo(
                f"delete tag {key} of {name}/{version}",
                partial(client.delete_model_version_tag, name, version, key),
            )
        else:
            change.on_undo(
                f"restore tag {key} of {name}/{version}",
                partial(client.set_model_version_tag, name, version, key, old),
            )
