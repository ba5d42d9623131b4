"""Lifecycle rules the registry façade applies: which approval changes are allowed, and what
one alias move writes (history row and audit entry, with one timestamp)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keelwatch.entities.registry import ApprovalState, ModelVersionInfo
from keelwatch.errors import ConflictError
from keelwatch.registry._mlflow import Change
from keelwatch.registry.refs import MODELS_URI_SCHEME
from keelwatch.settings import RegistrySettings
from keelwatch.storage import aliases as alias_store
from keelwatch.storage.audit import record_audit


def model_target(name: str) -> str:
    """Audit-log target for everything that happens to registered model ``name``."""
    return f"{MODELS_URI_SCHEME}{name}"


#: Audit action verb (``model.<verb>``) per approval state a version is moved to.
APPROVAL_VERBS = {
    ApprovalState.APPROVED: "approve",
    ApprovalState.REJECTED: "reject",
    ApprovalState.PENDING: "reopen",
}


def check_approval_change(info: ModelVersionInfo, state: ApprovalState) -> None:
    """Rejection is final until an explicit re-open; only a rejected version is re-opened."""
    label = f"model {info.name!r} version {info.version}"
    if state == ApprovalState.APPROVED and info.approval == ApprovalState.REJECTED:
        raise ConflictError(
            f"{label} was rejected; re-open it first "
            f"(keelwatch models reopen {info.name} {info.version} --reason ...)"
        )
    if state == ApprovalState.PENDING and info.approval != ApprovalState.REJECTED:
        raise ConflictError(
            f"{label} is {info.approval.value}; only a rejected version is re-opened"
        )


def check_may_hold_alias(info: ModelVersionInfo, alias: str, policy: RegistrySettings) -> None:
    """A rejected version gets no alias; the champion needs approval when the policy says so."""
    label = f"model {info.name!r} version {info.version}"
    if info.approval == ApprovalState.REJECTED:
        raise ConflictError(f"{label} was rejected; it cannot get the alias {alias!r}")
    if (
        alias == policy.champion_alias
        and policy.require_approval
        and info.approval != ApprovalState.APPROVED
    ):
        raise ConflictError(
            f"{label} is {info.approval.value}, not approved; approve it before making it "
            f"{alias!r} (policy registry.require_approval is on)"
        )


def record_alias_move(
    change: Change,
    *,
    name: str,
    alias: str,
    version: str | None,
    previous: str | None,
    actor: str,
    reason: str,
    action: str,
    details: dict[str, Any],
    at: datetime,
) -> None:
    """Alias history row and audit entry for one alias move, with the same timestamp."""
    alias_store.record_alias_change(
        change.session,
        model_name=name,
        alias=alias,
        version=version,
        previous_version=previous,
        actor=actor,
        reason=reason,
        at=at,
    )
    record_audit(
        change.session,
        actor=actor,
        action=action,
        target=model_target(name),
        reason=reason,
        details=details,
        at=at,
    )
