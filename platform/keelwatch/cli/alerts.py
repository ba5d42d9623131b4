"""``keelwatch alerts ...``: alerts and their notifications (dead letters for now).

``dead-letters`` lists notifications given up on; ``dead-letters replay ID`` puts one back to
pending and enqueues its delivery (audited ``notification.replay``).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.support import cli_actor, cli_services

console = Console(markup=False)

alerts_app = typer.Typer(help="Alerts and their notifications.", no_args_is_help=True)
dead_letters_app = typer.Typer(
    help="Notifications given up on: list them, replay one.", invoke_without_command=True
)
alerts_app.add_typer(dead_letters_app, name="dead-letters")


@dead_letters_app.callback()
def dead_letters(
    ctx: typer.Context,
    include_replayed: Annotated[
        bool, typer.Option("--all", help="Include dead letters already replayed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List dead letters (oldest first): id, notifier, when, why."""
    if ctx.invoked_subcommand is not None:
        return
    from keelwatch.storage.notifications import list_dead_letters

    with cli_services() as services, services.db.session() as session:
        letters = list_dead_letters(session, include_replayed=include_replayed)
    if as_json:
        rows = [
            {
                "id": d.id,
                "log_id": d.log_id,
                "notifier": d.notifier,
                "reason": d.reason,
                "failed_at": d.failed_at.isoformat(),
                "replayed_at": d.replayed_at.isoformat() if d.replayed_at else None,
            }
            for d in letters
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "notification", "notifier", "failed_at", "reason")
    for d in letters:
        table.add_row(
            str(d.id),
            str(d.log_id),
            d.notifier,
            d.failed_at.isoformat(timespec="seconds"),
            d.reason,
        )
    console.print(table)


@dead_letters_app.command("replay")
def replay(
    dead_letter_id: Annotated[int, typer.Argument(help="Dead letter id (from the list).")],
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who acts, for the audit log.")
    ] = None,
) -> None:
    """Put a dead letter's notification back to pending and enqueue its delivery."""
    from keelwatch.alerting.delivery import enqueue_delivery
    from keelwatch.entities.time import utcnow
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import replay_dead_letter

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            letter = replay_dead_letter(session, dead_letter_id, utcnow())
            record_audit(
                session,
                actor=who,
                action="notification.replay",
                target=f"notification:{letter.log_id}",
                details={"dead_letter": letter.id, "notifier": letter.notifier},
            )
        enqueue_delivery(services.sender, letter.log_id)
    typer.echo(f"replayed dead letter {letter.id}: notification {letter.log_id} re-enqueued")
