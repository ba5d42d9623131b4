"""Pydantic shapes of bias audits on the wire (``/audits``, ``/predictions/attributes``) and in
the CLI's ``--json``.

An audit's ``result`` is :meth:`keelwatch.monitoring.fairness.results.AuditResult.to_dict`:
per slice and group the count and metrics, per gap its value, interval, threshold and
violation flag; an undefined number is ``null`` (with its reason), never NaN.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.realized import parse_window, window_label
from keelwatch.monitoring.service.bias_audits import MAX_ATTRIBUTES as MAX_AUDIT_ATTRIBUTES
from keelwatch.storage.attributes import (
    MAX_ATTRIBUTES,
    MAX_NAME_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    MAX_VALUE_LENGTH,
    AttributeWriteResult,
)
from keelwatch.storage.bias_audits import AuditRecord

MAX_ATTRIBUTE_NAME_LENGTH = MAX_NAME_LENGTH
MAX_ATTRIBUTE_VALUE_LENGTH = MAX_VALUE_LENGTH
#: Attribute records per ``POST /predictions/attributes`` (as many as labels per call).
MAX_ATTRIBUTE_RECORDS_PER_CALL = 10_000
MAX_ATTRIBUTES_PER_PREDICTION = MAX_ATTRIBUTES

AttributeName = StrictStr


def _check_attribute_names(names: list[str]) -> list[str]:
    cleaned = [name.strip() for name in names]
    for name in cleaned:
        if not name:
            raise ValueError("an attribute name is empty")
        if len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
            raise ValueError(f"attribute names are at most {MAX_ATTRIBUTE_NAME_LENGTH} characters")
    duplicates = sorted({name for name in cleaned if cleaned.count(name) > 1})
    if duplicates:
        raise ValueError(f"attribute {duplicates[0]!r} is named twice")
    return cleaned


class AuditRunIn(BaseModel):
    """Audit one model's logged predictions in the window ending now, across the groups of
    every combination of ``attributes`` (read from the logged inputs or the attributes side
    table, ``POST /predictions/attributes``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=255, description="Registered model name.")
    attributes: list[AttributeName] = Field(
        min_length=1,
        max_length=MAX_AUDIT_ATTRIBUTES,
        description="Sensitive attributes to slice by, e.g. ['gender', 'age_band'].",
        examples=[["gender", "age_band"]],
    )
    window: str = Field(
        "24h",
        max_length=32,
        description="Window length ending now: 24h, 30m, 7d, 90s or seconds.",
        examples=["24h"],
    )
    version: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Audit one version only (default: every "
        "version that logged predictions in the window).",
    )
    positive_label: StrictInt | StrictBool | StrictStr | None = Field(
        None,
        description="The favourable prediction (default: fairness.positive_label, 1); text "
        "matches numeric predictions too ('1' finds 1).",
    )
    min_group_size: int | None = Field(
        None, ge=1, description="Smallest group that enters a gap (default: settings)."
    )
    resamples: int | None = Field(
        None, ge=10, le=100_000, description="Bootstrap resamples (default: settings)."
    )
    confidence: float | None = Field(
        None, gt=0.5, lt=1, description="Confidence of the intervals (default: settings)."
    )
    difference_threshold: float | None = Field(
        None, ge=0, le=1, description="A difference gap above this violates (default: settings)."
    )
    ratio_threshold: float | None = Field(
        None, ge=0, le=1, description="A ratio gap below this violates (default: settings)."
    )
    reason: str = Field("", max_length=1000, description="Why (audit log).")

    @field_validator("attributes")
    @classmethod
    def _attributes_distinct(cls, value: list[str]) -> list[str]:
        return _check_attribute_names(value)

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        try:
            parse_window(value)
        except InvalidInputError as exc:  # a ValueError here makes it a 422 naming the field
            raise ValueError(str(exc)) from exc
        return value

    @property
    def window_s(self) -> int:
        """The window in seconds."""
        return parse_window(self.window)

    def config_overrides(self) -> dict[str, Any]:
        """The :class:`AuditConfig` fields this request sets (the rest come from settings)."""
        names = (
            "min_group_size",
            "resamples",
            "confidence",
            "difference_threshold",
            "ratio_threshold",
        )
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class AuditOut(BaseModel):
    """One stored audit of one model version: what it covered and its verdict."""

    id: int
    model_name: str
    model_version: str
    source: str = Field(description="prediction_log or file.")
    window: str | None = Field(None, description="The window as a signal label, e.g. 24h.")
    window_s: int | None
    window_end: datetime | None
    attributes: list[str]
    alias: str | None = Field(None, description="The alias the version held (champion).")
    verdict: Literal["pass", "violation", "insufficient_data"] | str
    rows: int
    violations: int = Field(description="Gaps whose whole interval lies beyond the threshold.")
    mlflow_run_id: str | None
    has_report: bool
    schedule_id: int | None
    computed_at: datetime
    computed_by: str
    already_recorded: bool = Field(
        False, description="True when an earlier run of the same slot had stored this audit."
    )

    @classmethod
    def of(cls, record: AuditRecord) -> AuditOut:
        """Stored record → response schema."""
        return cls(**_fields(record))


class AuditDetailOut(AuditOut):
    """One stored audit with its whole result (slices, groups, gaps)."""

    result: dict[str, Any] = Field(description="AuditResult.to_dict(): slices, groups, gaps.")

    @classmethod
    def of(cls, record: AuditRecord) -> AuditDetailOut:
        """Stored record → response schema, with the result."""
        return cls(**_fields(record), result=dict(record.result))


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "source": record.source,
        "window": window_label(record.window_s) if record.window_s else None,
        "window_s": record.window_s,
        "window_end": record.window_end,
        "attributes": list(record.attributes),
        "alias": record.alias,
        "verdict": record.verdict,
        "rows": record.rows,
        "violations": record.violations,
        "mlflow_run_id": record.mlflow_run_id,
        "has_report": record.has_report,
        "schedule_id": record.schedule_id,
        "computed_at": record.computed_at,
        "computed_by": record.computed_by,
        "already_recorded": record.already_recorded,
    }


class AuditRunOut(BaseModel):
    """What one run audited: one audit per version that logged predictions in the window."""

    model: str
    window: str
    window_end: datetime
    signals_written: int
    results: list[AuditDetailOut]


class AttributeIn(BaseModel):
    """The sensitive attributes of one logged prediction (never model features)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
    attributes: dict[str, str] = Field(
        min_length=1,
        max_length=MAX_ATTRIBUTES_PER_PREDICTION,
        description="Attribute name → value (text; integers and booleans are stored as text).",
        examples=[{"gender": "female", "age_band": "30-39"}],
    )

    @field_validator("attributes", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic names the type it expected
        text: dict[Any, Any] = {}
        for name, raw in value.items():
            if isinstance(raw, bool):
                text[name] = "true" if raw else "false"
            elif isinstance(raw, int | str):
                text[name] = str(raw)
            else:
                raise ValueError(
                    f"attribute {str(name)[:MAX_ATTRIBUTE_NAME_LENGTH]!r}: values are text, "
                    f"integers or booleans, not {type(raw).__name__}"
                )
        return text

    @field_validator("attributes")
    @classmethod
    def _names_and_values(cls, value: dict[str, str]) -> dict[str, str]:
        _check_attribute_names(list(value))
        checked: dict[str, str] = {}
        for name, item in value.items():
            if not item.strip():
                raise ValueError(f"attribute {name.strip()!r} has an empty value")
            if len(item) > MAX_ATTRIBUTE_VALUE_LENGTH:
                raise ValueError(
                    f"attribute {name.strip()!r}: values are at most "
                    f"{MAX_ATTRIBUTE_VALUE_LENGTH} characters"
                )
            checked[name.strip()] = item
        return checked


class AttributesIn(BaseModel):
    """Sensitive attributes to record; the actor is the caller's authenticated identity."""

    model_config = ConfigDict(extra="forbid")

    attributes: list[AttributeIn] = Field(min_length=1, max_length=MAX_ATTRIBUTE_RECORDS_PER_CALL)


class AttributesOut(BaseModel):
    """How many request ids' attributes were stored, and which ids are not in the log."""

    stored: int
    unknown_request_ids: list[str] = Field(
        default_factory=list,
        description="Not in the prediction log; their attributes are not stored.",
    )

    @classmethod
    def of(cls, result: AttributeWriteResult) -> AttributesOut:
        """Storage result → response schema."""
        return cls(stored=result.stored, unknown_request_ids=list(result.unknown))
