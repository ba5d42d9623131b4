"""The alias watcher: governed aliases changed outside Keelwatch are recorded, audited,
signalled and, in ``enforce`` mode, put back.

:func:`watch_aliases` is what the beat task ``keelwatch.registry.watch_aliases`` wraps (every
``registry.watch_interval_s``; the MLflow webhook route sends it for one model at once). One
pass:

1. **Scan, unlocked.** Every registered model's aliases come from one paged MLflow search, the
   newest alias-history row of each governed alias from one query. Models whose aliases all
   agree with history (the normal case) cost nothing more: no lock, no write.
2. **Per suspect model, under its registry lock** (:func:`keelwatch.storage.locks.lock_model`,
   like every writer of alias history): read MLflow and history again (a Keelwatch change may
   have landed since the scan), and ask :func:`keelwatch.registry.governance.assess_alias`.
   An external change becomes an ``external`` alias-history row (actor ``external:mlflow``), an
   audit entry ``model.alias.external`` and the signal ``registry.alias.external_change``; the
   rules watching it are evaluated in the same transaction, as a drift check's are. In enforce
   mode the alias is then moved back through MLflow (undone if the transaction fails), with its
   own history row and audit entry ``model.alias.restore`` (actor ``registry:governance``).
3. The caller commits (each model is its own transaction) and then calls
   ``alerting.service.after_commit_dispatch`` when :attr:`WatchOutcome.signals` is non-zero.

Idempotent: once recorded, history agrees with MLflow, so the next pass (or a redelivered
task) finds nothing; a restore makes MLflow agree with the restore's own history row.

Times: an external change is dated when the watcher notices it (MLflow keeps no time per
alias), so "who was champion at T" is exact to within one watch interval for such changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from keelwatch.entities.time import utcnow
from keelwatch.errors import ConflictError, KeelwatchError, NotFoundError
from keelwatch.registry._mlflow import Change, move_alias, registry_change
from keelwatch.registry.governance import (
    EXTERNAL_ACTION,
    EXTERNAL_ACTOR,
    GOVERNANCE_ACTOR,
    RESTORE_ACTION,
    AliasAssessment,
    ExternalChange,
    assess_alias,
    external_change_signal,
)
from keelwatch.registry.lifecycle import check_may_hold_alias, model_target, record_alias_move
from keelwatch.settings import AliasGovernance
from keelwatch.storage import aliases as alias_store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.locks import lock_model

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.entities import AliasChange
    from keelwatch.entities.registry import RegisteredModelInfo
    from keelwatch.entities.signals import Signal
    from keelwatch.registry.facade import ModelRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoredAlias:
    """One alias the watcher put back (``version`` None: removed, as Keelwatch had left it)."""

    model_name: str
    alias: str
    version: str | None
    replaced: str | None


@dataclass
class WatchOutcome:
    """What one pass of the watcher did."""

    models: int = 0
    """Registered models looked at."""
    recorded: list[ExternalChange] = field(default_factory=list)
    restored: list[RestoredAlias] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)
    """Why an enforce-mode change was left in place (one line each)."""
    signals: int = 0
    errors: list[str] = field(default_factory=list)
    """Models whose pass failed (type of error only); the next pass tries again."""


def watch_aliases(
    registry: ModelRegistry,
    *,
    mode: AliasGovernance | None = None,
    aliases: Sequence[str] | None = None,
    model: str | None = None,
) -> WatchOutcome:
    """One pass over every registered model (or only ``model``); see the module docstring.

    ``mode`` and ``aliases`` default to the registry policy's ``alias_governance`` and
    ``governed()``. Each model is its own transaction: a failure on one (MLflow down, the
    model deleted meanwhile) is logged and counted, and the others are still watched.
    """
    mode = mode or registry.policy.alias_governance
    governed = tuple(aliases) if aliases is not None else registry.policy.governed()
    enforce = mode is AliasGovernance.ENFORCE
    outcome = WatchOutcome()
    models = _models(registry, model)
    outcome.models = len(models)
    if not governed or not models:
        return outcome
    with registry.db.session() as session:
        latest = alias_store.latest_alias_changes(session, governed, model_name=model)
    for info in models:
        if not any(
            _suspect(info, alias, latest.get((info.name, alias)), enforce) for alias in governed
        ):
            continue
        try:
            _reconcile_model(registry, info.name, governed, mode, outcome)
        except NotFoundError:
            continue  # deleted since the scan: nothing left to govern
        except KeelwatchError as exc:
            logger.warning("alias watch of model %r deferred to the next pass: %s", info.name, exc)
            outcome.errors.append(f"{info.name}: {type(exc).__name__}")
    return outcome


def _suspect(
    info: RegisteredModelInfo, alias: str, latest: AliasChange | None, enforce: bool
) -> bool:
    """Whether ``alias`` of ``info`` needs the locked look: MLflow disagrees with the newest
    history row, or (enforce mode) that row is external, so the alias may need putting back."""
    recorded = latest.version if latest is not None else None
    if info.aliases.get(alias) != recorded:
        return True
    return enforce and latest is not None and latest.external


def _models(registry: ModelRegistry, model: str | None) -> list[RegisteredModelInfo]:
    if model is None:
        return registry.list_models()
    try:
        return [registry.get_model(model)]
    except NotFoundError:  # a webhook for a model deleted since: nothing to govern
        return []


def _reconcile_model(
    registry: ModelRegistry,
    name: str,
    governed: Sequence[str],
    mode: AliasGovernance,
    outcome: WatchOutcome,
) -> None:
    """Record (and in enforce mode undo) the external changes of model ``name``, in one
    transaction holding the model's registry lock."""
    with registry_change(registry.db) as change:
        lock_model(change.session, name)
        # Read under the lock: a Keelwatch change committed since the scan is seen here.
        observed = registry.get_model(name).aliases
        now = utcnow()
        signals: list[Signal] = []
        for alias in governed:
            history = alias_store.alias_history(change.session, name, alias)
            assessment = assess_alias(
                name,
                alias,
                observed.get(alias),
                history,
                enforce=mode is AliasGovernance.ENFORCE,
            )
            if assessment.in_order:
                continue
            if assessment.external is not None:
                signals.append(_record_external(change.session, assessment, mode, now))
                outcome.recorded.append(assessment.external)
            if assessment.note:
                outcome.not_restored.append(assessment.note)
            if assessment.restore is not None:
                why_not = _restore(registry, change, assessment, mode, now)
                if why_not:
                    outcome.not_restored.append(why_not)
                else:
                    outcome.restored.append(
                        RestoredAlias(
                            name, alias, assessment.restore.version, assessment.restore.replaced
                        )
                    )
        if signals:
            _write_and_evaluate(change.session, signals, now)
            outcome.signals += len(signals)


def _record_external(
    session: Session, assessment: AliasAssessment, mode: AliasGovernance, now: datetime
) -> Signal:
    """History row, audit entry and signal of one external change."""
    external = assessment.external
    assert external is not None
    reason = external.describe()
    row = alias_store.record_alias_change(
        session,
        model_name=external.model_name,
        alias=external.alias,
        version=external.to_version,
        previous_version=external.from_version,
        actor=EXTERNAL_ACTOR,
        reason=reason,
        at=now,
        external=True,
    )
    record_audit(
        session,
        actor=EXTERNAL_ACTOR,
        action=EXTERNAL_ACTION,
        target=model_target(external.model_name),
        reason=reason,
        details={
            "alias": external.alias,
            "change": external.kind.value,
            "from_version": external.from_version,
            "to_version": external.to_version,
            "governance": mode.value,
        },
        at=now,
    )
    logger.warning("%s (alias governance: %s)", reason, mode.value)
    return external_change_signal(external, at=now, source=f"alias_history:{row.id}")


def _restore(
    registry: ModelRegistry,
    change: Change,
    assessment: AliasAssessment,
    mode: AliasGovernance,
    now: datetime,
) -> str:
    """Put the alias back (MLflow, history, audit); returns why it was not, or ""."""
    restore = assessment.restore
    assert restore is not None
    name, alias = assessment.model_name, assessment.alias
    if restore.version is not None:
        try:
            info = registry.get_version(name, restore.version)
            check_may_hold_alias(info, alias, registry.policy)
        except (NotFoundError, ConflictError) as exc:
            logger.warning("%s@%s not put back: %s", name, alias, exc)
            return f"{name}@{alias} not put back to v{restore.version}: {exc}"
    reason = restore.describe(name, alias, mode.value)
    move_alias(registry.client, change, name, alias, restore.version, restore.replaced)
    record_alias_move(
        change,
        name=name,
        alias=alias,
        version=restore.version,
        previous=restore.replaced,
        actor=GOVERNANCE_ACTOR,
        reason=reason,
        action=RESTORE_ACTION,
        details={"alias": alias, "version": restore.version, "replaced_version": restore.replaced},
        at=now,
    )
    logger.warning("%s", reason)
    return ""


def _write_and_evaluate(session: Session, signals: list[Signal], now: datetime) -> None:
    """The signals, and the rules watching them, in the transaction that records the changes.

    A savepoint keeps a failed evaluation from costing the record (as a drift check does): the
    signals stay, and the next alerting tick evaluates them.
    """
    from keelwatch.alerting.service import evaluate_or_defer
    from keelwatch.storage.signals import write_signals

    write_signals(session, signals)
    evaluate_or_defer(session, signals, now, what="alias")
