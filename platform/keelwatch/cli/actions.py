"""``keelwatch actions ...``: what policies did or want to do, and the operator's decisions.

``list`` shows executions newest first. A manual-mode policy (or a guard capping consecutive
automatic actions) leaves an execution ``awaiting_approval``: ``approve`` moves it to
``pending`` and enqueues it after the commit (audited ``action.approve``), ``reject`` ends it
(``action.reject``). Only an execution still awaiting approval can be decided, once.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import ActorOption, cli_actor, cli_services, fail

# No markup: reasons and labels are user text and may contain "[...]".
console = Console(markup=False)

actions_app = typer.Typer(
    help="Policy actions: list executions, approve or reject those awaiting a person.",
    no_args_is_help=True,
)

ReasonRequired = Annotated[
    str, typer.Option("--reason", "-r", help="Why (audit log; required for every decision).")
]


@actions_app.command("list")
def list_actions(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="pending, awaiting_approval, running, succeeded, failed, skipped or rejected.",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Action executions, newest first."""
    from keelwatch.entities.actions import ExecutionStatus
    from keelwatch.schemas.actions import ExecutionOut
    from keelwatch.storage.actions import list_executions

    wanted = None
    if status is not None:
        known = {s.value: s for s in ExecutionStatus}
        if status not in known:
            fail(f"unknown --status {status!r}; use one of {', '.join(known)}")
        wanted = known[status]
    executions: list[ExecutionOut]
    if (remote := remote_client()) is not None:
        query = {"model": model} if model is not None else {}
        if wanted is not None:
            query["status"] = wanted.value
        executions = [
            ExecutionOut.model_validate(item)
            for item in remote.get_all("/actions", query, most=limit)
        ]
    else:
        with cli_services() as services, services.db.session() as session:
            stored = list_executions(session, model=model, status=wanted, limit=limit)
        executions = [ExecutionOut.of(execution) for execution in stored]
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in executions], indent=2))
        return
    # What fits a terminal; the alert, reason and result are in --json.
    table = Table("id", "policy", "action", "model", "status")
    for execution in executions:
        table.add_row(
            str(execution.id),
            execution.policy,
            execution.action,
            execution.model,
            execution.status,
        )
    console.print(table)


def _decide(execution_id: int, *, approve: bool, reason: str, actor: str | None) -> str:
    """Record the decision and its audit entry in one transaction; enqueue after the commit."""
    from keelwatch.actions.service import decide_execution
    from keelwatch.entities.time import utcnow

    if not reason.strip():
        fail("--reason must not be blank")
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        verb = "approve" if approve else "reject"
        answer = remote.post(f"/actions/{execution_id}/{verb}", {"reason": reason})
        done = answer["execution"]
        return f"{done['action']} of {done['model']} (policy {done['policy']})"
    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            decision = decide_execution(
                session, execution_id, approve=approve, actor=who, reason=reason, now=utcnow()
            )
        decision.enqueue(services.sender)
    execution = decision.execution
    return f"{execution.action.value} of {execution.model} (policy {execution.policy})"


@actions_app.command("approve")
def approve(
    execution_id: Annotated[int, typer.Argument(help="Execution id (from `actions list`).")],
    reason: ReasonRequired,
    actor: ActorOption = None,
) -> None:
    """Approve an execution awaiting approval: it runs on a worker now."""
    what = _decide(execution_id, approve=True, reason=reason, actor=actor)
    typer.echo(f"approved action {execution_id}: {what} enqueued")


@actions_app.command("reject")
def reject(
    execution_id: Annotated[int, typer.Argument(help="Execution id (from `actions list`).")],
    reason: ReasonRequired,
    actor: ActorOption = None,
) -> None:
    """Reject an execution awaiting approval: it never runs."""
    what = _decide(execution_id, approve=False, reason=reason, actor=actor)
    typer.echo(f"rejected action {execution_id}: {what}")
