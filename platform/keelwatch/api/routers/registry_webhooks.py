"""MLflow registry webhooks: ``POST /registry/webhooks/mlflow`` watches a model's aliases (or
its new versions) now.

Subscribe it in MLflow (3.x tracking server with a SQL store) to the events
``model_version_alias.created``, ``model_version_alias.deleted`` and ``model_version.created``
with the secret in ``registry.webhook_secret``. The route checks MLflow's own signature (no
Keelwatch token: ``OpenAccess.OWN_CHECK`` in the access table) before it reads the body, then
sends the alias watch of that one model (``keelwatch.registry.watch_aliases``), or for a new
version the version watch (``keelwatch.registry.watch_versions``: the gate or an evaluation),
to the monitoring queue: 202.
401 for a missing or wrong signature or a stale timestamp, 422 for a body that is not MLflow's
webhook shape (naming the field), 503 when the broker does not take the message (MLflow retries).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from keelwatch.api.deps import ServicesDep
from keelwatch.contract import (
    QUEUE_MONITORING,
    REGISTRY_WATCH_ALIASES,
    REGISTRY_WATCH_VERSIONS,
    BrokerUnavailableError,
)
from keelwatch.entities.time import utcnow
from keelwatch.registry.webhooks import check_delivery_signature, parse_delivery
from keelwatch.schemas.registry import MlflowWebhookAccepted

router = APIRouter(prefix="/registry/webhooks", tags=["models"])

#: A version was registered (by anyone): the version watch starts its gate or evaluation.
VERSION_CREATED = "model_version.created"


@router.post(
    "/mlflow",
    status_code=202,
    response_model=MlflowWebhookAccepted,
    summary="Receive an MLflow registry webhook: watch that model's aliases now",
    responses={401: {"description": "Missing or wrong X-MLflow-Signature, or a stale one."}},
)
async def receive_mlflow_webhook(request: Request, services: ServicesDep) -> MlflowWebhookAccepted:
    """Body: MLflow's webhook delivery. Alias events queue an alias watch of the model they
    name, ``model_version.created`` a version watch of it; every other event is acknowledged
    and ignored."""
    # The raw bytes are signed, so the body is read here, not by FastAPI.
    body = await request.body()
    policy = services.settings.registry
    check_delivery_signature(
        request.headers,
        body,
        policy.webhook_secret.get_secret_value(),
        now=utcnow(),
        max_age_s=policy.webhook_max_age_s,
    )
    event = parse_delivery(body)
    if event.changes_aliases:
        task, what = REGISTRY_WATCH_ALIASES, "alias watch"
    elif event.event == VERSION_CREATED and event.model is not None:
        task, what = REGISTRY_WATCH_VERSIONS, "version watch"
    else:
        return MlflowWebhookAccepted(event=event.event, model=event.model, queued=False)
    try:
        services.sender.send_task(
            task,
            kwargs={"model": event.model},
            queue=QUEUE_MONITORING,
            ignore_result=True,  # nobody waits on it: the rows it writes are the result
        )
    except Exception as exc:
        # Only the error's type: a broker error's text may name hosts.
        raise BrokerUnavailableError(
            f"could not queue the {what} of model {event.model!r}: the broker is "
            f"unreachable ({type(exc).__name__}); the periodic watch still runs"
        ) from exc
    return MlflowWebhookAccepted(event=event.event, model=event.model, queued=True)
