"""Guards: whether a policy may act now on a model, from the history of executions. Pure.

The decision, in order:

1. ``dry_run`` mode: skip, recording what would have been done.
2. cooldown: an action of the same kind on the same model (by any policy) began less than
   ``cooldown`` ago: skip.
3. ``max_actions`` per ``window``: the policy already acted that often in the window: skip.
4. ``max_consecutive``: the last N actions on the model were all automatic (a person approving
   one resets the count): wait for a person.
5. ``manual`` mode: wait for approval; otherwise allow.

Only executions that act or acted count (pending, running, succeeded, failed); skipped,
rejected and awaiting ones do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from keelwatch.alerting.rules import format_duration
from keelwatch.entities.actions import ActionExecution, Policy, PolicyMode

__all__ = ["Decision", "Verdict", "decide"]


class Verdict(StrEnum):
    """The guards' answer."""

    ALLOW = "allow"
    WAIT_FOR_APPROVAL = "wait_for_approval"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict and the reason recorded with the execution."""

    verdict: Verdict
    reason: str


def decide(
    policy: Policy, model: str, history: Iterable[ActionExecution], now: datetime
) -> Decision:
    """Decide whether ``policy`` may act on ``model`` at ``now`` given earlier executions.

    ``history`` may hold executions of any policy on any model; only the relevant ones count.
    """
    action = policy.action.value
    if policy.mode is PolicyMode.DRY_RUN:
        return Decision(Verdict.SKIP, f"dry run: would {action} model {model!r}")
    counted = [e for e in history if e.status.acted]
    guards = policy.guards
    same_kind = [e for e in counted if e.model == model and e.action == policy.action]
    if guards.cooldown and same_kind:
        last = max(e.created_at for e in same_kind)
        if now - last < guards.cooldown:
            return Decision(
                Verdict.SKIP,
                f"cooldown: a {action} of model {model!r} began at {last.isoformat()}, less "
                f"than {format_duration(guards.cooldown)} ago",
            )
    if guards.max_actions is not None:
        in_window = [
            e for e in counted if e.policy == policy.name and now - e.created_at < guards.window
        ]
        if len(in_window) >= guards.max_actions:
            return Decision(
                Verdict.SKIP,
                f"max_actions: policy {policy.name!r} acted {len(in_window)} times in the last "
                f"{format_duration(guards.window)} (limit {guards.max_actions})",
            )
    if guards.max_consecutive is not None and policy.mode is PolicyMode.AUTO:
        on_model = sorted((e for e in counted if e.model == model), key=lambda e: e.created_at)
        streak = 0
        for execution in reversed(on_model):
            if not execution.automatic:
                break
            streak += 1
        if streak >= guards.max_consecutive:
            return Decision(
                Verdict.WAIT_FOR_APPROVAL,
                f"max_consecutive: {streak} automatic actions in a row on model {model!r} "
                f"(limit {guards.max_consecutive}); waiting for a person to approve",
            )
    if policy.mode is PolicyMode.MANUAL:
        return Decision(Verdict.WAIT_FOR_APPROVAL, "manual mode: waiting for an operator")
    return Decision(Verdict.ALLOW, f"policy {policy.name!r} matched; guards passed")
