"""Silences over HTTP: list, create, expire.

A silence mutes the notifications (not the state) of alerts whose labels match every matcher,
from ``starts_at`` (default now) until ``ends_at`` or ``starts_at + duration``; with
``ends_when_resolved`` it ends early once those alerts have resolved. Matchers use
Alertmanager's syntax; a malformed one is a 422 naming the matcher and the column.
``POST`` and ``DELETE`` are audited (``silence.create``, ``silence.expire``) with the caller's
authenticated identity as actor.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, page_in_memory
from keelwatch.entities.alerts import Matcher, Silence
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.schemas.alerts import SilenceIn, SilenceOut
from keelwatch.schemas.common import Page

router = APIRouter(prefix="/alerts/silences", tags=["silences"])

MAX_LIMIT = 1000

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No silence with that id."}}
BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {"description": "Malformed matchers, times or duration (the field is named)."}
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _newest_first(silence: Silence) -> tuple[int, str]:
    # page_in_memory pages ascending: a negated start (in whole microseconds, exact) lists the
    # latest-starting silence first; the id breaks ties.
    micros = (silence.starts_at - _EPOCH) // timedelta(microseconds=1)
    return (-micros, silence.id)


def _parse_key(raw: object) -> tuple[int, str]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise ValueError("not a silence cursor")
    return (int(raw[0]), str(raw[1]))


@router.get("", response_model=Page[SilenceOut], summary="List silences, latest start first")
def list_silences(
    services: ServicesDep,
    active: Annotated[
        bool,
        Query(description="Only silences that have not ended (in effect now or starting later)."),
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[SilenceOut]:
    """Every silence with its state (pending, active, expired) at the time of the request."""
    from keelwatch.alerting.service import list_silences as stored_silences
    from keelwatch.alerting.silences import silence_state

    now = utcnow()
    with services.db.session() as session:
        found = stored_silences(session, active_at=now if active else None)
    ordered = sorted(found, key=_newest_first)
    items, next_cursor = page_in_memory(
        ordered, limit, cursor, kind="silences", key=_newest_first, parse=_parse_key
    )
    out = [SilenceOut.of(s, silence_state(s, now).value) for s in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


def _matchers(value: str | list[str]) -> str | list[Matcher]:
    """A list of matcher strings parsed one by one, so an error names the one at fault (a
    single string is parsed by the service, whose error names the column)."""
    from keelwatch.alerting.matchers import MatcherSyntaxError, parse_matchers

    if isinstance(value, str):
        return value
    parsed: list[Matcher] = []
    for index, text in enumerate(value):
        try:
            parsed.extend(parse_matchers(text))
        except MatcherSyntaxError as err:
            raise InvalidInputError(
                f"matchers[{index}], column {err.column}: {err.reason}"
            ) from None
    return parsed


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SilenceOut,
    summary="Create a silence",
    responses=BAD_INPUT,
)
def create_silence(body: SilenceIn, services: ServicesDep, actor: ActorDep) -> SilenceOut:
    """Give ``ends_at`` or ``duration`` (e.g. ``2h``), not both."""
    from keelwatch.alerting import service
    from keelwatch.alerting.rules import parse_duration
    from keelwatch.alerting.silences import silence_state

    now = utcnow()
    starts_at = body.starts_at or now
    if (body.ends_at is None) == (body.duration is None):
        raise InvalidInputError("give exactly one of ends_at and duration")
    if body.duration is not None:
        try:
            length = parse_duration(body.duration)
            ends_at = starts_at + length
        except InvalidInputError as err:
            raise InvalidInputError(f"duration: {err}") from None
        except OverflowError:
            raise InvalidInputError("duration: too long") from None
        if length <= timedelta(0):
            raise InvalidInputError("duration: must be positive")
    else:
        assert body.ends_at is not None
        ends_at = body.ends_at
    matchers = _matchers(body.matchers)
    with services.db.session() as session:
        created = service.create_silence(
            session,
            matchers=matchers,
            author=body.author or actor,
            comment=body.comment,
            starts_at=starts_at,
            ends_at=ends_at,
            actor=actor,
            now=now,
            ends_when_resolved=body.ends_when_resolved,
        )
    return SilenceOut.of(created, silence_state(created, now).value)


@router.delete(
    "/{silence_id}", response_model=SilenceOut, summary="End a silence now", responses=NOT_FOUND
)
def expire_silence(silence_id: str, services: ServicesDep, actor: ActorDep) -> SilenceOut:
    """The silence is kept (as expired) for the record; one already over is left as it was."""
    from keelwatch.alerting import service
    from keelwatch.alerting.silences import silence_state

    now = utcnow()
    with services.db.session() as session:
        ended = service.expire_silence(session, silence_id, actor, now=now)
    return SilenceOut.of(ended, silence_state(ended, now).value)
