"""Plain values of evaluation schedules and their firings (storage converts rows into these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ScheduleKind(StrEnum):
    """What a schedule starts on each cron slot."""

    EVALUATION = "evaluation"
    """An evaluation job of the model on a registered dataset (``dataset``, ``suites``)."""
    REALIZED = "realized"
    """Realized performance over the last ``window_s`` of the prediction log."""
    AUDIT = "audit"
    """A bias audit over the last ``window_s`` of the prediction log, across ``attributes``."""


@dataclass(frozen=True)
class EvalSchedule:
    """One evaluation schedule. ``model`` is a model reference as given ('name', 'name@alias',
    'name/version'); ``armed_at``: slots at or before it never fire."""

    id: int
    name: str
    model: str
    cron: str
    kind: ScheduleKind
    dataset: str | None
    suites: tuple[str, ...]
    window_s: int | None
    enabled: bool
    armed_at: datetime
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    attributes: tuple[str, ...] = ()
    """The sensitive attributes a bias audit (kind ``audit``) slices by; empty otherwise."""


@dataclass(frozen=True)
class ScheduleFiring:
    """One firing of a schedule for one cron slot: the job (or task) it submitted, or why not."""

    id: int
    schedule_id: int
    slot: datetime
    fired_at: datetime
    fired_by: str
    job_id: str | None
    error: str | None
