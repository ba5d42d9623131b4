"""``keelwatch monitors ...``: drift monitors, their checks and result history.

Every mutating command records an audit entry (actor: ``--actor``, else ``KEELWATCH_ACTOR``,
else the OS user). Bad input exits with code 2 and a one-line message. Heavy imports (MLflow,
pandas, the drift engine) happen inside the commands, so ``keelwatch --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli_support import cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.monitors.entities import DriftMonitor, DriftResult

console = Console(markup=False)

monitors_app = typer.Typer(
    help="Drift monitors: define, run on the fleet, read result history.", no_args_is_help=True
)
profile_app = typer.Typer(help="Reference profiles attached to model versions.")
monitors_app.add_typer(profile_app, name="profile")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who acts, for the audit log (default: settings, OS user)."),
]
NameArgument = Annotated[str, typer.Argument(help="Monitor name.")]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _monitor_dict(monitor: DriftMonitor) -> dict[str, Any]:
    return _jsonable(asdict(monitor))  # type: ignore[no-any-return]


def _result_dict(result: DriftResult, *, full: bool = True) -> dict[str, Any]:
    data = _jsonable(asdict(result))
    if not full:
        data.pop("report", None)
    return data  # type: ignore[no-any-return]


def _window_text(window: dict[str, Any]) -> str:
    from keelwatch.monitors.specs import WindowSpec

    return WindowSpec.model_validate(window).describe()


@monitors_app.command("create")
def create(
    name: NameArgument,
    model: Annotated[str, typer.Option("--model", "-m", help="name@alias, name/VERSION or name.")],
    window: Annotated[
        str,
        typer.Option(
            "--window", "-w", help="rows:N, time:24h, time:SINCE..UNTIL, dataset:PATH or job:ID."
        ),
    ],
    every: Annotated[
        str | None, typer.Option("--every", help="Run every interval (e.g. 15m, 1h, 1d).")
    ] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="Cron schedule (UTC).")] = None,
    stattest: Annotated[
        str | None, typer.Option("--stattest", help="Force one statistic for every column.")
    ] = None,
    column_stattest: Annotated[
        list[str] | None,
        typer.Option("--column-stattest", help="COLUMN=STAT override (repeatable)."),
    ] = None,
    config_json: Annotated[
        str | None, typer.Option("--config", help="Full monitor config as JSON.")
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a drift monitor."""
    from keelwatch.errors import InvalidInputError
    from keelwatch.monitors.service import create_monitor
    from keelwatch.monitors.specs import parse_duration, parse_window

    with cli_services() as services:
        try:
            config: dict[str, Any] = json.loads(config_json) if config_json else {}
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"--config is not valid JSON: {exc}") from exc
        if stattest:
            config["stattest"] = stattest
        for item in column_stattest or []:
            column, sep, stat = item.partition("=")
            if not sep:
                raise InvalidInputError(f"--column-stattest {item!r}: use COLUMN=STAT")
            config.setdefault("column_stattests", {})[column] = stat
        spec = {
            "name": name,
            "model": model,
            "window": parse_window(window).as_json(),
            "schedule_interval_s": parse_duration(every) if every else None,
            "schedule_cron": cron,
            "config": config,
            "enabled": not disabled,
            "description": description,
        }
        monitor = create_monitor(services, spec, cli_actor(actor, services.settings))
    if as_json:
        typer.echo(json.dumps(_monitor_dict(monitor), indent=2))
    else:
        console.print(
            f"created monitor {monitor.name} ({monitor.model_ref}, {_window_text(monitor.window)})"
        )


@monitors_app.command("list")
def list_(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List monitors."""
    from keelwatch.monitors.service import list_monitors

    with cli_services() as services:
        monitors = list_monitors(services, model)
    if as_json:
        typer.echo(json.dumps([_monitor_dict(m) for m in monitors], indent=2))
        return
    table = Table(title="drift monitors")
    for column in ("name", "model", "window", "schedule", "enabled"):
        table.add_column(column)
    for m in monitors:
        schedule = m.schedule_cron or (
            f"every {m.schedule_interval_s}s" if m.schedule_interval_s else "on demand"
        )
        table.add_row(m.name, m.model_ref, _window_text(m.window), schedule, str(m.enabled).lower())
    console.print(table)


@monitors_app.command("show")
def show(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show one monitor and its latest result."""
    from keelwatch.monitors.service import get_monitor, monitor_results

    with cli_services() as services:
        monitor = get_monitor(services, name)
        latest = monitor_results(services, name, limit=1)
    data = _monitor_dict(monitor)
    data["latest_result"] = _result_dict(latest[0], full=False) if latest else None
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key in (
        "name",
        "model_ref",
        "window",
        "schedule_interval_s",
        "schedule_cron",
        "enabled",
        "config",
        "created_by",
        "updated_at",
    ):
        console.print(f"{key:>20}: {data[key]}")
    if latest:
        r = latest[0]
        console.print(
            f"{'latest result':>20}: {r.status.value} (v{r.model_version}, "
            f"{r.window_rows} rows, {r.finished_at:%Y-%m-%d %H:%M:%S})"
        )


@monitors_app.command("delete")
def delete(
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
) -> None:
    """Delete a monitor and its result history."""
    from keelwatch.monitors.service import delete_monitor

    with cli_services() as services:
        delete_monitor(services, name, cli_actor(actor, services.settings), reason)
    console.print(f"deleted monitor {name}")


@monitors_app.command("run")
def run(
    name: NameArgument,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result and print it.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 600.0,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a drift check now (on the fleet's monitoring queue)."""
    from keelwatch.monitors.service import result_of_job, submit_check
    from keelwatch.storage.jobs import get_job

    with cli_services() as services:
        job = submit_check(services, name, cli_actor(actor, services.settings))
        if not wait:
            if as_json:
                typer.echo(json.dumps({"job_id": job.id, "status": job.status.value}))
            else:
                console.print(f"submitted drift check {job.id} for monitor {name}")
            return
        deadline = time.monotonic() + timeout
        result = None
        with console.status(f"drift check {job.id}"):
            while time.monotonic() < deadline:
                result = result_of_job(services, job.id)
                with services.db.session() as session:
                    current = get_job(session, job.id)
                if result is not None and (result.mlflow_run_id or current.finished):
                    break
                time.sleep(0.5)
        if result is None:
            fail(f"drift check {job.id} did not finish within {timeout:.0f}s (still running)")
    if as_json:
        typer.echo(json.dumps(_result_dict(result), indent=2))
        return
    print_result(result)
    if result.status.value == "error":
        raise typer.Exit(1)


def print_result(result: DriftResult) -> None:
    """The per-column table of one check."""
    table = Table(
        title=f"drift check {result.job_id}: {result.status.value} "
        f"({result.mode}, {result.window_rows:,} rows, v{result.model_version})"
    )
    for column in ("column", "kind", "statistic", "value", "p-value", "q-value", "drifted"):
        table.add_column(column)

    def fmt(value: Any) -> str:
        return "" if value is None else f"{value:.4g}"

    for entry in result.columns.values():
        table.add_row(
            str(entry.get("column")),
            str(entry.get("kind")),
            str(entry.get("statistic") or entry.get("status")),
            fmt(entry.get("value")),
            fmt(entry.get("pvalue")),
            fmt(entry.get("qvalue")),
            "DRIFT" if entry.get("drifted") else "",
        )
    console.print(table)
    if result.error:
        console.print(f"error: {result.error}")
    if result.report.get("detail"):
        console.print(str(result.report["detail"]))
    if result.report_artifact_uri:
        console.print(f"Evidently report: {result.report_artifact_uri}")
    if result.mlflow_run_id:
        console.print(f"MLflow run: {result.mlflow_run_id}")


@monitors_app.command("results")
def results(
    name: NameArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """A monitor's result history, newest first."""
    from keelwatch.monitors.service import monitor_results

    with cli_services() as services:
        history = monitor_results(services, name, limit)
    if as_json:
        typer.echo(json.dumps([_result_dict(r) for r in history], indent=2))
        return
    table = Table(title=f"results of {name} (newest first)")
    for column in ("finished", "status", "version", "rows", "share drifted", "drifted", "mode"):
        table.add_column(column)
    for r in history:
        drifted = [c for c, entry in r.columns.items() if entry.get("drifted")]
        share = "" if r.share_drifted is None else f"{r.share_drifted:.2f}"
        table.add_row(
            f"{r.finished_at:%Y-%m-%d %H:%M:%S}",
            r.status.value,
            r.model_version,
            f"{r.window_rows:,}",
            share,
            ", ".join(drifted),
            r.mode,
        )
    console.print(table)


@profile_app.command("attach")
def profile_attach(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    data: Annotated[str, typer.Argument(help="Training data: Parquet or CSV file.")],
    target: Annotated[
        str | None,
        typer.Option("--target", help="Ground-truth column (target drift once labels arrive)."),
    ] = None,
    predictions: Annotated[
        bool,
        typer.Option(
            "--predictions/--no-predictions",
            help="Score DATA with the version's model for prediction drift.",
        ),
    ] = True,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compute a reference profile from DATA and attach it to MODEL VERSION (or refresh it).

    The profile holds the model's inputs, its predictions on DATA and the --target column, so
    monitors report feature, prediction and target drift apart.
    """
    from keelwatch.monitors.profiles import attach_reference_profile

    with cli_services() as services:
        info = attach_reference_profile(
            services,
            model,
            version,
            data,
            cli_actor(actor, services.settings),
            reason=reason,
            target=target,
            predictions=predictions,
        )
    if as_json:
        typer.echo(json.dumps(_jsonable(asdict(info)), indent=2))
    else:
        console.print(
            f"reference profile of {model} v{version}: {info.rows:,} rows, "
            f"{len(info.columns)} columns → {info.artifact_uri}"
        )


@profile_app.command("show")
def profile_show(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    as_json: JsonOption = False,
) -> None:
    """Show the reference profile attached to MODEL VERSION."""
    from keelwatch.storage.profiles import get_reference_profile

    with cli_services() as services, services.db.session() as session:
        info = get_reference_profile(session, model, version)
    data = _jsonable(asdict(info))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        console.print(f"{key:>14}: {value}")
