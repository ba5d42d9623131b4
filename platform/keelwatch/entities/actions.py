"""Action values: policies (what to do when an alert fires) and their executions.

Plain frozen dataclasses: ``keelwatch.actions`` parses policies and decides with guards,
``storage.actions`` turns rows into these, the CLI renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from keelwatch.entities.alerts import Matcher

#: Actor prefix of every automatic decision: ``policy:<name>``.
POLICY_ACTOR_PREFIX = "policy:"


class ActionKind(StrEnum):
    """What a policy does to the alert's model."""

    ROLLBACK = "rollback"
    RETRAIN = "retrain"
    PROMOTE = "promote"
    NOTIFY = "notify"


class PolicyMode(StrEnum):
    """``auto`` acts, ``manual`` waits for an operator's approval, ``dry_run`` only records."""

    AUTO = "auto"
    MANUAL = "manual"
    DRY_RUN = "dry_run"


@dataclass(frozen=True, slots=True)
class Guards:
    """Limits on automatic actions.

    ``cooldown``: no second action of the same kind on the same model within this time.
    ``max_actions`` per ``window``: at most this many executions of the policy in the window
    (None: no limit). ``max_consecutive``: after this many automatic actions in a row on one
    model, the next waits for a person (an approved action resets the count; None: no cap).
    """

    cooldown: timedelta = timedelta(minutes=30)
    max_actions: int | None = None
    window: timedelta = timedelta(hours=24)
    max_consecutive: int | None = 3


@dataclass(frozen=True, slots=True)
class Policy:
    """Alerts matching every matcher trigger ``action`` on the alert's ``model`` label."""

    name: str
    action: ActionKind
    matchers: tuple[Matcher, ...] = ()
    mode: PolicyMode = PolicyMode.AUTO
    guards: Guards = field(default_factory=Guards)
    params: Mapping[str, str] = field(default_factory=dict)


class ExecutionStatus(StrEnum):
    """Where one execution is. ``pending`` → ``running`` → ``succeeded``/``failed``; manual
    policies start ``awaiting_approval`` (→ ``pending`` or ``rejected``); guards and dry runs
    record ``skipped`` with the reason."""

    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"

    @property
    def acted(self) -> bool:
        """True for executions that act or acted (they count against the guards)."""
        return self in (
            ExecutionStatus.PENDING,
            ExecutionStatus.RUNNING,
            ExecutionStatus.SUCCEEDED,
            ExecutionStatus.FAILED,
        )


@dataclass(frozen=True, slots=True)
class ActionExecution:
    """One execution of a policy for one firing episode of one alert (unique together)."""

    id: int
    policy: str
    action: ActionKind
    model: str
    alert_fingerprint: str
    episode: int
    status: ExecutionStatus
    reason: str
    created_at: datetime
    decided_by: str
    alert_labels: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    result: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: The delivery (Celery task id) running it; only that one resumes it after a crash.
    claimed_by: str | None = None

    @property
    def automatic(self) -> bool:
        """Whether a policy (not a person) decided that it runs."""
        return self.decided_by.startswith(POLICY_ACTOR_PREFIX)
