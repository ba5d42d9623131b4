"""Operations commands: schema upgrades, running services, reading the audit and prediction logs.

``keelwatch up`` runs the whole local stack (API, worker, beat, MLflow UI) under a supervisor;
``api``, ``worker``, ``beat`` and ``mlflow-ui`` run one service each in the foreground, which is
what containers and process managers want.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from keelwatch.cli.commands import (
    MLFLOW_SERVER_ENV_DEFAULTS,
    ROLE_QUEUES,
    api_command,
    beat_command,
    display_host,
    mlflow_server_command,
    mlflow_server_environment,
    prepare_mlflow_store,
    worker_command,
)
from keelwatch.cli.environment import child_environment, iter_env_vars, settings_environment
from keelwatch.cli.lock import StackLock, StackRunningError
from keelwatch.cli.predictions import predictions_label
from keelwatch.cli.supervisor import ChildFailedError, ChildSpec, Supervisor
from keelwatch.cli.support import cli_actor, cli_errors, fail, open_data_dir, stderr_console

if TYPE_CHECKING:
    from keelwatch.settings import Settings

console = Console()

db_app = typer.Typer(help="Keelwatch's own database schema.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: who changed what, when and why.", no_args_is_help=True)
predictions_app = typer.Typer(
    help="The prediction log (sampled scored rows).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Mount the ops commands on the root CLI."""
    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")
    app.add_typer(predictions_app, name="predictions")
    app.command("up")(up)
    app.command("api")(api)
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("mlflow-ui")(mlflow_ui)
    app.command("config")(config)


def load_cli_settings() -> Settings:
    """Settings from ``KEELWATCH_*``; a malformed variable is a clear error, not a traceback."""
    from pydantic import ValidationError

    from keelwatch.settings import load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        fail(f"invalid KEELWATCH_* settings: {problems}")


def _database_error(exc: Exception, url: str) -> str:
    from sqlalchemy.engine import make_url

    safe = make_url(url).render_as_string(hide_password=True)
    first = str(getattr(exc, "orig", exc)).strip().splitlines()
    return f"cannot reach the database at {safe}: {first[0] if first else type(exc).__name__}"


# --------------------------------------------------------------------------- db


def upgrade_schema(
    settings: Settings, *, actor: str, revision: str = "head"
) -> tuple[str | None, str | None]:
    """Upgrade the schema; audit the change when there was one. Returns (before, after)."""
    from sqlalchemy.exc import OperationalError

    from keelwatch.storage.audit import record_audit
    from keelwatch.storage.db import Database, current_revision, upgrade_database

    url = settings.database.url
    open_data_dir(settings, create=True)  # says which data dir it creates, if it does
    try:
        before = current_revision(url)
        upgrade_database(url, revision)
        after = current_revision(url)
    except OperationalError as exc:
        fail(_database_error(exc, url))
    if before != after:
        database = Database(url)
        try:
            with database.session() as session:
                record_audit(
                    session,
                    actor=actor,
                    action="db.upgrade",
                    target="database",
                    reason=f"schema upgrade to {revision}",
                    details={"from": before, "to": after},
                )
        finally:
            database.dispose()
    return before, after


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target Alembic revision.")] = "head",
    actor: Annotated[str | None, typer.Option(help="Who runs it (audit log).")] = None,
) -> None:
    """Create or upgrade Keelwatch's tables (idempotent)."""
    settings = load_cli_settings()
    with cli_errors():
        before, after = upgrade_schema(
            settings, actor=cli_actor(actor, settings), revision=revision
        )
    if before == after:
        console.print(f"database already at revision [bold]{after}[/bold]")
    else:
        console.print(f"database upgraded: {before or '<empty>'} → [bold]{after}[/bold]")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the one this code expects."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import OperationalError

    from keelwatch.storage.db import alembic_config, current_revision

    settings = load_cli_settings()
    url = settings.database.url
    try:
        current = current_revision(url)
    except OperationalError as exc:
        fail(_database_error(exc, url))
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    console.print(f"current: {current or '<empty>'}")
    console.print(f"head:    {head}")
    if current != head:
        stderr_console.print("[yellow]schema is behind: run `keelwatch db upgrade`[/yellow]")
        raise typer.Exit(1)


# --------------------------------------------------------------------------- services


def _exec(argv: list[str], settings: Settings) -> None:
    # Replace this process: signals and exit codes then belong to the service itself.
    os.execve(argv[0], argv, child_environment(settings))


def up(
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Do not start the MLflow UI.")
    ] = False,
    no_beat: Annotated[bool, typer.Option("--no-beat", help="Do not start celery beat.")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not start a worker.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    ready_timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait for the services to answer.")
    ] = 120.0,
) -> None:
    """Run the local stack: db upgrade, then API, worker, beat and the MLflow UI."""
    settings = load_cli_settings()
    run_dir = settings.data_dir / "run"
    # First, before reading or writing anything of a stack that may already run here.
    lock = StackLock(run_dir / "up.lock")
    try:
        lock.acquire()
    except StackRunningError as exc:
        fail(str(exc))
    try:
        _run_stack(
            settings,
            run_dir,
            no_mlflow=no_mlflow,
            no_beat=no_beat,
            no_worker=no_worker,
            concurrency=concurrency,
            ready_timeout=ready_timeout,
        )
    finally:
        lock.release()


def _run_stack(
    settings: Settings,
    run_dir: Path,
    *,
    no_mlflow: bool,
    no_beat: bool,
    no_worker: bool,
    concurrency: int,
    ready_timeout: float,
) -> None:
    from keelwatch.auth.local import prepare_local_admin_token

    with cli_errors():
        upgrade_schema(settings, actor=cli_actor(None, settings))
        # Authentication is on by default: the local admin token, created on first start.
        admin_token = prepare_local_admin_token(settings, actor=cli_actor(None, settings))
    console.print(f"admin API token: {admin_token.describe()}", highlight=False, soft_wrap=True)
    if not no_mlflow or not no_worker:
        with console.status("preparing the MLflow store"):
            prepare_mlflow_store(settings)

    api_host = display_host(settings.api.host)
    api_url = f"http://{api_host}:{settings.api.port}"
    mlflow_url = f"http://127.0.0.1:{settings.api.mlflow_ui_port}"
    specs = [ChildSpec("api", api_command(settings), f"{api_url}/healthz", api_url)]
    if not no_worker:
        queues = ",".join(ROLE_QUEUES["all"])
        argv = worker_command(role="all", concurrency=concurrency, hostname="keelwatch-up@%h")
        specs.append(ChildSpec("worker", argv, None, f"queues {queues}, {concurrency} processes"))
    if not no_beat:
        specs.append(ChildSpec("beat", beat_command(settings), None, "periodic tasks"))
    if not no_mlflow:
        argv = mlflow_server_command(settings)
        specs.append(
            ChildSpec(
                "mlflow",
                argv,
                f"{mlflow_url}/health",
                mlflow_url,
                env_defaults=dict(MLFLOW_SERVER_ENV_DEFAULTS),
            )
        )

    supervisor = Supervisor(
        specs,
        env=child_environment(settings),
        log_dir=settings.data_dir / "logs",
        state_file=run_dir / "up.json",
    )
    supervisor.install_signal_handlers()
    supervisor.start()
    exit_code = 0
    try:
        with console.status("waiting for the services to answer"):
            supervisor.wait_ready(ready_timeout)
        if not supervisor.stop_requested:
            console.print(_up_panel(settings, specs, api_url))
            supervisor.run_until_stopped()
    except (ChildFailedError, TimeoutError) as exc:
        stderr_console.print(f"[bold red]error:[/bold red] {exc}", markup=True, highlight=False)
        exit_code = 1
    finally:
        console.print("stopping services ...")
        supervisor.stop(report=lambda line: console.print(f"  {line}", highlight=False))
        console.print("all services stopped")
    raise typer.Exit(exit_code)


def _up_panel(settings: Settings, specs: list[ChildSpec], api_url: str) -> Panel:
    from keelwatch.auth.secrets_file import admin_token_path

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan")
    table.add_column()
    for spec in specs:
        table.add_row(spec.name, spec.display)
    table.add_row("api docs", f"{api_url}/docs")
    table.add_row("admin token", f"{admin_token_path(settings)} (send: Authorization: Bearer)")
    table.add_row("metrics", f"{api_url}/metrics")
    table.add_row("logs", str(settings.data_dir / "logs"))
    table.add_row("data", str(settings.data_dir))
    return Panel(table, title="keelwatch up", subtitle="Ctrl-C stops everything")


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
) -> None:
    """Serve the HTTP API with uvicorn in the foreground."""
    import uvicorn

    from keelwatch.api.app import create_app

    settings = load_cli_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api.host,
        port=port if port is not None else settings.api.port,
    )


def worker(
    role: Annotated[str, typer.Option(help=f"Worker role: {', '.join(ROLE_QUEUES)}.")] = "all",
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues (default: the role's).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Run a Celery worker of one role in the foreground."""
    settings = load_cli_settings()
    if role not in ROLE_QUEUES:
        fail(f"unknown worker role {role!r} (known: {', '.join(ROLE_QUEUES)})")
    chosen = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    settings.ensure_data_dir()
    argv = worker_command(
        role=role,
        queues=chosen,
        concurrency=concurrency,
        hostname=hostname,
        loglevel=loglevel,
    )
    _exec(argv, settings)


def beat(loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO") -> None:
    """Run celery beat (the periodic-task scheduler) in the foreground."""
    settings = load_cli_settings()
    settings.ensure_data_dir()
    _exec(beat_command(settings, loglevel=loglevel), settings)


def mlflow_ui(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: api.mlflow_ui_port).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    allowed_hosts: Annotated[
        str | None, typer.Option(help="Host headers to accept (MLflow's --allowed-hosts).")
    ] = None,
) -> None:
    """Run the MLflow UI (mlflow server) on Keelwatch's MLflow store in the foreground."""
    settings = load_cli_settings()
    settings.ensure_data_dir()
    argv = mlflow_server_command(
        settings, host=host, port=port, workers=workers, allowed_hosts=allowed_hosts
    )
    os.execve(argv[0], argv, mlflow_server_environment(child_environment(settings)))


def config(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the variable reference as a Markdown table.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the resolved values as a JSON object.")
    ] = False,
) -> None:
    """Show every KEELWATCH_* variable with its resolved value (or the reference table)."""
    if markdown:
        typer.echo("| Variable | Type | Default | Description |")
        typer.echo("|---|---|---|---|")
        for var in iter_env_vars():
            # Empty defaults are filled in at load time (see the description) or stay unset.
            default = f"`{var.default}`" if var.default else "—"
            type_name = var.type_name.replace("|", "\\|")  # a bare | would split the cell
            typer.echo(f"| `{var.name}` | {type_name} | {default} | {var.description} |")
        return
    settings = load_cli_settings()
    environment = settings_environment(settings)
    resolved = {name: _redact(name, value) for name, value in environment.items()}
    if as_json:
        typer.echo(json.dumps(resolved, indent=2))
        return
    for line in settings_lines(resolved, width=console.width):
        typer.echo(line)


def settings_lines(values: dict[str, str], *, width: int) -> list[str]:
    """``NAME  value`` lines that fit ``width``; a value that does not fit goes, whole, on the
    next line. Values are never cut or folded: a URI must stay copyable in one piece."""
    indent = "    "
    name_width = max((len(name) for name in values), default=0)
    lines = ["resolved settings (KEELWATCH_* variables, passwords hidden)", ""]
    for name, value in values.items():
        shown = value if value else "(empty)"
        if name_width + 2 + len(shown) <= width:
            lines.append(f"{name:<{name_width}}  {shown}")
        else:
            lines += [name, f"{indent}{shown}"]
    return lines


def _redact(name: str, value: str) -> str:
    if name in {var.name for var in iter_env_vars() if var.type_name == "SecretStr"}:
        return "***" if value else ""
    if "URL" in name or "URI" in name or "BACKEND" in name:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(value)
        except ArgumentError:
            return value
        if parsed.password:
            return parsed.render_as_string(hide_password=True)
    return value


# --------------------------------------------------------------------------- audit, predictions


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not an ISO 8601 date/time (e.g. 2025-01-31T12:00)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print_json(rows: list[dict[str, Any]]) -> None:
    typer.echo(json.dumps(rows, indent=2, default=str))


@audit_app.command("list")
def audit_list(
    target: Annotated[str | None, typer.Option(help="Exact target.")] = None,
    action: Annotated[str | None, typer.Option(help="Exact action.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Entries to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Audit entries, newest first."""
    from dataclasses import asdict

    from sqlalchemy.exc import SQLAlchemyError

    from keelwatch.storage.audit import list_audit
    from keelwatch.storage.db import Database

    settings = load_cli_settings()
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            entries = list_audit(session, target=target, action=action, limit=limit)
    except SQLAlchemyError as exc:
        fail(_database_error(exc, settings.database.url))
    finally:
        database.dispose()
    if as_json:
        _print_json([asdict(entry) for entry in entries])
        return
    table = Table("id", "at", "actor", "action", "target", "reason", title="audit log")
    for entry in entries:
        table.add_row(
            str(entry.id),
            entry.at.isoformat(timespec="seconds"),
            entry.actor,
            entry.action,
            entry.target,
            entry.reason,
        )
    console.print(table)


@predictions_app.command("tail")
def predictions_tail(
    model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    version: Annotated[str | None, typer.Option(help="Model version.")] = None,
    job: Annotated[str | None, typer.Option(help="Batch job id.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 lower bound (inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 upper bound (exclusive).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="Rows.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The newest logged predictions (printed oldest first, like ``tail``)."""
    from dataclasses import asdict

    from sqlalchemy.exc import SQLAlchemyError

    from keelwatch.storage.db import Database
    from keelwatch.storage.predictions import recent_predictions

    settings = load_cli_settings()
    since_at = _parse_time(since, "--since")
    until_at = _parse_time(until, "--until")
    if since_at and until_at and since_at >= until_at:
        fail("--since must be before --until")
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            records = recent_predictions(
                session,
                model_name=model,
                model_version=version,
                job_id=job,
                since=since_at,
                until=until_at,
                limit=limit,
            )
    except SQLAlchemyError as exc:
        fail(_database_error(exc, settings.database.url))
    finally:
        database.dispose()
    records.reverse()
    if as_json:
        _print_json([asdict(record) for record in records])
        return
    table = Table(
        "at", "model", "version", "inputs", "outputs", "latency ms", "job", title="predictions"
    )
    for record in records:
        table.add_row(
            record.created_at.isoformat(timespec="seconds"),
            record.model_name,
            record.model_version,
            _short(record.inputs),
            _short(record.outputs),
            f"{record.latency_ms:.2f}",
            (record.job_id or "")[:8],
        )
    console.print(table)


predictions_app.command("label")(predictions_label)


def _short(value: dict[str, Any], width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"
