"""``keelwatch policies ...``: action policies from a YAML file (apply), list, delete.

``apply`` validates the whole file before writing anything: a mistake exits 2 with one line
naming the file, the policy and the field (and the line and column of a YAML syntax error).
``apply`` and ``delete`` are audited (``policy.apply``, ``policy.delete``) with the CLI actor.
The file format is described in :mod:`keelwatch.actions.policies`.
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
    fail,
    print_applied,
    read_definitions,
)

# No markup: policy names and matchers are user text and may contain "[...]".
console = Console(markup=False)

policies_app = typer.Typer(
    help="Action policies: apply a YAML file, list, delete.", no_args_is_help=True
)


@policies_app.command("apply")
def apply(
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML file with a `policies:` list.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    as_json: JsonOption = False,
    actor: ActorOption = None,
) -> None:
    """Validate every policy in FILE, then create or update them by name (others are kept)."""
    from keelwatch.actions.policies import PolicyError
    from keelwatch.actions.service import apply_policies
    from keelwatch.entities.time import utcnow

    text = read_definitions(file, "policies")
    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        try:
            with services.db.session() as session:
                outcome = apply_policies(session, text, who, now=utcnow(), reason=reason)
        except PolicyError as err:
            fail(f"{file}: {err}")
    print_applied(outcome, "policies", file, as_json=as_json)


@policies_app.command("list")
def list_policies(as_json: JsonOption = False) -> None:
    """Every policy, by name: what it matches, its action and mode (--json: guards, params)."""
    from keelwatch.actions.policies import policy_to_dict
    from keelwatch.actions.service import list_policies as stored_policies

    with cli_services() as services, services.db.session() as session:
        policies = stored_policies(session)
    if as_json:
        typer.echo(json.dumps([policy_to_dict(p) for p in policies], indent=2))
        return
    # Guards and params are in --json; the table keeps to what fits a terminal.
    table = Table("name", "match", "action", "mode")
    for policy in policies:
        match = ", ".join(str(m) for m in policy.matchers) or "(every alert)"
        table.add_row(policy.name, match, policy.action.value, policy.mode.value)
    console.print(table)


@policies_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Policy name.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
) -> None:
    """Delete a policy; executions it already created (and their history) are kept."""
    from keelwatch.actions.service import delete_policy
    from keelwatch.entities.time import utcnow

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            delete_policy(session, name, who, now=utcnow(), reason=reason)
    typer.echo(f"deleted policy {name}")
