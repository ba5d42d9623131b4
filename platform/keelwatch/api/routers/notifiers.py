"""Notifiers over HTTP: add, list, delete, send a test notification.

A notifier's config is validated by its type when it is added (an unknown type or a bad field
is a 422 naming it, never its value) and is only ever answered masked: every secret (webhook
key, routing key, password) comes back as ``**********``. Adding, deleting and testing are
audited (``notifier.add``, ``notifier.delete``, ``notifier.test``) with the caller's
authenticated identity as actor. Secret fields are stored encrypted
(:mod:`keelwatch.secrets_at_rest`, the services' ``notifier_secrets``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from keelwatch.alerting.delivery import masked_config
from keelwatch.alerting.notifiers import NotifierConfigError
from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, page_in_memory
from keelwatch.entities.notifications import (
    NotifierTarget,
)
from keelwatch.entities.time import utcnow
from keelwatch.schemas.common import Page
from keelwatch.schemas.notifiers import NotifierIn, NotifierOut, NotifierTestOut
from keelwatch.secrets_at_rest import NotifierSecrets, SecretsKeyError

router = APIRouter(prefix="/notifiers", tags=["notifiers"])

MAX_LIMIT = 1000

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No notifier of that name."}}


def _shown(target: NotifierTarget, secrets: NotifierSecrets) -> dict[str, Any]:
    """The masked config of a target read without ``secrets``; a stored config that no
    longer validates, or whose secrets this process cannot decrypt, is reported, not raised
    (a list must not fail because of one notifier), and still shows no value."""
    try:
        return masked_config(target.type, secrets.open(target.name, target.type, target.config))
    except NotifierConfigError as err:
        return {"target": "(invalid config)", "error": str(err)}
    except SecretsKeyError as err:
        return {"target": "(secrets cannot be decrypted)", "error": str(err)}


@router.get("", response_model=Page[NotifierOut], summary="List notifiers (secrets masked)")
def list_notifiers(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[NotifierOut]:
    """Every notifier by name with its route; secret config fields read ``**********``."""
    from keelwatch.storage.notifications import list_notifiers as stored_notifiers

    with services.db.session() as session:
        targets = stored_notifiers(session)
    items, next_cursor = page_in_memory(
        targets, limit, cursor, kind="notifiers", key=lambda t: t.name, parse=str
    )
    out = [NotifierOut.of(t, _shown(t, services.notifier_secrets)) for t in items]
    return Page(count=len(out), items=out, next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=NotifierOut,
    summary="Add a notifier",
    responses={
        409: {"description": "A notifier of that name exists."},
        422: {"description": "Unknown type or a bad config field (named, never its value)."},
    },
)
def add_notifier(body: NotifierIn, services: ServicesDep, actor: ActorDep) -> NotifierOut:
    """The config is validated by the type before anything is stored."""
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import add_notifier as store_notifier

    shown = masked_config(body.type, body.config)  # NotifierConfigError: 422 naming the field
    with services.db.session() as session:
        target = store_notifier(
            session,
            name=body.name,
            type=body.type,
            config=body.config,
            route=body.route.model_dump(),
            created_by=actor,
            secrets=services.notifier_secrets,
        )
        record_audit(
            session,
            actor=actor,
            action="notifier.add",
            target=f"notifier:{body.name}",
            details={"type": body.type, "target": shown["target"]},
        )
    return NotifierOut.of(target, shown)


@router.delete(
    "/{name}", response_model=NotifierOut, summary="Delete a notifier", responses=NOT_FOUND
)
def delete_notifier(name: str, services: ServicesDep, actor: ActorDep) -> NotifierOut:
    """Answer the notifier as it was (masked); its pending notifications are dead-lettered
    when their delivery runs."""
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import delete_notifier as remove
    from keelwatch.storage.notifications import get_notifier

    with services.db.session() as session:
        target = get_notifier(session, name)
        remove(session, name)
        record_audit(session, actor=actor, action="notifier.delete", target=f"notifier:{name}")
    return NotifierOut.of(target, _shown(target, services.notifier_secrets))


@router.post(
    "/{name}/test",
    response_model=NotifierTestOut,
    summary="Send a test notification now",
    responses={
        **NOT_FOUND,
        422: {"description": "The stored config no longer validates."},
    },
)
def send_test(name: str, services: ServicesDep, actor: ActorDep) -> NotifierTestOut:
    """Sends one synthetic firing notification synchronously and reports the outcome: a
    receiver that fails is ``delivered: false`` with the reason (the request succeeded)."""
    from keelwatch.alerting.delivery import send_test_notification
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import get_notifier

    with services.db.session() as session:
        # SecretsKeyError (a 500 naming the notifier) when this process has another key.
        target = get_notifier(session, name, secrets=services.notifier_secrets)
    now = utcnow()
    sent = send_test_notification(target, now)
    outcome = NotifierTestOut(
        name=name,
        target=sent.target,
        delivered=sent.delivered,
        attempts=list(sent.attempts),
        error=sent.error,
    )
    with services.db.session() as session:
        record_audit(
            session,
            actor=actor,
            action="notifier.test",
            target=f"notifier:{name}",
            details={"delivered": outcome.delivered},
            at=now,
        )
    return outcome
