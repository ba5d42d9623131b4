"""Plain values the registry façade returns (no MLflow objects leak past ``facade.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ApprovalState(StrEnum):
    """Review state of a model version, stored as the MLflow version tag ``keelwatch.approval``.

    New versions start ``pending``; versions registered outside Keelwatch (no tag) count as
    pending too.
    """

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


# MLflow model-version tags Keelwatch writes; the MLflow UI shows them on the version page.
TAG_APPROVAL = "keelwatch.approval"
TAG_APPROVAL_ACTOR = "keelwatch.approval.actor"
TAG_APPROVAL_REASON = "keelwatch.approval.reason"
TAG_APPROVAL_AT = "keelwatch.approval.at"
TAG_ROLLED_BACK = "keelwatch.rolled_back"
TAG_ROLLED_BACK_ACTOR = "keelwatch.rolled_back.actor"
TAG_ROLLED_BACK_REASON = "keelwatch.rolled_back.reason"
TAG_ROLLED_BACK_AT = "keelwatch.rolled_back.at"
TAG_REGISTERED_BY = "keelwatch.registered_by"
TAG_REGISTERED_REASON = "keelwatch.registered_reason"


@dataclass(frozen=True)
class ResolvedModel:
    """A reference resolved to one registered version.

    ``model_uri`` always pins the version (``models:/name/3``), never an alias, so a worker
    loads exactly what was resolved even if the alias moves meanwhile.
    """

    name: str
    version: str
    model_uri: str


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version with Keelwatch's review state."""

    name: str
    version: str
    source: str
    run_id: str | None
    created_at: datetime
    approval: ApprovalState
    approval_actor: str | None
    approval_reason: str | None
    aliases: tuple[str, ...]
    rolled_back: bool
    description: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        """``models:/name/version``: the pinned URI to load this version."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class RegisteredModelInfo:
    """A registered model: its aliases and how many versions it has."""

    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    latest_version: str | None
    aliases: dict[str, str]
