"""Small helpers every CLI sub-app shares: building services, resolving the actor, failing
cleanly.

Errors Keelwatch raises on purpose (:class:`~keelwatch.errors.KeelwatchError`) become a red
one-line message on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from keelwatch.errors import KeelwatchError

if TYPE_CHECKING:
    from keelwatch.settings import Settings
    from keelwatch.wiring import Services

P = ParamSpec("P")
R = TypeVar("R")

stderr_console = Console(stderr=True)

#: ``--actor`` of every command that changes something (the audit log's "who").
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who acts, for the audit log (default: settings, OS user)."),
]
#: ``--json`` of the commands whose text output is a short summary.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def services_from_cli(*, create: bool = False) -> Services:
    """Build :class:`~keelwatch.wiring.Services` from the environment (``KEELWATCH_*``).

    The data dir must exist unless ``create`` (see :func:`open_data_dir`).
    """
    from keelwatch.settings import load_settings
    from keelwatch.wiring import Services

    # MLflow announces "Creating initial MLflow database tables..." at INFO on every command
    # that opens a SQL store; a CLI user needs its warnings, not that.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    settings = load_settings()
    open_data_dir(settings, create=create)
    return Services(settings)


def open_data_dir(settings: Settings, *, create: bool) -> None:
    """Make sure ``settings.data_dir`` exists before a command uses it.

    A missing data dir is created (and the one line on stderr says which and why) when
    ``create`` is set, or when the data does not live there anyway (an explicit database URL).
    Otherwise the command fails without creating anything: an empty folder in the working
    directory would only hide the real data dir from the next command.
    """
    from keelwatch.settings import discover_data_dir

    if settings.data_dir.is_dir():
        return
    choice = discover_data_dir(Path.cwd())
    if create or not settings.database_is_embedded:
        settings.ensure_data_dir()
        why = choice.source.value if choice.path == settings.data_dir else "settings"
        stderr_console.print(
            Text(f"created Keelwatch data dir {settings.data_dir} ({why})"), soft_wrap=True
        )
        return
    looked = choice.describe_search() if choice.path == settings.data_dir else settings.data_dir
    fail(
        f"no Keelwatch data dir found (looked in {looked}); run `keelwatch up` or `make demo`, "
        "or set KEELWATCH_DATA_DIR"
    )


@contextmanager
def cli_services(*, create: bool = False) -> Iterator[Services]:
    """Services for one command, closed afterwards, with Keelwatch errors as a clean exit.

    ``create``: the command may start a new installation (``models register``); every other
    command refuses to run without an existing data dir.
    """
    with cli_errors():
        services = services_from_cli(create=create)
        try:
            yield services
        finally:
            services.close()


def cli_actor(explicit: str | None, settings: Settings) -> str:
    """Who acts, for the audit log: ``--actor``, else ``settings.actor``, else the OS user."""
    for candidate in (explicit, settings.actor):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code``."""
    # Text, not markup: messages quote user input, which may contain "[...]".
    # soft_wrap: one line however narrow the terminal, so paths and URIs are never broken.
    stderr_console.print(Text.assemble(("error: ", "bold red"), (message, "red")), soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a :class:`KeelwatchError` raised inside the block into :func:`fail`."""
    try:
        yield
    except KeelwatchError as exc:
        fail(str(exc))


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`cli_errors` for Typer commands."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with cli_errors():
            return func(*args, **kwargs)

    return wrapper


def read_definitions(file: Path, what: str) -> str:
    """The text of a YAML definitions file (rules, policies); exit 2 naming it if unreadable."""
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {what} file {file}: {exc.__class__.__name__}")


def print_applied(outcome: Any, what: str, file: Path, *, as_json: bool) -> None:
    """What an ``apply -f FILE`` did: names per ``created``/``updated``/``unchanged``."""
    kinds = ("created", "updated", "unchanged")
    if as_json:
        typer.echo(json.dumps({kind: getattr(outcome, kind) for kind in kinds}, indent=2))
        return
    counts = ", ".join(f"{len(getattr(outcome, kind))} {kind}" for kind in kinds)
    typer.echo(f"{what} applied from {file}: {counts}")
    for kind in kinds:
        for name in getattr(outcome, kind):
            typer.echo(f"  {kind:<9} {name}")
