"""Monitor specs, window short forms and schedules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.drift.engine import STATTESTS as ENGINE_STATTESTS
from keelwatch.monitoring.service.schedule import is_due, parse_cron, previous_fire_time
from keelwatch.monitoring.service.specs import (
    STATTESTS,
    MonitorSpec,
    parse_duration,
    parse_window,
    validated,
)

NOW = datetime(2025, 3, 12, 10, 7, 30, tzinfo=UTC)  # a Wednesday


def test_stattest_names_agree_with_the_engine() -> None:
    assert frozenset(ENGINE_STATTESTS) == STATTESTS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rows:5000", {"kind": "rows", "last_rows": 5000}),
        ("time:24h", {"kind": "time", "last_seconds": 86400}),
        ("dataset:/d/x.parquet", {"kind": "dataset", "uri": "/d/x.parquet"}),
        ("job:abc", {"kind": "job", "job_id": "abc"}),
        (
            "time:2025-01-01T00:00..2025-01-02",
            {"kind": "time", "since": "2025-01-01T00:00:00Z", "until": "2025-01-02T00:00:00Z"},
        ),
    ],
)
def test_window_short_forms(text: str, expected: dict[str, object]) -> None:
    window = parse_window(text)
    assert window.as_json() == expected
    assert parse_window(window.describe()).as_json() == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rows", "invalid window"),
        ("rows:-3", "whole number"),
        ("weeks:2", "invalid window kind"),
        ("time:2025-01-02..2025-01-01", "until must be after since"),
        ("time:soon", "invalid duration"),
    ],
)
def test_bad_windows(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_window(text)


def test_spec_validation_messages() -> None:
    base = {"name": "m", "model": "credit", "window": {"kind": "rows", "last_rows": 5}}
    assert validated(MonitorSpec, base, "monitor").config.fdr_alpha == 0.05
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "bad name!"}, "invalid monitor name"),
        ({"window": {"kind": "rows", "uri": "x"}}, "does not take uri"),
        ({"config": {"column_stattests": {"a": "nope"}}}, "unknown statistic nope"),
        ({"config": {"colour": 1}}, "Extra inputs"),
        ({"schedule_interval_s": 1}, "greater than or equal to 10"),
    ]
    for change, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            validated(MonitorSpec, {**base, **change}, "monitor")
    assert parse_duration("90") == 90 and parse_duration("2w") == 1_209_600


def test_cron_previous_fire_time() -> None:
    assert previous_fire_time(parse_cron("*/15 * * * *"), NOW) == NOW.replace(minute=0, second=0)
    assert previous_fire_time(parse_cron("30 9 * * 1-5"), NOW) == NOW.replace(
        hour=9, minute=30, second=0
    )
    # Sundays only (0 and 7 both mean Sunday): the previous Sunday 23:00.
    sunday = previous_fire_time(parse_cron("0 23 * * 7"), NOW)
    assert sunday == datetime(2025, 3, 9, 23, 0, tzinfo=UTC)
    # Day-of-month OR day-of-week when both are restricted (Vixie cron).
    either = previous_fire_time(parse_cron("0 0 1 * 3"), NOW)
    assert either == datetime(2025, 3, 12, 0, 0, tzinfo=UTC)
    for bad in ("* * *", "60 * * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"):
        with pytest.raises(InvalidInputError):
            parse_cron(bad)


def test_is_due() -> None:
    created = NOW - timedelta(days=1)
    interval = {"interval_s": 3600, "cron": None, "created_at": created}
    assert is_due(now=NOW, last_started=None, **interval)  # type: ignore[arg-type]
    assert not is_due(now=NOW, last_started=NOW - timedelta(minutes=59), **interval)  # type: ignore[arg-type]
    assert is_due(now=NOW, last_started=NOW - timedelta(minutes=60), **interval)  # type: ignore[arg-type]
    hourly = {"interval_s": None, "cron": "0 * * * *", "created_at": created}
    assert is_due(now=NOW, last_started=NOW - timedelta(minutes=8), **hourly)  # type: ignore[arg-type]
    assert not is_due(now=NOW, last_started=NOW - timedelta(minutes=7), **hourly)  # type: ignore[arg-type]
    assert not is_due(  # created after the last fire time: wait for the next one
        now=NOW, last_started=None, interval_s=None, cron="0 * * * *", created_at=NOW
    )
    assert not is_due(now=NOW, last_started=None, interval_s=None, cron=None, created_at=created)
