"""``keelwatch notifiers ...``: where alert notifications go (webhook, Slack, PagerDuty,
Alertmanager, email).

Secrets (webhook keys, routing keys, passwords) are accepted on the command line or in a JSON
config and never printed: ``list`` shows them as ``**********``. ``add`` and ``delete`` are
audited (``notifier.add``, ``notifier.delete``); ``test`` sends one synthetic notification
synchronously and prints the outcome (exit 1 when it failed).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.support import ActorOption, cli_actor, cli_services, fail

console = Console(markup=False)

notifiers_app = typer.Typer(
    help="Notification targets: add, list (secrets masked), test, delete.", no_args_is_help=True
)


@notifiers_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Notifier name (the receiver of its route).")],
    type_: Annotated[
        str, typer.Option("--type", help="webhook, slack, pagerduty, alertmanager or email.")
    ],
    url: Annotated[str | None, typer.Option("--url", help="Target URL (HTTP notifiers).")] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="Webhook HMAC key (never shown again).")
    ] = None,
    config_json: Annotated[
        str | None,
        typer.Option("--config", help="Other config fields as a JSON object (merged)."),
    ] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="Comma-separated labels that make a group.")
    ] = "alertname",
    group_wait_s: Annotated[float, typer.Option("--group-wait", help="Seconds.")] = 30.0,
    group_interval_s: Annotated[float, typer.Option("--group-interval", help="Seconds.")] = 300.0,
    repeat_interval_s: Annotated[
        float, typer.Option("--repeat-interval", help="Seconds.")
    ] = 14400.0,
    actor: ActorOption = None,
) -> None:
    """Add a notifier; its config is validated now (a bad field exits 2 naming it)."""
    from keelwatch.alerting.delivery import masked_config
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import add_notifier

    config: dict[str, Any] = {}
    if config_json:
        try:
            loaded = json.loads(config_json)
        except json.JSONDecodeError as exc:
            fail(f"--config is not valid JSON (line {exc.lineno}, column {exc.colno})")
        if not isinstance(loaded, dict):
            fail("--config must be a JSON object")
        config.update(loaded)
    if url is not None:
        config["url"] = url
    if secret is not None:
        config["secret"] = secret
    route = {
        "group_by": [g.strip() for g in group_by.split(",") if g.strip()],
        "group_wait_s": group_wait_s,
        "group_interval_s": group_interval_s,
        "repeat_interval_s": repeat_interval_s,
    }
    with cli_services() as services:
        shown = masked_config(type_, config)  # validates: NotifierConfigError exits 2
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            add_notifier(
                session,
                name=name,
                type=type_,
                config=config,
                route=route,
                created_by=who,
                secrets=services.notifier_secrets,
            )
            record_audit(
                session,
                actor=who,
                action="notifier.add",
                target=f"notifier:{name}",
                details={"type": type_, "target": shown["target"]},
            )
    typer.echo(f"added notifier {name} ({type_} -> {shown['target']})")


@notifiers_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List notifiers with their config, secrets masked."""
    from keelwatch.alerting.delivery import masked_config
    from keelwatch.storage.notifications import list_notifiers

    with cli_services() as services, services.db.session() as session:
        targets = list_notifiers(session, secrets=services.notifier_secrets)
    rows: list[dict[str, Any]] = [
        {
            "name": t.name,
            "type": t.type,
            "config": masked_config(t.type, t.config),
            "route": dict(t.route),
            "created_by": t.created_by,
        }
        for t in targets
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "type", "target", "group_by", "created_by")
    for row in rows:
        table.add_row(
            row["name"],
            row["type"],
            str(row["config"]["target"]),
            ",".join(row["route"].get("group_by", [])),
            row["created_by"],
        )
    console.print(table)


@notifiers_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Notifier name.")], actor: ActorOption = None
) -> None:
    """Delete a notifier (its pending notifications are dead-lettered when they run)."""
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import delete_notifier

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            delete_notifier(session, name)
            record_audit(session, actor=who, action="notifier.delete", target=f"notifier:{name}")
    typer.echo(f"deleted notifier {name}")


@notifiers_app.command("test")
def test(
    name: Annotated[str, typer.Argument(help="Notifier name.")], actor: ActorOption = None
) -> None:
    """Send one synthetic firing notification now and print the outcome (exit 1 on failure;
    audited ``notifier.test``, as through the API)."""
    from keelwatch.alerting.delivery import send_test_notification
    from keelwatch.entities.time import utcnow
    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.notifications import get_notifier

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            target = get_notifier(session, name, secrets=services.notifier_secrets)
        now = utcnow()
        sent = send_test_notification(target, now)
        with services.db.session() as session:
            record_audit(
                session,
                actor=who,
                action="notifier.test",
                target=f"notifier:{name}",
                details={"delivered": sent.delivered},
                at=now,
            )
    if not sent.delivered:
        fail(f"test notification to {name} failed: {sent.error}", code=1)
    for line in sent.attempts:
        typer.echo(line)
    typer.echo(f"test notification to {name} ({sent.target}) delivered")
