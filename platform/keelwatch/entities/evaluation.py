"""Evaluation datasets (versioned, content-hashed files) and evaluation runs (one per job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class EvalDataset:
    """One registered version of an evaluation dataset.

    ``content_hash`` is the SHA-256 of the file's bytes at registration: a worker refuses to
    evaluate on a file whose bytes changed since, so a result always names the data it saw.
    """

    id: int
    name: str
    version: int
    uri: str
    content_hash: str
    rows: int
    columns: tuple[str, ...]
    label_column: str
    task: str
    description: str
    created_by: str
    created_at: datetime

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Every column but the label."""
        return tuple(c for c in self.columns if c != self.label_column)


@dataclass(frozen=True)
class EvalRun:
    """One evaluation of one model version on one dataset version (one job).

    ``metrics``: suite -> metric -> value (empty until the run finished).
    """

    id: int
    job_id: str
    model_name: str
    model_version: str
    dataset_name: str
    dataset_version: int
    suites: tuple[str, ...]
    status: str
    trigger: str
    created_at: datetime
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    error: str | None = None
    finished_at: datetime | None = None
