"""Privacy: the retention policy and the purge.

``GET /privacy/retention`` (viewer) shows the policy (``privacy.retention_days``, days per
table, 0 = keep forever; the prediction log's PII redaction) and how many rows each table would
lose now. ``POST /privacy/purge`` (admin) deletes them in batches, each committed on its own,
and audits the counts (``retention.purge``); ``dry_run`` counts only. The scheduled purge
(beat, ``privacy.purge_interval_s``) does the same through the worker.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.monitoring.service.retention import purge_expired, retention_status
from keelwatch.schemas.privacy import PurgeIn, PurgeOut, RetentionOut

router = APIRouter(prefix="/privacy", tags=["privacy"])


@router.get("/retention", response_model=RetentionOut, summary="The retention policy")
def get_retention(services: ServicesDep) -> RetentionOut:
    """Days each table keeps its rows, and how many rows a purge now would delete."""
    privacy = services.settings.privacy
    now = datetime.now(UTC)
    with services.db.session() as session:
        status = retention_status(session, privacy.retention_days, now=now)
    return RetentionOut.of(privacy, now, status)


@router.post("/purge", response_model=PurgeOut, summary="Purge expired rows now")
def purge(body: PurgeIn, services: ServicesDep, actor: ActorDep) -> PurgeOut:
    """Delete every row older than its table's retention, in batches; audited
    (``retention.purge``, counts per table). ``dry_run``: count only, nothing audited."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        deleted = purge_expired(
            session,
            services.settings.privacy.retention_days,
            now=now,
            actor=actor,
            dry_run=body.dry_run,
            reason=body.reason,
            on_batch=session.commit,
        )
    return PurgeOut(dry_run=body.dry_run, at=now, deleted=deleted, total=sum(deleted.values()))
