"""Pydantic shapes of registry data on the wire (API bodies, ``--json`` CLI output)."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keelwatch.entities import AliasChange
from keelwatch.entities.registry import (
    ApprovalState,
    ModelVersionInfo,
    RegisteredModelInfo,
    ResolvedModel,
)


class RegisteredModelOut(BaseModel):
    """A registered model and its aliases."""

    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    latest_version: str | None
    aliases: dict[str, str]

    @classmethod
    def of(cls, info: RegisteredModelInfo) -> RegisteredModelOut:
        """From the façade's value."""
        return cls.model_validate(info, from_attributes=True)


class ModelVersionOut(BaseModel):
    """One model version with its review state."""

    name: str
    version: str
    model_uri: str
    source: str
    run_id: str | None
    created_at: datetime
    approval: ApprovalState
    approval_actor: str | None
    approval_reason: str | None
    aliases: list[str]
    rolled_back: bool
    description: str
    tags: dict[str, str]

    @classmethod
    def of(cls, info: ModelVersionInfo) -> ModelVersionOut:
        """From the façade's value."""
        return cls.model_validate(info, from_attributes=True)


class ResolvedModelOut(BaseModel):
    """A reference resolved to a pinned version, with the signature's input columns."""

    name: str
    version: str
    model_uri: str
    input_columns: list[str] | None

    @classmethod
    def of(cls, resolved: ResolvedModel, input_columns: list[str] | None) -> ResolvedModelOut:
        """From the façade's values."""
        return cls(
            name=resolved.name,
            version=resolved.version,
            model_uri=resolved.model_uri,
            input_columns=input_columns,
        )


class AliasChangeOut(BaseModel):
    """One alias change; ``version`` is null when the alias was cleared, ``external`` true
    when it was made outside Keelwatch (the MLflow UI, a script) and found by the watcher."""

    model_name: str
    alias: str
    version: str | None
    previous_version: str | None
    at: datetime
    actor: str
    reason: str
    external: bool = False

    @classmethod
    def of(cls, change: AliasChange) -> AliasChangeOut:
        """From the storage entity."""
        return cls.model_validate(change, from_attributes=True)


class AliasAtOut(BaseModel):
    """What an alias pointed to at a moment (``version`` null: unset then)."""

    name: str
    alias: str
    at: datetime
    version: str | None


#: The shape of an MLflow run id (a UUID's 32 hex digits, as every MLflow store makes them).
MLFLOW_RUN_ID = re.compile(r"^[0-9a-fA-F]{32}$")
RUN_ID_RULE = "an MLflow run id is 32 hexadecimal characters"


class RegisterVersionIn(BaseModel):
    """Register a version from an MLflow run (``run_id`` + ``artifact_path``) or a model URI."""

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = None
    artifact_path: str = "model"
    model_uri: str | None = None
    reason: str = ""
    description: str | None = None

    @field_validator("run_id")
    @classmethod
    def _run_id_shape(cls, value: str | None) -> str | None:
        # Checked here, not by MLflow: an empty or path-like id reached its store as a 500.
        if value is not None and not MLFLOW_RUN_ID.match(value):
            raise ValueError(RUN_ID_RULE)
        return value

    @field_validator("artifact_path")
    @classmethod
    def _artifact_path_shape(cls, value: str) -> str:
        if ".." in value.replace("\\", "/").split("/"):
            raise ValueError("'..' segments are not allowed in an artifact path")
        return value

    @field_validator("model_uri")
    @classmethod
    def _runs_uri_shape(cls, value: str | None) -> str | None:
        if value is not None and value.strip().startswith("runs:/"):
            run_id, _, path = value.strip()[len("runs:/") :].partition("/")
            if not MLFLOW_RUN_ID.match(run_id):
                raise ValueError(f"runs:/ URI: {RUN_ID_RULE}")
            if ".." in path.split("/"):
                raise ValueError("runs:/ URI: '..' segments are not allowed in the artifact path")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> RegisterVersionIn:
        if (self.run_id is None) == (self.model_uri is None):
            raise ValueError("give exactly one of run_id and model_uri")
        return self


class ReasonIn(BaseModel):
    """A mutating call that must say why (approve, reject, reopen, rollback)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1)


class PromoteIn(BaseModel):
    """Point an alias (default: the champion) at a version."""

    model_config = ConfigDict(extra="forbid")

    alias: str | None = None
    reason: str = Field(min_length=1, description="Why (audit log); required.")


class SetAliasIn(BaseModel):
    """Point an alias at a version."""

    model_config = ConfigDict(extra="forbid")

    version: str
    reason: str = Field(min_length=1, description="Why (audit log); required.")


class ClearedAliasOut(BaseModel):
    """The alias removed and the version it pointed to."""

    name: str
    alias: str
    previous_version: str


class MlflowWebhookAccepted(BaseModel):
    """What ``POST /registry/webhooks/mlflow`` did with one MLflow webhook delivery."""

    event: str = Field(description="MLflow's `entity.action`, e.g. model_version_alias.created.")
    model: str | None = Field(None, description="The registered model the event is about.")
    queued: bool = Field(
        description="True when an alias watch (alias events) or a version watch "
        "(model_version.created) of that model was sent to the monitoring queue; other events "
        "are acknowledged and ignored."
    )
