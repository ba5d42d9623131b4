"""``keelwatch eval schedule set|list|delete``: evaluation schedules (cron, UTC).

``set`` creates a schedule or replaces its fields; beat reads the table on every tick, so the
change takes effect without restarting anything. A schedule evaluates a model on a dataset
(``--dataset``), computes its realized performance (``--realized --window 24h``) or audits it
for bias (``--attributes gender,age_band --window 24h``). ``list``
also runs through the API (``GET /evaluations/schedules``) when ``KEELWATCH_API_URL`` is set;
``set`` and ``delete`` open the database (a local administrator) or use the API routes
``PUT``/``DELETE /evaluations/schedules/{name}`` from any HTTP client. ``cli.app`` mounts this
group as ``eval schedule``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.remote import remote_client
from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_errors, cli_services

if TYPE_CHECKING:
    from keelwatch.schemas.eval_schedules import ScheduleOut

schedule_app = typer.Typer(
    help="Evaluation schedules: evaluate a model on a dataset, its realized performance, or a "
    "bias audit, on a cron (UTC).",
    no_args_is_help=True,
)
console = Console(markup=False)  # names and crons are user input


@schedule_app.command("set")
def set_schedule(
    name: Annotated[str, typer.Argument(help="Schedule name (unique).")],
    model: Annotated[
        str, typer.Option("--model", help="'name' (its champion), 'name@alias', 'name/version'.")
    ],
    cron: Annotated[str, typer.Option("--cron", help="Cron in UTC, e.g. '0 * * * *'.")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Evaluation dataset 'name' or 'name:N'.")
    ] = None,
    suites: Annotated[
        list[str] | None,
        typer.Option("--suite", help="Suite to run (repeatable; default: the task's)."),
    ] = None,
    realized: Annotated[
        bool, typer.Option("--realized", help="Realized performance instead of a dataset.")
    ] = False,
    window: Annotated[
        str | None,
        typer.Option("--window", help="Realized or audit window: 24h, 30m, 7d, 90s."),
    ] = None,
    attributes: Annotated[
        str | None,
        typer.Option(
            "--attributes",
            help="A bias audit of the window across these sensitive attributes "
            "(comma-separated, e.g. gender,age_band).",
        ),
    ] = None,
    disable: Annotated[bool, typer.Option("--disable", help="Store it disabled.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create schedule NAME or replace its fields."""
    from keelwatch.errors import InvalidInputError
    from keelwatch.monitoring.evaluation.realized import parse_window
    from keelwatch.monitoring.service import eval_schedules as service
    from keelwatch.schemas.eval_schedules import ScheduleOut

    with cli_errors():
        names = [a.strip() for a in attributes.split(",")] if attributes is not None else []
        audit = attributes is not None
        if realized and dataset is not None:
            raise InvalidInputError("--realized and --dataset exclude each other")
        if audit and (realized or dataset is not None):
            raise InvalidInputError("--attributes excludes --realized and --dataset")
        if not (realized or audit) and window is not None:
            raise InvalidInputError("--window needs --realized or --attributes")
        window_s = parse_window(window) if window is not None else None
    kind = "audit" if audit else "realized" if realized else "evaluation"
    with cli_services() as services, services.db.session() as session:
        schedule = service.set_schedule(
            session,
            name=name,
            model=model,
            cron=cron,
            kind=kind,
            dataset=dataset,
            suites=suites or (),
            window_s=window_s,
            attributes=names,
            enabled=not disable,
            actor=cli_actor(actor, services.settings),
            reason=reason,
        )
    out = ScheduleOut.from_entity(schedule)
    if as_json:
        typer.echo(json.dumps(out.model_dump(mode="json"), indent=2))
        return
    state = "enabled" if out.enabled else "disabled"
    typer.echo(f"schedule {out.name}: {_what(out)} on '{out.cron}' (UTC), {state}")


@schedule_app.command("list")
def list_schedules(as_json: JsonOption = False) -> None:
    """Every evaluation schedule."""
    from keelwatch.schemas.eval_schedules import ScheduleOut

    schedules: list[ScheduleOut]
    if (remote := remote_client()) is not None:
        schedules = [ScheduleOut.model_validate(s) for s in remote.get("/evaluations/schedules")]
    else:
        from keelwatch.monitoring.service import eval_schedules as service

        with cli_services() as services, services.db.session() as session:
            schedules = [
                ScheduleOut.from_entity(s, service.list_firings(session, s.name, limit=1))
                for s in service.list_schedules(session)
            ]
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in schedules], indent=2))
        return
    table = Table("name", "model", "cron (UTC)", "what", "enabled", "last slot", "updated by")
    for s in schedules:
        last = s.firings[0] if s.firings else None
        fired = "—" if last is None else f"{last.slot:%Y-%m-%d %H:%M} {last.job_id or last.error}"
        table.add_row(
            s.name, s.model, s.cron, _what(s), "yes" if s.enabled else "no", fired, s.updated_by
        )
    console.print(table)


@schedule_app.command("delete")
def delete_schedule(
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
) -> None:
    """Delete schedule NAME (and its firing history)."""
    from keelwatch.monitoring.service import eval_schedules as service

    with cli_services() as services, services.db.session() as session:
        service.delete_schedule(
            session, name, actor=cli_actor(actor, services.settings), reason=reason
        )
    typer.echo(f"schedule {name} deleted")


def _what(schedule: ScheduleOut) -> str:
    if schedule.kind == "realized":
        return f"realized performance over {schedule.window}"
    if schedule.kind == "audit":
        return f"bias audit of {', '.join(schedule.attributes)} over {schedule.window}"
    suites = ", ".join(schedule.suites) or "default suites"
    return f"evaluation on {schedule.dataset} ({suites})"
