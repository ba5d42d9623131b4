"""``keelwatch rules ...``: alerting rules from a YAML file (apply), list, delete.

``apply`` validates the whole file against the signal catalogue before writing anything: a
mistake exits 2 with one line naming ``file:line:column``, the rule and the field. ``apply`` and
``delete`` are audited (``rule.apply``, ``rule.delete``) with the CLI actor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.support import (
    ActorOption,
    JsonOption,
    cli_actor,
    cli_services,
    print_applied,
    read_definitions,
)

# No markup: rule names and annotations are user text and may contain "[...]".
console = Console(markup=False)

rules_app = typer.Typer(
    help="Alerting rules: apply a YAML file, list, delete.", no_args_is_help=True
)


@rules_app.command("apply")
def apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML file with a `rules:` list.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    as_json: JsonOption = False,
    actor: ActorOption = None,
) -> None:
    """Validate every rule in FILE, then create or update them by name (others are kept)."""
    from keelwatch.alerting.service import apply_rules
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.entities.time import utcnow

    text = read_definitions(file, "rules")
    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            outcome = apply_rules(
                session,
                text,
                who,
                known_signal_names(),
                now=utcnow(),
                source=str(file),
                reason=reason,
            )
    print_applied(outcome, "rules", file, as_json=as_json)


@rules_app.command("list")
def list_rules(as_json: JsonOption = False) -> None:
    """Every rule, by name: signal, condition, for, severity (--json: who changed it last)."""
    from keelwatch.alerting.rules import format_duration, rule_to_dict
    from keelwatch.alerting.service import list_rules as stored_rules

    with cli_services() as services, services.db.session() as session:
        rules = stored_rules(session)
    if as_json:
        rows = [
            {
                **rule_to_dict(stored.rule),
                "source": stored.source,
                "updated_by": stored.updated_by,
                "updated_at": stored.updated_at.isoformat(),
            }
            for stored in rules
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    # Who changed a rule and when is in --json; the table keeps to what fits a terminal.
    table = Table("name", "signal", "condition", "for", "severity")
    for stored in rules:
        rule = stored.rule
        selector = ",".join(str(m) for m in rule.matchers)
        signal = f"{rule.signal}{{{selector}}}" if selector else rule.signal
        table.add_row(
            rule.name,
            signal,
            f"{rule.comparison.value} {rule.threshold:g}",
            format_duration(rule.hold_for),
            rule.severity.value,
        )
    console.print(table)


@rules_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Rule name.")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (audit log; required for every change).")
    ],
    actor: ActorOption = None,
) -> None:
    """Delete a rule; its active alerts resolve on the next beat tick."""
    from keelwatch.alerting.service import delete_rule
    from keelwatch.entities.time import utcnow

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            delete_rule(session, name, who, now=utcnow(), reason=reason)
    typer.echo(f"deleted rule {name}")
