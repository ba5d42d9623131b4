"""When a monitor is due: a fixed interval since its last check, or a cron expression (UTC).

Pure functions. Cron expressions have the five classic fields ``minute hour day-of-month month
day-of-week`` with ``*``, lists (``1,15``), ranges (``1-5``) and steps (``*/10``, ``0-30/5``);
day-of-week 0 and 7 are Sunday. As in Vixie cron, when both day fields are restricted a day
matches if either does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from keelwatch.errors import InvalidInputError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("dow", 0, 7))
#: How far back :func:`previous_fire_time` looks before giving up (a year and a day).
_SEARCH_DAYS = 367


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the allowed values of each field."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    day_restricted: bool
    weekday_restricted: bool

    def matches_day(self, when: datetime) -> bool:
        """Whether the calendar day of ``when`` is a firing day."""
        if when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidInputError(f"invalid step {step_text!r} in cron {name} field")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise InvalidInputError(f"invalid range {base!r} in cron {name} field")
            start, stop = int(first), int(last)
        elif base.isdigit():
            start = int(base)
            stop = high if step_text else start
        else:
            raise InvalidInputError(f"invalid value {base!r} in cron {name} field")
        if not (low <= start <= high and low <= stop <= high and start <= stop):
            raise InvalidInputError(f"cron {name} field {part!r} is outside {low}-{high}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> CronSchedule:
    """Parse a five-field cron expression; InvalidInputError says what is wrong."""
    fields = expression.split()
    if len(fields) != len(_FIELDS):
        raise InvalidInputError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    parsed = [
        _parse_field(text, name, low, high)
        for text, (name, low, high) in zip(fields, _FIELDS, strict=True)
    ]
    weekdays = frozenset(d % 7 for d in parsed[4])
    return CronSchedule(
        expression=expression,
        minutes=parsed[0],
        hours=parsed[1],
        days=parsed[2],
        months=parsed[3],
        weekdays=weekdays,
        day_restricted=fields[2] != "*",
        weekday_restricted=fields[4] != "*",
    )


def previous_fire_time(schedule: CronSchedule, now: datetime) -> datetime | None:
    """The latest minute at or before ``now`` that the schedule fires on (None within a year)."""
    cursor = now.replace(second=0, microsecond=0)
    for _ in range(_SEARCH_DAYS):
        if schedule.matches_day(cursor):
            for hour in sorted((h for h in schedule.hours if h <= cursor.hour), reverse=True):
                last_minute = cursor.minute if hour == cursor.hour else 59
                minutes = [m for m in schedule.minutes if m <= last_minute]
                if minutes:
                    return cursor.replace(hour=hour, minute=max(minutes))
        cursor = cursor.replace(hour=23, minute=59) - timedelta(days=1)
    return None


def is_due(
    *,
    now: datetime,
    last_started: datetime | None,
    created_at: datetime,
    interval_s: int | None,
    cron: str | None,
) -> bool:
    """Whether a monitor should be checked now.

    Interval: never checked, or at least ``interval_s`` since the last check started. Cron: a
    fire time passed since the last check started (or, never checked, since the monitor was
    created). A monitor with neither only runs on demand.
    """
    if interval_s is not None and (
        last_started is None or (now - last_started).total_seconds() >= interval_s
    ):
        return True
    if cron is not None:
        fired = previous_fire_time(parse_cron(cron), now)
        return fired is not None and fired > (last_started or created_at)
    return False
