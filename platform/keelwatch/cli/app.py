"""The ``keelwatch`` command line: one Typer root with a sub-app per concern.

Sub-apps live in their own modules (``models``, ``jobs``, ``drift``, ``monitors``, ``ops``) and
keep heavy imports (MLflow, pandas, Celery) inside their commands, so importing them all here
keeps ``keelwatch --help`` fast. Every sub-app is imported explicitly: a missing module is an
error, never a command that silently disappears.
"""

from __future__ import annotations

from typing import Annotated

import typer

import keelwatch
from keelwatch.cli import (
    actions,
    alerts,
    audits,
    drift,
    eval_schedules,
    evaluations,
    gate,
    jobs,
    models,
    moderate,
    moderation,
    moderation_runs,
    monitors,
    notifiers,
    ops,
    policies,
    realized,
    retention,
    review,
    rules,
    tokens,
)
from keelwatch.cli.remote import RemoteAwareGroup

#: ``-h`` as well as ``--help``; click hands it down to every sub-command's context.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="keelwatch",
    # Refuses the commands without a remote mode while KEELWATCH_API_URL is set.
    cls=RemoteAwareGroup,
    context_settings=HELP_OPTIONS,
    help="Keelwatch: model registry, worker fleet, prediction log and monitoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


app.add_typer(models.models_app, name="models")
app.add_typer(jobs.infer_app, name="infer")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(drift.drift_app, name="drift")
app.add_typer(monitors.monitors_app, name="monitors")
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(notifiers.notifiers_app, name="notifiers")
app.add_typer(rules.rules_app, name="rules")
app.add_typer(actions.actions_app, name="actions")
app.add_typer(policies.policies_app, name="policies")
app.add_typer(tokens.tokens_app, name="tokens")
evaluations.eval_app.command("realized")(realized.eval_realized)
evaluations.eval_app.add_typer(eval_schedules.schedule_app, name="schedule")
app.add_typer(evaluations.eval_app, name="eval")
app.add_typer(gate.gate_app, name="gate")
app.command("moderate")(moderate.moderate)
# `moderation run` (batch runs over a dataset or the prediction log) has its own module.
moderation.moderation_app.command("run")(moderation_runs.moderation_run)
app.add_typer(moderation.moderation_app, name="moderation")
app.add_typer(retention.retention_app, name="retention")
app.add_typer(review.review_app, name="review")
ops.register(app)
# Bias audits join ops' `audit` group (next to `audit list`, the audit log) and its
# `predictions` group (`predictions attributes`).
audits.register(ops.audit_app, ops.predictions_app)


def main() -> None:
    """Console-script entry point (``keelwatch``)."""
    app()


if __name__ == "__main__":
    main()
