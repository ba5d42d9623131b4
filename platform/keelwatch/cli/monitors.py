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

from keelwatch.cli.support import ActorOption, cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.entities.monitors import DriftMonitor, DriftResult

console = Console(markup=False)

monitors_app = typer.Typer(
    help="Drift monitors: define, run on the fleet, read result history.", no_args_is_help=True
)
profile_app = typer.Typer(help="Reference profiles attached to model versions.")
monitors_app.add_typer(profile_app, name="profile")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
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
    """The ``--window`` form of a stored window (``time:24h``, not ``time:86400s``)."""
    from keelwatch.monitoring.service.specs import WindowSpec

    spec = WindowSpec.model_validate(window)
    if spec.kind == "time" and spec.last_seconds is not None:
        return f"time:{_duration_text(spec.last_seconds)}"
    return spec.describe()


_DURATION_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60))


def _duration_text(seconds: int) -> str:
    """``3600`` → ``1h``: the largest unit that divides it (the form ``--every`` takes)."""
    for unit, size in _DURATION_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _schedule_text(monitor: DriftMonitor) -> str:
    parts = []
    if monitor.schedule_interval_s:
        parts.append(f"every {_duration_text(monitor.schedule_interval_s)}")
    if monitor.schedule_cron:
        parts.append(f"cron {monitor.schedule_cron} (UTC)")
    return " and ".join(parts) or "on demand"


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}={_value_text(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value_text(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _config_lines(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The monitor config as ``(name, text)`` pairs; unset and empty settings left out."""
    return [
        (key, _value_text(value))
        for key, value in config.items()
        if value is not None and value != {} and value != []
    ]


def _build_config(
    base: dict[str, Any],
    config_json: str | None,
    stattest: str | None,
    column_stattest: list[str] | None,
) -> dict[str, Any]:
    """``--config`` replaces ``base``; ``--stattest`` and ``--column-stattest`` change it."""
    from keelwatch.errors import InvalidInputError

    try:
        config: dict[str, Any] = json.loads(config_json) if config_json else dict(base)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--config is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidInputError("--config must be a JSON object")
    if stattest:
        config["stattest"] = stattest
    for item in column_stattest or []:
        column, sep, stat = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--column-stattest {item!r}: use COLUMN=STAT")
        config["column_stattests"] = {**config.get("column_stattests", {}), column: stat}
    return config


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
    from keelwatch.monitoring.service.service import create_monitor
    from keelwatch.monitoring.service.specs import parse_duration, parse_window

    with cli_services() as services:
        config = _build_config({}, config_json, stattest, column_stattest)
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
        with services.db.session() as session:
            monitor = create_monitor(
                session, services.registry, spec, cli_actor(actor, services.settings)
            )
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
    from keelwatch.monitoring.service.service import list_monitors

    with cli_services() as services, services.db.session() as session:
        monitors = list_monitors(session, model)
    if as_json:
        typer.echo(json.dumps([_monitor_dict(m) for m in monitors], indent=2))
        return
    table = Table(title="drift monitors")
    for column in ("name", "model", "window", "schedule", "enabled"):
        table.add_column(column)
    for m in monitors:
        table.add_row(
            m.name, m.model_ref, _window_text(m.window), _schedule_text(m), _value_text(m.enabled)
        )
    console.print(table)


@monitors_app.command("show")
def show(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show one monitor and its latest result."""
    from keelwatch.monitoring.service.service import get_monitor, monitor_results

    with cli_services() as services, services.db.session() as session:
        monitor = get_monitor(session, name)
        latest = monitor_results(session, name, limit=1)
    data = _monitor_dict(monitor)
    data["latest_result"] = _result_dict(latest[0], full=False) if latest else None
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    lines = [
        ("name", monitor.name),
        ("model", monitor.model_ref),
        ("window", _window_text(monitor.window)),
        ("schedule", _schedule_text(monitor)),
        ("enabled", _value_text(monitor.enabled)),
        *((f"config {key}", text) for key, text in _config_lines(monitor.config)),
        ("description", monitor.description),
        ("created", f"{monitor.created_at:%Y-%m-%d %H:%M:%S} by {monitor.created_by}"),
        ("updated", f"{monitor.updated_at:%Y-%m-%d %H:%M:%S} by {monitor.updated_by}"),
    ]
    width = max(len(key) for key, _ in [*lines, ("latest result", "")])
    for key, text in lines:
        if text:
            console.print(f"{key:>{width}}: {text}")
    if latest:
        r = latest[0]
        console.print(
            f"{'latest result':>{width}}: {r.status.value} (v{r.model_version}, "
            f"{r.window_rows} rows, {r.finished_at:%Y-%m-%d %H:%M:%S})"
        )


@monitors_app.command("delete")
def delete(
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a monitor and its result history."""
    from keelwatch.monitoring.service.service import delete_monitor

    with cli_services() as services, services.db.session() as session:
        monitor = delete_monitor(session, name, cli_actor(actor, services.settings), reason)
    if as_json:
        typer.echo(json.dumps(_monitor_dict(monitor), indent=2))
    else:
        console.print(f"deleted monitor {name}")


@monitors_app.command("update")
def update(
    name: NameArgument,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="name@alias, name/VERSION or name.")
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", "-w", help="rows:N, time:24h, time:SINCE..UNTIL, dataset:PATH or job:ID."
        ),
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Run every interval (e.g. 15m, 1h, 1d).")
    ] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="Cron schedule (UTC).")] = None,
    on_demand: Annotated[
        bool, typer.Option("--on-demand", help="Drop both schedules: run only when asked.")
    ] = False,
    stattest: Annotated[
        str | None, typer.Option("--stattest", help="Force one statistic for every column.")
    ] = None,
    column_stattest: Annotated[
        list[str] | None,
        typer.Option("--column-stattest", help="COLUMN=STAT override (repeatable)."),
    ] = None,
    config_json: Annotated[
        str | None, typer.Option("--config", help="Replace the whole config (JSON).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change some settings of a monitor (the others keep their value), like the API's PATCH."""
    from keelwatch.errors import InvalidInputError
    from keelwatch.monitoring.service.service import get_monitor, update_monitor
    from keelwatch.monitoring.service.specs import parse_duration, parse_window

    with cli_services() as services:
        changes: dict[str, Any] = {}
        if model is not None:
            changes["model"] = model
        if window is not None:
            changes["window"] = parse_window(window).as_json()
        if on_demand and (every or cron):
            raise InvalidInputError("--on-demand drops the schedule: not with --every or --cron")
        if on_demand:
            changes["schedule_interval_s"] = None
            changes["schedule_cron"] = None
        if every is not None:
            changes["schedule_interval_s"] = parse_duration(every)
        if cron is not None:
            changes["schedule_cron"] = cron
        if config_json is not None or stattest or column_stattest:
            with services.db.session() as session:
                current = get_monitor(session, name).config
            changes["config"] = _build_config(current, config_json, stattest, column_stattest)
        if description is not None:
            changes["description"] = description
        if not changes:
            raise InvalidInputError("nothing to change: give at least one option (see -h)")
        with services.db.session() as session:
            monitor = update_monitor(
                session,
                services.registry,
                name,
                changes,
                cli_actor(actor, services.settings),
                reason=reason,
            )
    _print_monitor_change(
        monitor, f"updated monitor {name} ({', '.join(sorted(changes))})", as_json
    )


def _set_enabled(name: str, enabled: bool, reason: str, actor: str | None, as_json: bool) -> None:
    from keelwatch.monitoring.service.service import update_monitor

    with cli_services() as services, services.db.session() as session:
        monitor = update_monitor(
            session,
            services.registry,
            name,
            {"enabled": enabled},
            cli_actor(actor, services.settings),
            reason=reason,
        )
    verb = "enabled" if enabled else "disabled"
    _print_monitor_change(monitor, f"{verb} monitor {name} ({_schedule_text(monitor)})", as_json)


def _print_monitor_change(monitor: DriftMonitor, message: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_monitor_dict(monitor), indent=2))
    else:
        console.print(message)


@monitors_app.command("enable")
def enable(
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let the scheduler run a monitor again."""
    _set_enabled(name, True, reason, actor, as_json)


@monitors_app.command("disable")
def disable(
    name: NameArgument,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop scheduled checks of a monitor (``monitors run`` still works; history is kept)."""
    _set_enabled(name, False, reason, actor, as_json)


@monitors_app.command("run")
def run(
    name: NameArgument,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result and print it.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 600.0,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a drift check now (on the fleet's monitoring queue)."""
    from keelwatch.monitoring.service.service import result_of_job, submit_check
    from keelwatch.storage.jobs import get_job

    with cli_services() as services:
        job = submit_check(
            services.db,
            services.sender,
            services.registry,
            name,
            cli_actor(actor, services.settings),
        )
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
                with services.db.session() as session:
                    result = result_of_job(session, job.id)
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
    from keelwatch.monitoring.drift.report import column_verdict

    table = Table(
        title=f"drift check {result.job_id}: {result.status.value} "
        f"({result.mode}, {result.window_rows:,} rows, v{result.model_version})"
    )
    for column in ("column", "kind", "statistic", "value", "p-value", "q-value", "verdict"):
        table.add_column(column)

    def fmt(value: Any) -> str:
        return "" if value is None else f"{value:.4g}"

    for entry in result.columns.values():
        table.add_row(
            str(entry.get("column")),
            str(entry.get("kind")),
            str(entry.get("statistic") or "-"),
            fmt(entry.get("value")),
            fmt(entry.get("pvalue")),
            fmt(entry.get("qvalue")),
            "DRIFT"
            if entry.get("drifted")
            else column_verdict(str(entry.get("status")), entry.get("drifted")),
        )
    console.print(table)
    if result.error:
        console.print(f"error: {result.error}")
    if result.report.get("detail"):
        console.print(str(result.report["detail"]))
    if result.report_artifact_uri:
        console.print(f"Drift report: {result.report_artifact_uri}")
    if result.mlflow_run_id:
        console.print(f"MLflow run: {result.mlflow_run_id}")


@monitors_app.command("results")
def results(
    name: NameArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """A monitor's result history, newest first."""
    from keelwatch.monitoring.service.service import monitor_results

    with cli_services() as services, services.db.session() as session:
        history = monitor_results(session, name, limit)
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
    from keelwatch.monitoring.service.profiles import attach_reference_profile

    with cli_services() as services, services.db.session() as session:
        info = attach_reference_profile(
            session,
            services.registry,
            services.settings.mlflow,
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
