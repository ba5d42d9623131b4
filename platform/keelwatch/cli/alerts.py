"""``keelwatch alerts ...``: alerts (list, show, ack), silences, and notifications given up on.

``list`` and ``show`` read alerts and their history (``show`` accepts a unique fingerprint
prefix); ``ack`` (audited ``alert.ack``), ``silence`` (``silence.create``) and ``unsilence``
(``silence.expire``) act with the CLI actor; ``silences`` lists them.

``dead-letters`` lists notifications given up on; ``dead-letters replay ID`` puts one back to
pending and enqueues its delivery (audited ``notification.replay``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_services, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.entities.alerts import Alert, Matcher
    from keelwatch.schemas.alerts import AlertOut

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


# --- alerts, acknowledgements, silences --------------------------------------------------------


def _alert_json(alert: Alert | AlertOut) -> dict[str, Any]:
    """An alert as the API answers it (``AlertOut``), from the database or the API."""
    from keelwatch.schemas.alerts import AlertOut

    view = alert if isinstance(alert, AlertOut) else AlertOut.of(alert)
    return view.model_dump(mode="json")


def _checked_prefix(prefix: str) -> str:
    """``prefix`` lower-cased, or exit 2 unless it is hexadecimal (a fingerprint or its start)."""
    wanted = prefix.strip().lower()
    if not wanted or not all(c in "0123456789abcdef" for c in wanted):
        fail(f"fingerprint {prefix!r} is not a hexadecimal fingerprint or prefix")
    return wanted


def _resolve_fingerprint(session: Session, prefix: str) -> str:
    """The one fingerprint starting with ``prefix`` (as ``git`` resolves short hashes)."""
    from keelwatch.storage.alerts import fingerprints_with_prefix

    wanted = _checked_prefix(prefix)
    found = fingerprints_with_prefix(session, wanted)
    if not found:
        fail(f"no alert with fingerprint {prefix!r}")
    if len(found) > 1:
        fail(f"fingerprint prefix {prefix!r} matches several alerts; give more characters")
    return str(found[0])


@alerts_app.command("list")
def list_alerts(
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="pending, firing, resolved or inactive (repeatable)."),
    ] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule's alerts.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 500,
    as_json: JsonOption = False,
) -> None:
    """Alerts, most recently evaluated first."""
    from keelwatch.alerting import service
    from keelwatch.entities.alerts import AlertState
    from keelwatch.schemas.alerts import AlertOut

    states = None
    if state:
        known = {s.value: s for s in AlertState}
        unknown = [s for s in state if s not in known]
        if unknown:
            fail(f"unknown --state {unknown[0]!r}; use one of {', '.join(known)}")
        states = [known[s] for s in state]
    alerts: list[AlertOut]
    if (remote := remote_client()) is not None:
        query: dict[str, str | list[str]] = {"state": [s.value for s in states or []]}
        if rule is not None:
            query["rule"] = rule
        alerts = [
            AlertOut.model_validate(item) for item in remote.get_all("/alerts", query, most=limit)
        ]
    else:
        with cli_services() as services, services.db.session() as session:
            stored = service.list_alerts(session, states=states, rule_name=rule, limit=limit)
        alerts = [AlertOut.of(alert) for alert in stored]
    if as_json:
        typer.echo(json.dumps([_alert_json(a) for a in alerts], indent=2))
        return
    # What fits a terminal; values, labels and acknowledgements are in --json and `show`.
    table = Table("fingerprint", "rule", "state", "severity", "model")
    for alert in alerts:
        table.add_row(
            alert.fingerprint[:12],
            alert.rule,
            alert.state,
            alert.severity,
            alert.labels.get("model", ""),
        )
    console.print(table)


@alerts_app.command("show")
def show(
    fingerprint: Annotated[str, typer.Argument(help="Fingerprint or a unique prefix of it.")],
    as_json: JsonOption = False,
) -> None:
    """One alert with its labels, annotations, acknowledgement and history."""
    from keelwatch.alerting import service

    with cli_services() as services, services.db.session() as session:
        alert, history = service.show_alert(session, _resolve_fingerprint(session, fingerprint))
    steps = [
        {
            "at": t.at.isoformat(),
            "episode": t.episode,
            "from": t.from_state.value if t.from_state is not None else None,
            "to": t.to_state.value,
            "value": t.value,
        }
        for t in history
    ]
    if as_json:
        typer.echo(json.dumps({**_alert_json(alert), "history": steps}, indent=2))
        return
    typer.echo(f"alert {alert.fingerprint}")
    typer.echo(f"  rule       {alert.rule_name} ({alert.severity.value})")
    typer.echo(f"  state      {alert.state.value}, episode {alert.episode}, value {alert.value:g}")
    typer.echo("  labels     " + ", ".join(f'{k}="{v}"' for k, v in sorted(alert.labels.items())))
    for key, text in sorted(alert.annotations.items()):
        typer.echo(f"  {key:<10} {text}")
    if alert.runbook_url:
        typer.echo(f"  runbook    {alert.runbook_url}")
    if alert.acknowledgement is not None:
        ack = alert.acknowledgement
        note = f": {ack.comment}" if ack.comment else ""
        typer.echo(f"  acked by   {ack.assignee} at {ack.at.isoformat(timespec='seconds')}{note}")
    typer.echo("  history")
    for step in steps:
        typer.echo(
            f"    {step['at']}  episode {step['episode']}  "
            f"{step['from'] or '(new)'} -> {step['to']}  value {step['value']:g}"
        )


@alerts_app.command("ack")
def ack(
    fingerprint: Annotated[str, typer.Argument(help="Fingerprint or a unique prefix of it.")],
    assignee: Annotated[str, typer.Option("--assignee", help="Who takes the alert.")],
    comment: Annotated[str, typer.Option("--comment", help="A note (audit log).")] = "",
    actor: ActorOption = None,
) -> None:
    """Take an active alert (audited ``alert.ack``); acking again hands it over."""
    from keelwatch.alerting import service
    from keelwatch.entities.time import utcnow

    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        # GET resolves the prefix (404 / ambiguous as locally) before anything changes.
        full = remote.get(f"/alerts/{_checked_prefix(fingerprint)}")["fingerprint"]
        answer = remote.post(f"/alerts/{full}/ack", {"assignee": assignee, "comment": comment})
        full, rule = answer["fingerprint"], answer["rule"]
    else:
        with cli_services() as services:
            who = cli_actor(actor, services.settings)
            with services.db.session() as session:
                full = _resolve_fingerprint(session, fingerprint)
                acked = service.acknowledge(session, full, assignee, who, comment, now=utcnow())
        rule = acked.rule_name
    typer.echo(f"alert {full[:12]} ({rule}) acknowledged by {assignee}")


@alerts_app.command("silence")
def silence(
    match: Annotated[
        list[str],
        typer.Option("--match", help='A label matcher such as model="credit" (repeatable).'),
    ],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 2h, 1d.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (required).")],
    until_resolved: Annotated[
        bool,
        typer.Option("--until-resolved", help="End early once the alerts it mutes resolve."),
    ] = False,
    author: Annotated[
        str | None, typer.Option("--author", help="Author (default: the actor).")
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Mute notifications for alerts matching every --match (audited ``silence.create``)."""
    from keelwatch.alerting import service
    from keelwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
    from keelwatch.alerting.rules import parse_duration
    from keelwatch.entities.time import utcnow
    from keelwatch.errors import InvalidInputError

    matchers: list[Matcher] = []
    for position, text in enumerate(match, start=1):
        try:
            matchers.extend(parse_matchers(text))
        except MatcherSyntaxError as err:
            fail(f"--match #{position}, column {err.column}: {err.reason}")
    try:
        length = parse_duration(duration)
    except InvalidInputError as err:
        fail(f"--for: {err}")
    if length <= timedelta(0):
        fail("--for must be a positive duration")
    now = utcnow()
    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            created = service.create_silence(
                session,
                matchers=matchers,
                author=author or who,
                comment=comment,
                starts_at=now,
                ends_at=now + length,
                actor=who,
                now=now,
                ends_when_resolved=until_resolved,
            )
    until = created.ends_at.isoformat(timespec="seconds")
    extra = " or when its alerts resolve" if until_resolved else ""
    typer.echo(f"silence {created.id} until {until}{extra}")


@alerts_app.command("unsilence")
def unsilence(
    silence_id: Annotated[str, typer.Argument(help="Silence id (from `alerts silence`).")],
    actor: ActorOption = None,
) -> None:
    """End a silence now (audited ``silence.expire``)."""
    from keelwatch.alerting import service
    from keelwatch.entities.time import utcnow

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            ended = service.expire_silence(session, silence_id, who, now=utcnow())
    typer.echo(f"silence {ended.id} ended at {ended.ends_at.isoformat(timespec='seconds')}")


@alerts_app.command("silences")
def silences(
    include_ended: Annotated[
        bool, typer.Option("--all", help="Include silences that have ended.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Silences, newest first: those not ended yet (active or starting later), or --all."""
    from keelwatch.alerting import service
    from keelwatch.alerting.silences import SilenceState, silence_state
    from keelwatch.entities.time import utcnow

    now = utcnow()
    with cli_services() as services, services.db.session() as session:
        found = service.list_silences(session, active_at=None if include_ended else now)
    rows = [
        {
            "id": s.id,
            "matchers": [str(m) for m in s.matchers],
            "author": s.author,
            "comment": s.comment,
            "starts_at": s.starts_at.isoformat(),
            "ends_at": s.ends_at.isoformat(),
            "ends_when_resolved": s.ends_when_resolved,
            "state": silence_state(s, now).value,
            "active": silence_state(s, now) is SilenceState.ACTIVE,
        }
        for s in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    # The whole id, never wrapped: `alerts unsilence` takes it. Comments are in --json.
    table = Table(
        Column("id", no_wrap=True, min_width=36),
        Column("matchers", overflow="fold"),
        "author",
        Column("ends", overflow="fold"),
        "state",
    )
    for silence in found:
        ends = silence.ends_at.isoformat(timespec="seconds")
        table.add_row(
            silence.id,
            ", ".join(str(m) for m in silence.matchers),
            silence.author,
            ends + (" or when resolved" if silence.ends_when_resolved else ""),
            silence_state(silence, now).value,
        )
    console.print(table)
