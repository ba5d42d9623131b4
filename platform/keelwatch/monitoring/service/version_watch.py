"""The new-version trigger: a model version registered by anyone (Keelwatch, the MLflow UI, a
script with ``MlflowClient``) starts the gate, or an evaluation, once.

:func:`watch_versions` is what the task ``keelwatch.registry.watch_versions`` wraps: beat sends
it every ``registry.watch_interval_s``, and the MLflow webhook route sends it for one model on
``model_version.created``. It lives beside the evaluation services rather than in
``keelwatch.registry`` because what it starts (gate checks, evaluations) is theirs; the
registry stays below monitoring.

One pass: every registered model's latest version comes from one paged MLflow search and is
compared with the highest version the watcher has seen (``model_version_watermarks``).

* **First sight** of a model records its current latest version and triggers nothing, so
  installing Keelwatch on a registry with a hundred models starts no storm of jobs.
* **Newer versions** are claimed by moving the watermark with a conditional UPDATE (from the
  value read to the latest) and committing; a watcher whose update matches no row lost the
  race to another (a second beat, the webhook) and does nothing. The winner then triggers each
  version in between, oldest first: when the model has a gate policy, a gate check with that
  version as challenger (trigger ``new_version``); else, when an enabled evaluation schedule
  of the model names a dataset, an evaluation of that version on it; else nothing.

At most once per version: a watcher that dies between its commit and its submissions leaves
those versions untriggered (the log says which failed to submit); they can be run by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from keelwatch.entities.eval_schedules import EvalSchedule, ScheduleKind
from keelwatch.entities.time import utcnow
from keelwatch.errors import KeelwatchError, NotFoundError
from keelwatch.monitoring.service.eval_schedules import model_name_of
from keelwatch.storage import eval_schedules as store

if TYPE_CHECKING:
    from keelwatch.contract import TaskSender
    from keelwatch.entities.registry import RegisteredModelInfo
    from keelwatch.registry import ModelRegistry
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

#: The actor of the jobs the watcher starts (audit entries, ``submitted_by``).
WATCHER_ACTOR = "registry:version-watch"


@dataclass(frozen=True)
class VersionTrigger:
    """What one new version started: ``kind`` ``gate_check`` or ``evaluation`` and its job, or
    ``kind`` ``none`` (no gate policy, no schedule with a dataset), or ``error``."""

    model: str
    version: str
    kind: str
    job_id: str | None = None
    error: str | None = None


@dataclass
class VersionWatchOutcome:
    """What one pass of the watcher did."""

    models: int = 0
    first_seen: list[str] = field(default_factory=list)
    """Models seen for the first time (their current versions trigger nothing)."""
    triggered: list[VersionTrigger] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Models whose pass failed (type of error only); the next pass tries again."""


def watch_versions(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    *,
    model: str | None = None,
    actor: str = WATCHER_ACTOR,
) -> VersionWatchOutcome:
    """One pass over every registered model (or only ``model``); see the module docstring."""
    outcome = VersionWatchOutcome()
    models = _models(registry, model)
    outcome.models = len(models)
    with db.session() as session:
        seen = store.version_watermarks(session)
    for info in models:
        if info.latest_version is None:
            continue
        latest = int(info.latest_version)
        try:
            if info.name not in seen:
                _first_sight(db, info.name, latest)
                outcome.first_seen.append(info.name)
                continue
            if latest <= seen[info.name] or not _claim(db, info.name, seen[info.name], latest):
                continue
        except KeelwatchError as exc:
            outcome.errors.append(f"{info.name}: {type(exc).__name__}")
            continue
        for number in range(seen[info.name] + 1, latest + 1):
            trigger = _trigger(db, sender, registry, info.name, str(number), actor)
            if trigger.error is not None:
                logger.warning(
                    "new version %s/%s: %s", trigger.model, trigger.version, trigger.error
                )
            outcome.triggered.append(trigger)
    return outcome


def _models(registry: ModelRegistry, model: str | None) -> list[RegisteredModelInfo]:
    if model is None:
        return registry.list_models()
    try:
        return [registry.get_model(model)]
    except NotFoundError:  # a webhook for a model deleted since
        return []


def _first_sight(db: Database, name: str, latest: int) -> None:
    try:
        with db.session() as session:
            store.insert_watermark(session, name, latest, utcnow())
    except IntegrityError:
        pass  # another watcher saw it first: same outcome


def _claim(db: Database, name: str, seen: int, latest: int) -> bool:
    with db.session() as session:
        return store.advance_watermark(session, name, seen=seen, to=latest, now=utcnow())


def _schedule_with_dataset(db: Database, name: str) -> EvalSchedule | None:
    with db.session() as session:
        schedules = store.list_schedules(session, enabled=True)
    for schedule in schedules:
        if (
            schedule.kind is ScheduleKind.EVALUATION
            and schedule.dataset
            and model_name_of(schedule) == name
        ):
            return schedule
    return None


def _has_gate_policy(db: Database, name: str) -> bool:
    from keelwatch.monitoring.service.gate import find_policy

    with db.session() as session:
        return find_policy(session, name) is not None


def _trigger(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    name: str,
    version: str,
    actor: str,
) -> VersionTrigger:
    """Start the gate or an evaluation for one new version (see the module docstring)."""
    reason = f"new version {name}/{version} registered"
    kind = "none"
    try:
        if _has_gate_policy(db, name):
            from keelwatch.monitoring.service.gate import submit_gate_check

            kind = "gate_check"
            job = submit_gate_check(
                db,
                sender,
                registry,
                model=name,
                challenger=version,
                actor=actor,
                trigger="new_version",
                reason=reason,
            )
            return VersionTrigger(name, version, kind, job_id=job.id)
        schedule = _schedule_with_dataset(db, name)
        if schedule is None:
            return VersionTrigger(name, version, kind)
        from keelwatch.monitoring.service.evaluations import submit_evaluation

        kind = "evaluation"
        assert schedule.dataset is not None
        job = submit_evaluation(
            db,
            sender,
            registry,
            model_ref=f"{name}/{version}",
            dataset=schedule.dataset,
            suites=list(schedule.suites) or None,
            actor=actor,
            trigger="new_version",
            reason=f"{reason} (dataset of schedule {schedule.name})",
        )
        return VersionTrigger(name, version, kind, job_id=job.id)
    except KeelwatchError as exc:
        return VersionTrigger(name, version, kind, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the broker or MLflow: the type only (texts may name hosts)
        return VersionTrigger(name, version, kind, error=f"could not submit: {type(exc).__name__}")
