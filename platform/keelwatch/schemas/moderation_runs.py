"""Pydantic shape of ``POST /moderation/runs`` and of ``keelwatch moderation run``: a batch
moderation run over a dataset's text column or over a window of the prediction log. The answer
is the job (``schemas.jobs.JobView``, 202)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModerationRunIn(BaseModel):
    """What to moderate: ``dataset`` (a CSV or Parquet file under the read roots) or
    ``predictions`` (the logged inputs or outputs of ``model`` in ``[since, until)``)."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["dataset", "predictions"] = Field(description="Where the texts come from.")
    column: str = Field(min_length=1, max_length=255, description="The text column.")
    dataset: str | None = Field(
        None, min_length=1, max_length=4096, description="dataset: a CSV or Parquet file path."
    )
    model: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="predictions: the model whose log is read (required); dataset: the model "
        "the texts belong to, for rates and the review queue (optional).",
    )
    version: str | None = Field(None, min_length=1, max_length=64, description="Model version.")
    direction: Literal["input", "output"] = Field(
        "output", description="predictions: moderate a logged input or output column."
    )
    since: datetime | None = Field(None, description="predictions: from (default: 24h ago).")
    until: datetime | None = Field(None, description="predictions: until (default: now).")
    reason: str = Field("", max_length=1000, description="Why (audit log).")

    @model_validator(mode="after")
    def _one_source(self) -> ModerationRunIn:
        if self.source == "dataset":
            if self.dataset is None:
                raise ValueError("source dataset needs `dataset` (a file path)")
            if self.since is not None or self.until is not None:
                raise ValueError("since and until apply to source predictions only")
        else:
            if self.model is None:
                raise ValueError("source predictions needs `model`")
            if self.dataset is not None:
                raise ValueError("dataset applies to source dataset only")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone")
        return self
