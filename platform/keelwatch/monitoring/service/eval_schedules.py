"""Evaluation schedules: CRUD (audited) and beat's dispatch of the slots that are due.

A schedule fires on the minutes its cron expression (UTC, see
:mod:`keelwatch.monitoring.service.schedule`) names. Kind ``evaluation`` submits an evaluation
job of ``model`` on ``dataset`` (trigger ``schedule``); kind ``realized`` sends the realized-
performance task (``EVALUATION_REALIZED``) for the last ``window_s`` seconds of the prediction log;
kind ``audit`` sends the bias-audit task (``BIAS_AUDIT_RUN``) for that window and the schedule's
sensitive ``attributes``.

Beat reads the table on every tick (``evaluation.dispatch_interval_s``), so a schedule set,
edited or deleted through the API or the CLI takes effect without restarting anything.

At most one firing per schedule and slot, however many beat processes tick: a tick computes
the latest slot at or before now and, when it is newer than the schedule's ``armed_at`` and
than its newest firing, INSERTs the firing row (UNIQUE (schedule_id, slot)) and COMMITs before
it submits anything. The beat whose insert fails (IntegrityError) lost the race and skips.
The job id (or task id, or the error) is then written on the firing row. The price of "at most
once": a beat that dies between its commit and its submission leaves that slot unsubmitted (its
firing row shows neither job nor error).

Missed slots are not back-filled: after a pause (beat down, schedule disabled) only the latest
slot at or before now fires, once; the older ones are skipped. Editing the cron or enabling a
schedule again re-arms it, so a slot already past at that moment does not fire.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from keelwatch.contract import BIAS_AUDIT_RUN, EVALUATION_REALIZED, QUEUE_MONITORING
from keelwatch.entities.eval_schedules import EvalSchedule, ScheduleFiring, ScheduleKind
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError, KeelwatchError, NotFoundError
from keelwatch.monitoring.service.schedule import parse_cron, previous_fire_time
from keelwatch.registry.refs import parse_model_ref
from keelwatch.storage import eval_schedules as store
from keelwatch.storage.audit import record_audit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.contract import TaskSender
    from keelwatch.registry import ModelRegistry
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SUITE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Longest realized-performance window a schedule may ask for (a year).
MAX_WINDOW_S = 366 * 86_400
#: Bounds of an audit schedule's attributes (``monitoring.service.bias_audits`` enforces the
#: same when the task runs).
MAX_AUDIT_ATTRIBUTES = 8
MAX_ATTRIBUTE_NAME = 64


def schedule_target(name: str) -> str:
    """Audit-log target of an evaluation schedule."""
    return f"eval_schedule:{name}"


def model_name_of(schedule: EvalSchedule) -> str:
    """The registered model a schedule evaluates (its reference without alias or version)."""
    return parse_model_ref(schedule.model, default_alias="champion").name


def set_schedule(
    session: Session,
    *,
    name: str,
    model: str,
    cron: str,
    kind: ScheduleKind | str,
    actor: str,
    dataset: str | None = None,
    suites: Sequence[str] = (),
    window_s: int | None = None,
    enabled: bool = True,
    reason: str = "",
    now: datetime | None = None,
    attributes: Sequence[str] = (),
) -> EvalSchedule:
    """Create schedule ``name`` or replace its fields (audited ``evaluation.schedule.set``).

    ``evaluation`` needs ``dataset`` (and takes ``suites``, empty: the dataset task's
    defaults); ``realized`` needs ``window_s`` and takes neither; ``audit`` needs ``window_s``
    and at least one sensitive attribute in ``attributes`` (only ``audit`` takes attributes).
    InvalidInputError says which field is wrong; nothing is written then.
    """
    actor = _actor(actor)
    now = now or utcnow()
    name, fields = _validated(name, model, cron, kind, dataset, suites, window_s, attributes)
    fields["enabled"] = enabled
    if fields["kind"] == ScheduleKind.EVALUATION.value:
        _check_dataset(session, str(fields["dataset"]), suites)
    existing = store.find_schedule(session, name)
    if existing is None:
        schedule = store.insert_schedule(session, actor=actor, now=now, name=name, **fields)
        created = True
    else:
        # A new cron or a re-enabled schedule starts afresh: a slot already past never fires.
        rearm = existing.cron != fields["cron"] or (enabled and not existing.enabled)
        schedule = store.update_schedule(session, name, actor=actor, now=now, rearm=rearm, **fields)
        created = False
    record_audit(
        session,
        actor=actor,
        action="evaluation.schedule.set",
        target=schedule_target(schedule.name),
        reason=reason,
        details={
            "created": created,
            "model": schedule.model,
            "cron": schedule.cron,
            "kind": schedule.kind.value,
            "dataset": schedule.dataset,
            "suites": list(schedule.suites),
            "window_s": schedule.window_s,
            "attributes": list(schedule.attributes),
            "enabled": schedule.enabled,
        },
        at=now,
    )
    return schedule


def get_schedule(session: Session, name: str) -> EvalSchedule:
    """Schedule ``name``; NotFoundError when there is none."""
    schedule = store.find_schedule(session, name)
    if schedule is None:
        raise NotFoundError(f"evaluation schedule {name!r} not found")
    return schedule


def list_schedules(session: Session) -> list[EvalSchedule]:
    """Every evaluation schedule, by name."""
    return store.list_schedules(session)


def delete_schedule(session: Session, name: str, *, actor: str, reason: str = "") -> EvalSchedule:
    """Delete schedule ``name`` and its firings (audited ``evaluation.schedule.delete``)."""
    actor = _actor(actor)
    schedule = get_schedule(session, name)
    store.delete_schedule(session, schedule.id)
    record_audit(
        session,
        actor=actor,
        action="evaluation.schedule.delete",
        target=schedule_target(name),
        reason=reason,
        details={"model": schedule.model, "cron": schedule.cron, "kind": schedule.kind.value},
    )
    return schedule


def list_firings(
    session: Session, name: str | None = None, *, limit: int = 100
) -> list[ScheduleFiring]:
    """Recent firings, newest slot first (of schedule ``name`` only when given)."""
    ids = [get_schedule(session, name).id] if name is not None else None
    return store.list_firings(session, schedule_ids=ids, limit=limit)


# ----------------------------------------------------------------------------- dispatch


def due_slot(schedule: EvalSchedule, now: datetime, last_slot: datetime | None) -> datetime | None:
    """The slot ``schedule`` should fire now, or None: the latest cron minute at or before
    ``now`` when it is after ``armed_at`` and after the newest slot already fired."""
    if not schedule.enabled:
        return None
    slot = previous_fire_time(parse_cron(schedule.cron), now)
    if slot is None or slot <= schedule.armed_at:
        return None
    if last_slot is not None and slot <= last_slot:
        return None
    return slot


@dataclass
class ScheduleDispatchOutcome:
    """What one beat tick did."""

    fired: dict[str, str] = field(default_factory=dict)
    """Schedule name → the job id (evaluation) or task id (realized) it submitted."""
    lost: list[str] = field(default_factory=list)
    """Schedules whose due slot another beat claimed first."""
    failed: dict[str, str] = field(default_factory=dict)
    """Schedule name → why its claimed slot could not be submitted (also on the firing row)."""


def dispatch_due_schedules(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    *,
    actor: str = "beat",
    now: datetime | None = None,
) -> ScheduleDispatchOutcome:
    """Fire every schedule with a due slot: claim (commit), then submit; see the module
    docstring. One schedule that cannot run does not hold back the others."""
    now = now or utcnow()
    outcome = ScheduleDispatchOutcome()
    with db.session() as session:
        schedules = store.list_schedules(session, enabled=True)
        fired = store.latest_slots(session)
    for schedule in schedules:
        try:
            slot = due_slot(schedule, now, fired.get(schedule.id))
        except InvalidInputError as exc:  # a cron stored before a parser change
            outcome.failed[schedule.name] = str(exc)
            continue
        if slot is None:
            continue
        firing_id = _claim(db, schedule, slot, actor, now)
        if firing_id is None:
            outcome.lost.append(schedule.name)
            continue
        job_id, error = _submit(db, sender, registry, schedule, slot, actor)
        with db.session() as session:
            store.record_firing_outcome(session, firing_id, job_id=job_id, error=error)
        if error is not None:
            logger.warning("evaluation schedule %r, slot %s: %s", schedule.name, slot, error)
            outcome.failed[schedule.name] = error
        else:
            assert job_id is not None
            outcome.fired[schedule.name] = job_id
    return outcome


def _claim(
    db: Database, schedule: EvalSchedule, slot: datetime, actor: str, now: datetime
) -> int | None:
    """Insert and commit the firing row of ``slot``; None when another beat holds it (or the
    schedule was deleted meanwhile)."""
    try:
        with db.session() as session:
            return store.insert_firing(
                session, schedule_id=schedule.id, slot=slot, actor=actor, now=now
            )
    except IntegrityError:
        return None


def _submit(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    schedule: EvalSchedule,
    slot: datetime,
    actor: str,
) -> tuple[str | None, str | None]:
    """Submit the work of one claimed slot: (job or task id, None) or (None, error)."""
    reason = f"evaluation schedule {schedule.name}, slot {slot.isoformat()}"
    try:
        if schedule.kind is ScheduleKind.EVALUATION:
            from keelwatch.monitoring.service.evaluations import submit_evaluation

            assert schedule.dataset is not None
            job = submit_evaluation(
                db,
                sender,
                registry,
                model_ref=schedule.model,
                dataset=schedule.dataset,
                suites=list(schedule.suites) or None,
                actor=actor,
                trigger="schedule",
                reason=reason,
            )
            return job.id, None
        if schedule.kind is ScheduleKind.AUDIT:
            audit = sender.send_task(
                BIAS_AUDIT_RUN,
                kwargs={
                    "model": model_name_of(schedule),
                    "attributes": list(schedule.attributes),
                    "window_s": schedule.window_s,
                    "schedule_id": schedule.id,
                    "slot": slot.isoformat(),
                },
                queue=QUEUE_MONITORING,
                ignore_result=True,  # the bias_audits rows are the result
            )
            return str(audit.id), None
        result = sender.send_task(
            EVALUATION_REALIZED,
            kwargs={
                "model": model_name_of(schedule),
                "window_s": schedule.window_s,
                "schedule_id": schedule.id,
                "slot": slot.isoformat(),
            },
            queue=QUEUE_MONITORING,
            ignore_result=True,  # the realized-performance rows are the result
        )
        return str(result.id), None
    except KeelwatchError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - the broker or MLflow: the type only (texts may name hosts)
        return None, f"could not submit: {type(exc).__name__}"


# ----------------------------------------------------------------------------- validation


def _validated(
    name: str,
    model: str,
    cron: str,
    kind: ScheduleKind | str,
    dataset: str | None,
    suites: Sequence[str],
    window_s: int | None,
    attributes: Sequence[str] = (),
) -> tuple[str, dict[str, object]]:
    """The schedule's name and its other columns, checked and normalised."""
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidInputError(
            f"invalid schedule name {name[:40]!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    model = model.strip()
    parse_model_ref(model, default_alias="champion")  # InvalidInputError naming what is wrong
    cron = " ".join(cron.split())
    parse_cron(cron)
    try:
        kind = ScheduleKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in ScheduleKind)
        raise InvalidInputError(
            f"invalid schedule kind {kind!r}: expected one of {choices}"
        ) from None
    suites = tuple(dict.fromkeys(suite.strip() for suite in suites))
    bad = [suite for suite in suites if not _SUITE.match(suite)]
    if bad:
        raise InvalidInputError(f"invalid suite name {bad[0][:40]!r}")
    dataset = dataset.strip() if dataset is not None and dataset.strip() else None
    names = _attributes(attributes)
    if names and kind is not ScheduleKind.AUDIT:
        raise InvalidInputError("attributes are for audit schedules only")
    if kind is ScheduleKind.EVALUATION:
        if dataset is None:
            raise InvalidInputError("an evaluation schedule needs a dataset")
        if window_s is not None:
            raise InvalidInputError("window is for realized schedules; evaluations use a dataset")
    else:
        what = "an audit" if kind is ScheduleKind.AUDIT else "a realized"
        if dataset is not None or suites:
            raise InvalidInputError(f"{what} schedule takes a window, not a dataset or suites")
        if window_s is None or not 0 < window_s <= MAX_WINDOW_S:
            raise InvalidInputError(
                f"{what} schedule needs a window between 1 s and {MAX_WINDOW_S} s"
            )
        if kind is ScheduleKind.AUDIT and not names:
            raise InvalidInputError("an audit schedule needs at least one sensitive attribute")
    return name, {
        "model": model,
        "cron": cron,
        "kind": kind.value,
        "dataset": dataset,
        "suites": list(suites),
        "window_s": window_s,
        "attributes": list(names) if kind is ScheduleKind.AUDIT else None,
    }


def _attributes(attributes: Sequence[str]) -> tuple[str, ...]:
    """Distinct, stripped attribute names (InvalidInputError on an empty or too long one)."""
    if isinstance(attributes, str):
        raise InvalidInputError("attributes must be a list of names, not one string")
    names = tuple(dict.fromkeys(name.strip() for name in attributes))
    if any(not name for name in names):
        raise InvalidInputError("attribute names must not be empty")
    if any(len(name) > MAX_ATTRIBUTE_NAME for name in names):
        raise InvalidInputError(f"attribute names are at most {MAX_ATTRIBUTE_NAME} characters")
    if len(names) > MAX_AUDIT_ATTRIBUTES:
        raise InvalidInputError(
            f"an audit schedule takes at most {MAX_AUDIT_ATTRIBUTES} attributes"
        )
    return names


def _check_dataset(session: Session, dataset: str, suites: Sequence[str]) -> None:
    """The dataset is registered and the suites fit its task (NotFoundError, InvalidInputError)."""
    from keelwatch.monitoring.evaluation.suites import check_suites
    from keelwatch.monitoring.service.evaluations import get_dataset, parse_dataset_ref

    name, version = parse_dataset_ref(dataset)
    check_suites(get_dataset(session, name, version).task, list(suites) or None)


def _actor(actor: str) -> str:
    if not actor or not actor.strip():
        raise InvalidInputError("actor must not be empty")
    return actor.strip()
