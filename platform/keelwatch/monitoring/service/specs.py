"""Validated shapes of a monitor definition, shared by the CLI, the API and the service.

A window says which rows a check compares with the reference profile:

=========  ====================================  =========================================
kind       fields                                rows
=========  ====================================  =========================================
``rows``   ``last_rows``                         the newest N prediction-log rows of the model
``time``   ``last_seconds`` or ``since/until``   prediction-log rows logged in that range
``dataset`` ``uri``                              a Parquet or CSV file (path or ``file://``)
``job``    ``job_id``                            the input profile a batch-inference job built
=========  ====================================  =========================================

The CLI's short form is ``rows:5000``, ``time:24h``, ``time:2025-01-01T00:00..2025-01-02``,
``dataset:/data/today.parquet`` or ``job:<job id>``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from keelwatch.errors import InvalidInputError

WindowKind = Literal["rows", "time", "dataset", "job"]

#: Statistics a monitor may force per column: the drift engine's ``STATTESTS`` (kept here as
#: a literal so validating a request does not import numpy; a unit test checks they agree).
STATTESTS = frozenset({"ks", "psi", "kl", "kl_symmetric", "js", "wasserstein", "chi2", "z"})

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MONITOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


class WindowSpec(BaseModel):
    """Which rows a check tests; exactly the fields of its ``kind`` are set."""

    model_config = ConfigDict(extra="forbid")

    kind: WindowKind
    last_rows: int | None = Field(None, gt=0, description="rows: newest N log rows.")
    last_seconds: int | None = Field(None, gt=0, description="time: rows of the last N seconds.")
    since: datetime | None = Field(None, description="time: start (inclusive, UTC).")
    until: datetime | None = Field(None, description="time: end (exclusive, UTC).")
    uri: str | None = Field(None, min_length=1, description="dataset: file path or file:// URI.")
    job_id: str | None = Field(None, min_length=1, description="job: a batch-inference job id.")

    @model_validator(mode="after")
    def _fields_match_kind(self) -> WindowSpec:
        allowed = {
            "rows": {"last_rows"},
            "time": {"last_seconds", "since", "until"},
            "dataset": {"uri"},
            "job": {"job_id"},
        }[self.kind]
        given = {
            name
            for name in ("last_rows", "last_seconds", "since", "until", "uri", "job_id")
            if getattr(self, name) is not None
        }
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"a {self.kind!r} window does not take {', '.join(extra)}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=UTC))
        if self.kind == "rows" and self.last_rows is None:
            raise ValueError("a 'rows' window needs last_rows")
        if self.kind == "time":
            if self.last_seconds is None and self.since is None:
                raise ValueError("a 'time' window needs last_seconds or since")
            if self.last_seconds is not None and (self.since or self.until):
                raise ValueError("give last_seconds or since/until, not both")
            if self.since and self.until and self.until <= self.since:
                raise ValueError("until must be after since")
        if self.kind == "dataset" and self.uri is None:
            raise ValueError("a 'dataset' window needs uri")
        if self.kind == "job" and self.job_id is None:
            raise ValueError("a 'job' window needs job_id")
        return self

    def as_json(self) -> dict[str, Any]:
        """The stored form: only the fields that are set."""
        return self.model_dump(mode="json", exclude_none=True)

    def describe(self) -> str:
        """The CLI's short form of this window."""
        if self.kind == "rows":
            return f"rows:{self.last_rows}"
        if self.kind == "time":
            if self.last_seconds is not None:
                return f"time:{self.last_seconds}s"
            start = self.since.isoformat() if self.since else ""
            end = self.until.isoformat() if self.until else ""
            return f"time:{start}..{end}"
        if self.kind == "dataset":
            return f"dataset:{self.uri}"
        return f"job:{self.job_id}"


class MonitorConfig(BaseModel):
    """How a check tests each column (all optional; the engine's defaults otherwise)."""

    model_config = ConfigDict(extra="forbid")

    stattest: str | None = Field(None, description="Force one statistic for every column.")
    column_stattests: dict[str, str] = Field(
        default_factory=dict, description="Per-column statistic overrides."
    )
    effect_size_floors: dict[str, float] = Field(
        default_factory=dict,
        description="Per-statistic effect-size floor a column must reach to count as drifted.",
    )
    extra_stattests: list[str] = Field(
        default_factory=list,
        description="Statistics reported next to the deciding one (e.g. psi, kl); no verdict.",
    )
    column_effect_size_floors: dict[str, float] = Field(
        default_factory=dict, description="Per-column effect-size floors (win over statistics')."
    )
    min_samples: int = Field(30, ge=1, description="Per column: fewer valid values is untested.")
    columns: list[str] | None = Field(None, description="Only test these columns.")
    fdr_alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Benjamini-Hochberg level.")
    min_rows: int = Field(
        100, ge=1, description="Fewer valid window rows than this: insufficient_data."
    )
    report_sample_rows: int = Field(
        5000, ge=0, description="Rows of each side in Evidently's second opinion (0: none)."
    )
    second_opinion: bool = Field(
        False,
        description="Also attach Evidently's report (the 'reports' extra), labelled as an "
        "independent second opinion with its own tests and thresholds.",
    )
    partition_rows: int = Field(
        250_000, ge=1000, description="Rows per partition when a window is profiled in parallel."
    )

    @model_validator(mode="after")
    def _known_stattests(self) -> MonitorConfig:
        named = ([self.stattest] if self.stattest else []) + list(self.column_stattests.values())
        named += list(self.effect_size_floors) + list(self.extra_stattests)
        unknown = sorted({name for name in named if name not in STATTESTS})
        if unknown:
            known = ", ".join(sorted(STATTESTS))
            raise ValueError(f"unknown statistic {', '.join(unknown)}; choose from {known}")
        return self


class MonitorSpec(BaseModel):
    """A whole monitor definition as a user gives it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    model: str = Field(min_length=1, description="'name@alias', 'name/version' or 'name'.")
    window: WindowSpec
    schedule_interval_s: int | None = Field(None, ge=10, description="Run every N seconds.")
    schedule_cron: str | None = Field(None, description="Run on a cron schedule (UTC).")
    config: MonitorConfig = Field(default_factory=MonitorConfig)
    enabled: bool = True
    description: str = ""

    @model_validator(mode="after")
    def _valid_name_and_schedule(self) -> MonitorSpec:
        if not _MONITOR_NAME.match(self.name):
            raise ValueError(
                f"invalid monitor name {self.name!r}: letters, digits, '_', '.', '-' "
                "(starting with a letter or digit)"
            )
        if self.schedule_cron is not None:
            from keelwatch.monitoring.service.schedule import parse_cron

            parse_cron(self.schedule_cron)
        return self


def validated(model: type[BaseModel], data: Any, what: str) -> Any:
    """``model.model_validate(data)``, with pydantic's errors turned into InvalidInputError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {what}: {_summarise(exc)}") from exc


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` or plain seconds → seconds."""
    stripped = text.strip().lower()
    if stripped.isdigit():
        return int(stripped)
    match = _DURATION.match(stripped)
    if not match or int(match.group(1)) <= 0:
        raise InvalidInputError(f"invalid duration {text!r}: use e.g. 90s, 15m, 24h, 7d")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


def parse_window(text: str) -> WindowSpec:
    """The CLI's short form (see the module docstring) → a validated window."""
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest.strip():
        raise InvalidInputError(
            f"invalid window {text!r}: use rows:N, time:24h, time:SINCE..UNTIL, "
            "dataset:PATH or job:ID"
        )
    rest = rest.strip()
    data: dict[str, Any] = {"kind": kind}
    if kind == "rows":
        if not rest.isdigit():
            raise InvalidInputError(f"invalid window {text!r}: rows:N needs a whole number")
        data["last_rows"] = int(rest)
    elif kind == "time":
        if ".." in rest:
            since, _, until = rest.partition("..")
            data["since"] = since.strip()
            if until.strip():
                data["until"] = until.strip()
        else:
            data["last_seconds"] = parse_duration(rest)
    elif kind == "dataset":
        data["uri"] = rest
    elif kind == "job":
        data["job_id"] = rest
    else:
        raise InvalidInputError(f"invalid window kind {kind!r}: choose rows, time, dataset or job")
    return validated(WindowSpec, data, "window")  # type: ignore[no-any-return]
