"""Small helpers every CLI sub-app shares: building services, resolving the actor, failing
cleanly.

Errors Keelwatch raises on purpose (:class:`~keelwatch.errors.KeelwatchError`) become a red
one-line message on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from keelwatch.errors import KeelwatchError

if TYPE_CHECKING:
    from keelwatch.context import Services
    from keelwatch.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

stderr_console = Console(stderr=True)


def services_from_cli() -> Services:
    """Build :class:`~keelwatch.context.Services` from the environment (``KEELWATCH_*``)."""
    from keelwatch.context import Services
    from keelwatch.settings import load_settings

    # MLflow announces "Creating initial MLflow database tables..." at INFO on every command
    # that opens a SQL store; a CLI user needs its warnings, not that.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    return Services(load_settings())


@contextmanager
def cli_services() -> Iterator[Services]:
    """Services for one command, closed afterwards, with Keelwatch errors as a clean exit."""
    with cli_errors():
        services = services_from_cli()
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
    stderr_console.print(Text.assemble(("error: ", "bold red"), (message, "red")))
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
