"""Inbound alerts: ``POST /alerts/inbound/alertmanager`` stores an Alertmanager webhook
notification as signals (``inbound.alertmanager.firing``, see :mod:`keelwatch.alerting.inbound`).

Point an Alertmanager ``webhook_config`` here with ``http_config.authorization`` carrying
``alerting.inbound_token``; senders that can sign may instead send ``X-Keelwatch-Signature``
made with ``alerting.inbound_signing_secret``. Authentication runs before the body is parsed:
401 without valid credentials, 422 for a payload that is not Alertmanager's version 4 (the
message names the field), 202 with the number of signals stored.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from keelwatch.alerting.inbound import (
    SIGNATURE_HEADER,
    alertmanager_signals,
    check_bearer_token,
    check_body_signature,
)
from keelwatch.api.deps import ServicesDep
from keelwatch.entities.signals import Signal
from keelwatch.entities.time import utcnow
from keelwatch.schemas.alerts import InboundAccepted, parse_alertmanager_webhook
from keelwatch.settings import AlertingSettings
from keelwatch.storage.signals import write_signals
from keelwatch.wiring import Services

router = APIRouter(prefix="/alerts/inbound", tags=["alerts"])


def authenticate(request: Request, body: bytes, settings: AlertingSettings) -> None:
    """A signature when one is sent, a bearer token otherwise; raise a 401 error if neither
    holds. The configured secrets never appear in a message."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        check_body_signature(
            signature, body, settings.inbound_signing_secret.get_secret_value(), now=utcnow()
        )
        return
    check_bearer_token(
        request.headers.get("Authorization"), settings.inbound_token.get_secret_value()
    )


def _store(services: Services, signals: list[Signal]) -> int:
    with services.db.session() as session:
        return write_signals(session, signals)


@router.post(
    "/alertmanager",
    status_code=202,
    response_model=InboundAccepted,
    summary="Receive an Alertmanager webhook notification as signals",
    responses={401: {"description": "Missing or wrong bearer token or signature."}},
)
async def receive_alertmanager(request: Request, services: ServicesDep) -> InboundAccepted:
    """Body: Alertmanager's webhook payload, version ``"4"``. Each alert becomes one
    ``inbound.alertmanager.firing`` signal (1 firing, 0 resolved) with the alert's labels."""
    # The raw bytes are needed for the signature, so the body is read here, not by FastAPI.
    body = await request.body()
    authenticate(request, body, services.settings.alerting)
    webhook = parse_alertmanager_webhook(body)
    signals = alertmanager_signals(webhook.alerts, received_at=utcnow())
    stored = await run_in_threadpool(_store, services, signals)
    return InboundAccepted(
        alerts=len(webhook.alerts), signals=stored, truncated_alerts=webhook.truncated_alerts
    )
