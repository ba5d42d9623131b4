"""Alias governance, the decision part: what happened to a governed alias, and what to do.

MLflow lets anyone with access move an alias (the UI's alias pencil, ``MlflowClient``), which
would put an unapproved version into production with no audit row and no history. The alias
watcher (:mod:`keelwatch.registry.watcher`) reads each governed alias from MLflow and the alias
history Keelwatch keeps, and asks :func:`assess_alias` what that means:

- MLflow agrees with the newest history row: nothing happened.
- It does not: a change Keelwatch did not make (:class:`ExternalChange`: ``set``, ``moved`` or
  ``removed``), recorded once as an ``external`` history row, after which history agrees again.
- In ``enforce`` mode, MLflow is also compared with the newest row Keelwatch itself wrote (the
  governed version): when they differ, the alias is put back (:class:`Restore`). An alias
  Keelwatch never set has no governed version and is never touched.

Also here: the separation-of-duties rule for approvals (:func:`check_separation_of_duties`).

Pure: entities in, decisions out; no MLflow, database or settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from keelwatch.entities import AliasChange
from keelwatch.entities.registry import TAG_REGISTERED_BY, ModelVersionInfo
from keelwatch.entities.signals import Signal
from keelwatch.errors import ConflictError

#: The audit and history actor of changes made outside Keelwatch.
EXTERNAL_ACTOR = "external:mlflow"
#: The audit and history actor of the watcher's own restores (enforce mode).
GOVERNANCE_ACTOR = "registry:governance"
#: The signal one external change emits (value 1), so a rule can alert on it.
EXTERNAL_CHANGE_SIGNAL = "registry.alias.external_change"
#: Audit action of a recorded external change, and of the watcher's restore.
EXTERNAL_ACTION = "model.alias.external"
RESTORE_ACTION = "model.alias.restore"


class ExternalKind(StrEnum):
    """How a governed alias was changed outside Keelwatch."""

    SET = "set"
    """History says unset (or has no row), MLflow has a version."""
    MOVED = "moved"
    """History and MLflow name different versions."""
    REMOVED = "removed"
    """History names a version, MLflow has no such alias."""


@dataclass(frozen=True)
class ExternalChange:
    """A governed alias whose MLflow value disagrees with the newest alias-history row."""

    model_name: str
    alias: str
    from_version: str | None
    """What alias history last recorded (None: unset, or no history)."""
    to_version: str | None
    """What MLflow shows now (None: the alias does not exist)."""

    @property
    def kind(self) -> ExternalKind:
        """Set, moved or removed."""
        if self.from_version is None:
            return ExternalKind.SET
        if self.to_version is None:
            return ExternalKind.REMOVED
        return ExternalKind.MOVED

    def describe(self) -> str:
        """One line for history and audit reasons: names versions, never anything else."""
        where = f"{self.model_name}@{self.alias}"
        if self.kind is ExternalKind.SET:
            return f"{where} set to v{self.to_version} outside Keelwatch"
        if self.kind is ExternalKind.REMOVED:
            return f"{where} removed outside Keelwatch (was v{self.from_version})"
        return f"{where} moved from v{self.from_version} to v{self.to_version} outside Keelwatch"


@dataclass(frozen=True)
class Restore:
    """Put a governed alias back where Keelwatch last set it."""

    version: str | None
    """The governed version (None: Keelwatch last cleared the alias, so it is removed)."""
    replaced: str | None
    """What MLflow showed (None: the alias had been removed)."""

    def describe(self, model_name: str, alias: str, mode: str = "enforce") -> str:
        """The restore's reason, for history and audit."""
        where = f"{model_name}@{alias}"
        shown = f"v{self.replaced}" if self.replaced is not None else "unset"
        target = f"v{self.version}" if self.version is not None else "unset"
        return (
            f"{where} was {shown} outside Keelwatch; alias governance is {mode}: "
            f"put back to {target}, where Keelwatch last set it"
        )


@dataclass(frozen=True)
class AliasAssessment:
    """What :func:`assess_alias` found for one governed alias of one model."""

    model_name: str
    alias: str
    observed: str | None
    """MLflow's version of the alias (None: unset)."""
    external: ExternalChange | None = None
    """A change to record (history row, audit, signal), or None when history agrees."""
    restore: Restore | None = None
    """What enforce mode puts back, or None."""
    note: str = ""
    """Why an enforce-mode change is not put back (Keelwatch never set the alias)."""

    @property
    def in_order(self) -> bool:
        """Nothing to record and nothing to restore."""
        return self.external is None and self.restore is None


def governed_change(history: Sequence[AliasChange]) -> AliasChange | None:
    """The newest history row Keelwatch wrote itself (not ``external``), or None."""
    for change in reversed(history):
        if not change.external:
            return change
    return None


def assess_alias(
    model_name: str,
    alias: str,
    observed: str | None,
    history: Sequence[AliasChange],
    *,
    enforce: bool,
) -> AliasAssessment:
    """Compare MLflow's ``observed`` version of ``alias`` with its ``history`` (oldest first).

    ``history`` may be only its newest row when ``enforce`` is off (the comparison needs no
    more); in enforce mode it must reach back to the newest row Keelwatch wrote.
    """
    latest = history[-1] if history else None
    recorded = latest.version if latest is not None else None
    external = None
    if observed != recorded:
        external = ExternalChange(model_name, alias, from_version=recorded, to_version=observed)
    if not enforce:
        return AliasAssessment(model_name, alias, observed, external)
    governed = governed_change(history)
    if governed is None:
        note = ""
        if external is not None or observed is not None:
            note = f"Keelwatch never set {model_name}@{alias}: recorded, not put back"
        return AliasAssessment(model_name, alias, observed, external, note=note)
    restore = None
    if governed.version != observed:
        restore = Restore(version=governed.version, replaced=observed)
    return AliasAssessment(model_name, alias, observed, external, restore)


def external_change_signal(change: ExternalChange, *, at: datetime, source: str) -> Signal:
    """The signal of one recorded external change (value 1; labels ``model``, ``alias``,
    ``version`` (MLflow's, absent when removed), ``from_version`` (history's, absent when
    there was none) and ``change``: set, moved or removed)."""
    labels = {
        "model": change.model_name,
        "alias": change.alias,
        "version": change.to_version or "",
        "from_version": change.from_version or "",
        "change": change.kind.value,
    }
    return Signal(
        name=EXTERNAL_CHANGE_SIGNAL,
        value=1.0,
        # An empty value says nothing (Alertmanager treats it as an absent label).
        labels={key: value for key, value in labels.items() if value},
        observed_at=at,
        source=source,
    )


class SeparationOfDutiesError(ConflictError):
    """The actor approving a version is the one who registered it (403)."""

    status_code = 403


def registered_by(info: ModelVersionInfo) -> str | None:
    """Who registered ``info`` through Keelwatch (its ``keelwatch.registered_by`` tag), or None
    for a version registered outside Keelwatch."""
    actor = (info.tags.get(TAG_REGISTERED_BY) or "").strip()
    return actor or None


def check_separation_of_duties(info: ModelVersionInfo, actor: str) -> None:
    """Refuse ``actor``'s approval of a version ``actor`` registered.

    A version registered outside Keelwatch has no recorded registrant and is not refused here
    (the approval's audit entry still names the approver).
    """
    registrant = registered_by(info)
    if registrant is not None and registrant == actor:
        raise SeparationOfDutiesError(
            f"separation of duties: v{info.version} of model {info.name!r} was registered by "
            f"{registrant}, who may not approve it (policy registry.separation_of_duties is on)"
        )
