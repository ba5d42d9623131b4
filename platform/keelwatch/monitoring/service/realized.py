"""Realized performance on the platform: one model's prediction-log window joined with its
labels, scored per version, stored for history and written as ``realized.*`` signals, in the
caller's transaction.

What the worker task ``EVALUATION_REALIZED`` and ``POST /evaluations/realized`` call. The
caller commits, then calls ``alerting.service.after_commit_dispatch`` (rules are evaluated on
the new signals here, in the same transaction, like the ops tick).

The window is ``[window_end - window_s, window_end)``; ``window_end`` is the schedule's slot
(or now for a run on demand). Every version that logged predictions in the window gets a
result, and so does the champion when it logged none (coverage 0: a rule on the champion's
coverage sees the silence). Idempotent per (model, version, window, window end): a rerun of a
slot finds the stored rows and writes no result and no signal again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keelwatch.alerting.service import evaluate_or_defer
from keelwatch.alerting.signals import register_signal_names
from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.monitoring.evaluation.realized import (
    SIGNAL_NAMES,
    LabelledOutput,
    RealizedTask,
    realized_performance,
    realized_signals,
)
from keelwatch.storage import ops as ops_store
from keelwatch.storage import realized as store
from keelwatch.storage import signals as signal_store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.realized import RealizedRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.registry import ModelRegistry

logger = logging.getLogger(__name__)

# Importing this module makes rules on realized.* valid (the API and the CLI import it).
register_signal_names(SIGNAL_NAMES)

AUDIT_ACTION = "evaluation.realized"
#: Longest window a realized computation accepts (a year): the join reads the whole window.
MAX_WINDOW_S = 366 * 86400


@dataclass(frozen=True)
class Champion:
    """The version the champion alias pointed to when the computation started."""

    alias: str
    version: str


@dataclass(frozen=True)
class RealizedOutcome:
    """What one computation did."""

    model: str
    window_s: int
    window_end: datetime
    results: list[RealizedRecord]
    signals_written: int
    transitions: list[tuple[str, str | None, str]] = field(default_factory=list)
    """(fingerprint, from state, to state) of the alerts the new signals changed."""


def champion_of(registry: ModelRegistry, model: str) -> Champion | None:
    """The model's current champion, or None when it has none (or is not registered: its
    logged predictions still get results, without the alias label)."""
    alias = registry.policy.champion_alias
    try:
        resolved = registry.resolve(f"{model}@{alias}")
    except NotFoundError:
        return None
    return Champion(alias=alias, version=resolved.version)


def compute_realized(
    session: Session,
    *,
    model: str,
    window_s: int,
    window_end: datetime,
    champion: Champion | None,
    min_coverage: float,
    min_rows: int,
    actor: str,
    task: RealizedTask | None = None,
    schedule_id: int | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> RealizedOutcome:
    """Score every version of ``model`` over ``[window_end - window_s, window_end)``, store the
    results, write their signals and evaluate the rules on them; audited once per run that
    wrote something. See the module docstring for idempotency."""
    if not model:
        raise InvalidInputError("model must be a non-empty name")
    if window_end.tzinfo is None:
        raise InvalidInputError("window_end must be timezone-aware")
    if not 0 < window_s <= MAX_WINDOW_S:
        raise InvalidInputError(f"window must be 1 to {MAX_WINDOW_S} seconds, got {window_s}")
    computed_at = now or window_end
    start = window_end - timedelta(seconds=window_s)
    ops_store.lock_tick(session, _lock_key(model, window_s, window_end))
    counts = store.predictions_per_version(session, model, start, window_end)
    if champion is not None:
        counts.setdefault(champion.version, 0)
    results: list[RealizedRecord] = []
    written: list[Signal] = []
    for version in sorted(counts, key=_version_order):
        existing = store.find_result(session, model, version, window_s, window_end)
        if existing is not None:
            results.append(_mark_existing(existing))
            continue
        labelled = [
            LabelledOutput(outputs, label)
            for outputs, label in store.labelled_outputs(session, model, version, start, window_end)
        ]
        performance = realized_performance(
            counts[version], labelled, task=task, min_coverage=min_coverage, min_rows=min_rows
        )
        alias = champion.alias if champion is not None and champion.version == version else None
        record = store.insert_result(
            session,
            model_name=model,
            model_version=version,
            window_s=window_s,
            window_end=window_end,
            alias=alias,
            task=performance.task,
            predictions=performance.predictions,
            labelled=performance.labelled,
            coverage=performance.coverage,
            verdict=performance.verdict,
            metrics=performance.metrics,
            reason=performance.reason,
            schedule_id=schedule_id,
            computed_at=computed_at,
            computed_by=actor,
        )
        results.append(record)
        written.extend(
            realized_signals(
                performance,
                model=model,
                version=version,
                window_s=window_s,
                observed_at=window_end,
                source=f"realized_result:{record.id}",
                alias=alias,
            )
        )
    signal_store.write_signals(session, written)
    if written:
        record_audit(
            session,
            actor=actor,
            action=AUDIT_ACTION,
            target=f"model:{model}"[:255],
            reason=reason,
            details={
                "window_s": window_s,
                "window_end": window_end.isoformat(),
                "schedule_id": schedule_id,
                "results": {r.model_version: r.verdict for r in results},
            },
            at=computed_at,
        )
    outcome = evaluate_or_defer(session, written, computed_at, what="realized")
    return RealizedOutcome(
        model=model,
        window_s=window_s,
        window_end=window_end,
        results=results,
        signals_written=len(written),
        transitions=[
            (t.fingerprint, t.from_state.value if t.from_state else None, t.to_state.value)
            for t in (outcome.transitions if outcome is not None else [])
        ],
    )


def list_realized(
    session: Session,
    *,
    model: str | None = None,
    version: str | None = None,
    window_s: int | None = None,
    limit: int = 100,
) -> list[RealizedRecord]:
    """Stored results, newest window first."""
    return store.list_results(
        session, model_name=model, model_version=version, window_s=window_s, limit=limit
    )


def _mark_existing(record: RealizedRecord) -> RealizedRecord:
    return replace(record, already_recorded=True)


def _version_order(version: str) -> tuple[int, str]:
    """Numeric versions in number order (MLflow's are), anything else after them by name."""
    return (int(version), "") if version.isdigit() else (2**63, version)


def _lock_key(model: str, window_s: int, window_end: datetime) -> int:
    """A signed 64-bit advisory-lock key for one model's slot (two runs of it serialise)."""
    text = f"realized:{model}:{window_s}:{window_end.isoformat()}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
