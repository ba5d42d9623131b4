"""Pydantic shapes of evaluation datasets and runs on the wire (``/evaluations``) and in the
CLI's ``--json``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from keelwatch.entities.evaluation import EvalDataset, EvalRun


class DatasetIn(BaseModel):
    """Register a CSV or Parquet file (inside a data root) as an evaluation dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, examples=["churn-holdout"])
    uri: str = Field(
        min_length=1, max_length=4096, description="Path or file:// URI inside a data root."
    )
    label_column: str = Field(min_length=1, max_length=255, examples=["churned"])
    task: Literal["classification", "regression", "text_generation"] = "classification"
    description: str = Field("", max_length=1000)


class DatasetOut(BaseModel):
    """One version of an evaluation dataset."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    version: int
    uri: str
    content_hash: str = Field(description="SHA-256 of the file's bytes at registration.")
    rows: int
    columns: list[str]
    label_column: str
    task: str
    description: str
    created_by: str
    created_at: datetime

    @classmethod
    def from_entity(cls, dataset: EvalDataset) -> DatasetOut:
        """The wire shape of ``dataset``."""
        return cls(
            id=dataset.id,
            name=dataset.name,
            version=dataset.version,
            uri=dataset.uri,
            content_hash=dataset.content_hash,
            rows=dataset.rows,
            columns=list(dataset.columns),
            label_column=dataset.label_column,
            task=dataset.task,
            description=dataset.description,
            created_by=dataset.created_by,
            created_at=dataset.created_at,
        )


class EfficiencyOptions(BaseModel):
    """How the efficiency suite times the model."""

    model_config = ConfigDict(extra="forbid")

    batch_sizes: list[int] | None = Field(None, min_length=1, max_length=8)
    repeats: int | None = Field(None, ge=1, le=1000)
    warmup: int | None = Field(None, ge=0, le=100)


class EvaluationIn(BaseModel):
    """Evaluate one model version on one dataset version."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1, max_length=255, description="name, name/3, name@alias", examples=["churn"]
    )
    dataset: str = Field(
        min_length=1, max_length=140, description="name (latest version) or name:3"
    )
    suites: list[str] | None = Field(
        None, description="Default: the dataset's task and efficiency."
    )
    require: list[str] = Field(
        default_factory=list, description="Metrics that must be computable, e.g. roc_auc."
    )
    efficiency: EfficiencyOptions | None = None
    reason: str = Field("", max_length=1000, description="Why (audit log).")


class EvaluationOut(BaseModel):
    """One evaluation run (one job)."""

    id: int
    job_id: str
    model_name: str
    model_version: str
    dataset_name: str
    dataset_version: int
    suites: list[str]
    status: str
    trigger: str
    metrics: dict[str, dict[str, float]]
    mlflow_run_id: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_entity(cls, run: EvalRun) -> EvaluationOut:
        """The wire shape of ``run``."""
        return cls(
            id=run.id,
            job_id=run.job_id,
            model_name=run.model_name,
            model_version=run.model_version,
            dataset_name=run.dataset_name,
            dataset_version=run.dataset_version,
            suites=list(run.suites),
            status=run.status,
            trigger=run.trigger,
            metrics=run.metrics,
            mlflow_run_id=run.mlflow_run_id,
            error=run.error,
            created_at=run.created_at,
            finished_at=run.finished_at,
        )
