"""The prediction log and its ground-truth labels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


@dataclass(frozen=True)
class PredictionRecord:
    """One scored row copied to the prediction log."""

    request_id: str
    model_name: str
    model_version: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    latency_ms: float
    created_at: datetime
    job_id: str | None = None
    #: The log row's id once stored (orders the log; the API's list cursor resumes after it).
    log_id: int | None = None


#: A ground-truth label: a JSON scalar (never null, NaN, infinity, a list or an object).
LabelValue = bool | int | float | str


@dataclass(frozen=True)
class LabelRecord:
    """A ground-truth label for one logged prediction, identified by its request id."""

    request_id: str
    label: LabelValue


@dataclass(frozen=True)
class PredictionLabel:
    """A stored label: its value, when it was last set and by whom."""

    request_id: str
    label: LabelValue
    labelled_at: datetime
    submitted_by: str


@dataclass(frozen=True)
class LabelWriteResult:
    """What one call recording labels did, per distinct request id.

    ``unknown`` lists the request ids that are not in the prediction log; their labels were
    not stored.
    """

    inserted: int
    updated: int
    unchanged: int
    unknown: tuple[str, ...] = ()

    @property
    def received(self) -> int:
        """Distinct request ids in the call."""
        return self.inserted + self.updated + self.unchanged + len(self.unknown)


class LabelledPrediction(NamedTuple):
    """A logged prediction joined with its label (a tuple, cheap for large windows)."""

    id: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    label: LabelValue
