"""Alerts over HTTP: list, one alert with its history, acknowledge; dead letters, replay.

An alert is named by its fingerprint or a unique prefix of it (as the CLI's short
fingerprints): a prefix that is not hexadecimal or matches several alerts is a 422, one that
matches none a 404. Acknowledging is audited (``alert.ack``), replaying a dead letter too
(``notification.replay``, enqueued after the commit), the caller's authenticated identity
as actor.

The fixed paths (``/alerts/dead-letters``) are declared before ``/alerts/{fingerprint}``, and
the app mounts the rule and silence routers before this one, so none of them is read as a
fingerprint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, page_in_memory
from keelwatch.entities.alerts import Alert, AlertState
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.schemas.alerts import (
    AckIn,
    AlertDetailOut,
    AlertOut,
    DeadLetterOut,
    TransitionOut,
)
from keelwatch.schemas.common import Page

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

router = APIRouter(prefix="/alerts", tags=["alerts"])

MAX_LIMIT = 1000
#: How many alerts one list request reads at most (one per label set of every rule).
ALERTS_READ_CAP = 100_000

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No alert with that fingerprint (or prefix)."}
}
BAD_PREFIX: dict[int | str, dict[str, Any]] = {
    422: {"description": "Not a hexadecimal fingerprint, or an ambiguous prefix."}
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _latest_first(alert: Alert) -> tuple[int, str]:
    # page_in_memory pages ascending: a negated time (whole microseconds, exact) lists the most
    # recently evaluated alert first; the fingerprint breaks ties.
    return (-_micros(alert.last_evaluated_at), alert.fingerprint)


def _parse_key(raw: object) -> tuple[int, str]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise ValueError("not an alerts cursor")
    return (int(raw[0]), str(raw[1]))


def resolve_fingerprint(session: Session, prefix: str) -> str:
    """The one fingerprint starting with ``prefix`` (as ``git`` resolves short hashes)."""
    from keelwatch.storage.alerts import fingerprints_with_prefix

    wanted = prefix.strip().lower()
    if not wanted or not all(c in "0123456789abcdef" for c in wanted):
        raise InvalidInputError("fingerprint: not a hexadecimal fingerprint or prefix")
    found = fingerprints_with_prefix(session, wanted)
    if not found:
        raise NotFoundError(f"no alert with fingerprint {wanted!r}")
    if len(found) > 1:
        raise InvalidInputError(
            f"fingerprint prefix {wanted!r} matches several alerts; give more characters"
        )
    return str(found[0])


@router.get("", response_model=Page[AlertOut], summary="List alerts, latest evaluated first")
def list_alerts(
    services: ServicesDep,
    state: Annotated[
        list[AlertState] | None,
        Query(description="pending, firing, resolved or inactive (repeatable)."),
    ] = None,
    rule: Annotated[str | None, Query(min_length=1, description="Only this rule's.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[AlertOut]:
    """Alerts with their labels, annotations and acknowledgement."""
    from keelwatch.alerting import service

    with services.db.session() as session:
        alerts = service.list_alerts(
            session, states=state or None, rule_name=rule, limit=ALERTS_READ_CAP
        )
    ordered = sorted(alerts, key=_latest_first)
    items, next_cursor = page_in_memory(
        ordered, limit, cursor, kind="alerts", key=_latest_first, parse=_parse_key
    )
    out = [AlertOut.of(alert) for alert in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


# --- dead letters (before /{fingerprint}) ------------------------------------------------------


@router.get(
    "/dead-letters",
    response_model=Page[DeadLetterOut],
    summary="List notifications given up on, oldest first",
)
def list_dead_letters(
    services: ServicesDep,
    include_replayed: Annotated[
        bool, Query(alias="all", description="Include dead letters already replayed.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[DeadLetterOut]:
    """Which notification, which notifier, when and why it was given up on."""
    from keelwatch.storage.notifications import list_dead_letters as stored_letters

    with services.db.session() as session:
        letters = stored_letters(session, include_replayed=include_replayed)
    items, next_cursor = page_in_memory(
        letters, limit, cursor, kind="dead-letters", key=lambda d: d.id, parse=int
    )
    out = [DeadLetterOut.of(d) for d in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


@router.post(
    "/dead-letters/{dead_letter_id}/replay",
    response_model=DeadLetterOut,
    summary="Replay a dead letter",
    responses={
        404: {"description": "No dead letter with that id."},
        409: {"description": "It was replayed already."},
    },
)
def replay_dead_letter(
    dead_letter_id: int, services: ServicesDep, actor: ActorDep
) -> DeadLetterOut:
    """Put its notification back to pending (attempts reset) and enqueue its delivery."""
    from keelwatch.alerting.delivery import enqueue_delivery
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import replay_dead_letter as replay

    now = utcnow()
    with services.db.session() as session:
        letter = replay(session, dead_letter_id, now)
        record_audit(
            session,
            actor=actor,
            action="notification.replay",
            target=f"notification:{letter.log_id}",
            details={"dead_letter": letter.id, "notifier": letter.notifier},
            at=now,
        )
    # Only after the commit: a worker must find the row pending.
    enqueue_delivery(services.sender, letter.log_id)
    return DeadLetterOut.of(letter)


# --- one alert ---------------------------------------------------------------------------------


@router.get(
    "/{fingerprint}",
    response_model=AlertDetailOut,
    summary="One alert with its history",
    responses={**NOT_FOUND, **BAD_PREFIX},
)
def show_alert(fingerprint: str, services: ServicesDep) -> AlertDetailOut:
    """``fingerprint`` may be a unique prefix; the history is oldest transition first."""
    from keelwatch.alerting import service

    with services.db.session() as session:
        alert, history = service.show_alert(session, resolve_fingerprint(session, fingerprint))
    return AlertDetailOut(
        **AlertOut.of(alert).model_dump(), history=[TransitionOut.of(t) for t in history]
    )


@router.post(
    "/{fingerprint}/ack",
    response_model=AlertOut,
    summary="Acknowledge an alert",
    responses={
        **NOT_FOUND,
        **BAD_PREFIX,
        409: {"description": "The alert is not pending or firing."},
    },
)
def acknowledge(fingerprint: str, body: AckIn, services: ServicesDep, actor: ActorDep) -> AlertOut:
    """A person takes an active alert; acknowledging again hands it over. Cleared when a new
    episode begins."""
    from keelwatch.alerting import service

    with services.db.session() as session:
        full = resolve_fingerprint(session, fingerprint)
        acked = service.acknowledge(session, full, body.assignee, actor, body.comment, now=utcnow())
    return AlertOut.of(acked)
