"""The ``keelwatch`` command line: one Typer root with a sub-app per concern.

Sub-apps live in their own modules (``cli_models``, ``cli_jobs``, ``cli_drift``, ``cli_ops``)
and keep heavy imports (MLflow, pandas, Celery) inside their commands, so ``keelwatch --help``
stays fast. A sub-app whose module is not there yet is left out instead of breaking the CLI.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

import keelwatch
from keelwatch import cli_ops

#: ``-h`` as well as ``--help``; click hands it down to every sub-command's context.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="keelwatch",
    context_settings=HELP_OPTIONS,
    help="Keelwatch: model registry, worker fleet, prediction log and monitoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: (module, attribute, command name) of the sub-apps other modules own.
SUB_APPS: tuple[tuple[str, str, str], ...] = (
    ("keelwatch.cli_models", "models_app", "models"),
    ("keelwatch.cli_jobs", "infer_app", "infer"),
    ("keelwatch.cli_jobs", "jobs_app", "jobs"),
    ("keelwatch.cli_drift", "drift_app", "drift"),
    ("keelwatch.cli_monitors", "monitors_app", "monitors"),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"keelwatch {keelwatch.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Keelwatch: model registry, worker fleet, prediction log and monitoring."""


def _mount_optional(module_name: str, attribute: str, name: str) -> bool:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module itself being absent is tolerated; a broken import inside it is a bug.
        if exc.name != module_name:
            raise
        return False
    app.add_typer(getattr(module, attribute), name=name)
    return True


for _module, _attribute, _name in SUB_APPS:
    _mount_optional(_module, _attribute, _name)

cli_ops.register(app)


def main() -> None:
    """Console-script entry point (``keelwatch``)."""
    app()


if __name__ == "__main__":
    main()
