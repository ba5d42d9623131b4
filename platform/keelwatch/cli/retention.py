"""``keelwatch retention show|purge``: the retention policy (``privacy.retention_days``, days per
table, 0 = keep forever) and purging what is past it now.

``show`` prints each table's days, cutoff and how many rows a purge now would delete; ``purge``
deletes them in batches (each committed on its own) and audits the counts
(``retention.purge``); ``purge --dry-run`` counts only. With ``KEELWATCH_API_URL`` set both go
through the API (``GET /privacy/retention``, ``POST /privacy/purge``, which needs admin).

Exit codes: 0 done, 2 with one line for a bad policy or option, 1 when a service does not
answer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.schemas.privacy import PurgeOut, RetentionOut

retention_app = typer.Typer(
    help="Data retention: days each table keeps its rows, and purging older ones.",
    no_args_is_help=True,
)
console = Console()
#: As ``PurgeIn.reason`` allows.
MAX_REASON_LENGTH = 1000


@retention_app.command("show")
def retention_show(as_json: JsonOption = False) -> None:
    """Days each table keeps its rows and how many rows a purge now would delete."""
    from keelwatch.schemas.privacy import RetentionOut

    if (remote := remote_client()) is not None:
        answer = RetentionOut.model_validate(remote.get("/privacy/retention"))
    else:
        answer = _show_local()
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json"), indent=2))
        return
    table = Table("table", "days", "cutoff", "expired rows", title="retention")
    for row in answer.tables:
        days = "forever" if row.days == 0 else str(row.days)
        cutoff = row.cutoff.isoformat(timespec="seconds") if row.cutoff else "-"
        expired = f"{row.expired_rows:,}" if row.available else "(not in this deployment)"
        table.add_row(row.table, days, cutoff, expired)
    console.print(table)
    overrides = ", ".join(f"{k}={v}" for k, v in sorted(answer.column_redaction.items()))
    console.print(
        f"prediction log PII redaction: {answer.redact_prediction_log}"
        + (f" (columns: {overrides})" if overrides else "")
        + f"; scheduled purge every {answer.purge_interval_s:g}s",
        soft_wrap=True,
    )


def _show_local() -> RetentionOut:
    from datetime import UTC, datetime

    from keelwatch.monitoring.service.retention import retention_status
    from keelwatch.schemas.privacy import RetentionOut

    with cli_services() as services:
        privacy = services.settings.privacy
        now = datetime.now(UTC)
        with services.db.session() as session:
            status = retention_status(session, privacy.retention_days, now=now)
    return RetentionOut.of(privacy, now, status)


@retention_app.command("purge")
def retention_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete every row older than its table's retention now (audited)."""
    from keelwatch.schemas.privacy import PurgeIn, PurgeOut

    if len(reason) > MAX_REASON_LENGTH:
        fail(f"--reason is at most {MAX_REASON_LENGTH} characters")
    body = PurgeIn(dry_run=dry_run, reason=reason)
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        answer = PurgeOut.model_validate(remote.post("/privacy/purge", body.model_dump()))
    else:
        answer = _purge_local(body.dry_run, body.reason, actor)
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json"), indent=2))
        return
    verb = "would delete" if answer.dry_run else "deleted"
    for table, rows in answer.deleted.items():
        typer.echo(f"{table}: {verb} {rows:,} rows")
    typer.echo(f"total: {verb} {answer.total:,} rows")


def _purge_local(dry_run: bool, reason: str, actor: str | None) -> PurgeOut:
    from datetime import UTC, datetime

    from keelwatch.monitoring.service.retention import purge_expired
    from keelwatch.schemas.privacy import PurgeOut

    with cli_services() as services:
        now = datetime.now(UTC)
        with services.db.session() as session:
            deleted = purge_expired(
                session,
                services.settings.privacy.retention_days,
                now=now,
                actor=cli_actor(actor, services.settings),
                dry_run=dry_run,
                reason=reason,
                on_batch=session.commit,
            )
    return PurgeOut(dry_run=dry_run, at=now, deleted=deleted, total=sum(deleted.values()))
