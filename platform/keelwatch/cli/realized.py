"""``keelwatch eval realized MODEL``: a model's realized performance over the window ending now.

Logged predictions of each version in the window joined with the labels that arrived; below
the minimum coverage or rows the verdict is ``insufficient_data`` and no metric is shown.
The result is stored and written as ``realized.*`` signals (rules see it at once). With
``KEELWATCH_API_URL`` set it runs through ``POST /evaluations/realized``. ``cli.app`` mounts
the command on the ``eval`` group of ``cli.evaluations``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_errors, cli_services

#: Metrics printed in the text summary, in this order (``--json`` has all of them).
SHOWN_METRICS = ("accuracy", "f1_macro", "roc_auc", "log_loss", "ece", "mae", "rmse", "r2")


def eval_realized(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    window: Annotated[
        str, typer.Option("--window", help="Window ending now: 24h, 30m, 7d, 90s.")
    ] = "24h",
    min_coverage: Annotated[
        float | None,
        typer.Option(
            "--min-coverage",
            min=0.0,
            max=1.0,
            help="Least share of labelled predictions for a verdict "
            "(default: evaluation.realized_min_coverage, 0.2).",
        ),
    ] = None,
    min_rows: Annotated[
        int | None,
        typer.Option(
            "--min-rows",
            min=1,
            help="Least labelled rows for a verdict (default: evaluation.realized_min_rows, 50).",
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option("--task", help="classification or regression (default: inferred)."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score MODEL's logged predictions against their labels, per version, and store it."""
    from keelwatch.schemas.realized import RealizedRunIn, RealizedRunOut

    with cli_errors():
        try:
            body = RealizedRunIn.model_validate(
                {
                    "model": model,
                    "window": window,
                    "task": task,
                    "min_coverage": min_coverage,
                    "min_rows": min_rows,
                    "reason": reason,
                }
            )
        except ValueError as exc:
            from keelwatch.errors import InvalidInputError

            raise InvalidInputError(_first_error(exc)) from exc
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        answer = RealizedRunOut.model_validate(
            remote.post("/evaluations/realized", body.model_dump(exclude_none=True))
        )
    else:
        answer = _run_local(body, actor)
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json"), indent=2))
        return
    typer.echo(
        f"realized performance of {answer.model} over {answer.window} ending "
        f"{answer.window_end.isoformat(timespec='seconds')}"
    )
    if not answer.results:
        typer.echo("  no predictions logged in the window")
    for result in answer.results:
        typer.echo("  " + _summary(result.model_dump()))


def _run_local(body: Any, actor: str | None) -> Any:
    from datetime import UTC, datetime

    from keelwatch.alerting.service import after_commit_dispatch
    from keelwatch.monitoring.evaluation.realized import window_label
    from keelwatch.monitoring.service.realized import champion_of, compute_realized
    from keelwatch.schemas.realized import RealizedOut, RealizedRunOut

    with cli_services() as services:
        settings = services.settings.evaluation
        now = datetime.now(UTC)
        champion = champion_of(services.registry, body.model)
        with services.db.session() as session:
            outcome = compute_realized(
                session,
                model=body.model,
                window_s=body.window_s,
                window_end=now,
                champion=champion,
                min_coverage=(
                    body.min_coverage
                    if body.min_coverage is not None
                    else settings.realized_min_coverage
                ),
                min_rows=body.min_rows if body.min_rows is not None else settings.realized_min_rows,
                actor=cli_actor(actor, services.settings),
                task=body.task,
                reason=body.reason,
                now=now,
            )
        if outcome.transitions:
            # Notifications and actions of the alerts that changed; without a broker the
            # alert tick sends them later.
            try:
                after_commit_dispatch(services.db, services.sender, now)
            except Exception:  # noqa: BLE001 - the results are stored either way
                typer.echo(
                    "alerts changed; notifications go out with the next alert tick", err=True
                )
        return RealizedRunOut(
            model=outcome.model,
            window=window_label(outcome.window_s),
            window_end=outcome.window_end,
            signals_written=outcome.signals_written,
            results=[RealizedOut.of(r) for r in outcome.results],
        )


def _summary(result: dict[str, Any]) -> str:
    alias = f" @{result['alias']}" if result.get("alias") else ""
    head = (
        f"version {result['model_version']}{alias}: {result['verdict']}, "
        f"{result['labelled']:,} of {result['predictions']:,} labelled "
        f"(coverage {result['coverage']:.3f})"
    )
    metrics = result.get("metrics") or {}
    shown = [f"{name} {metrics[name]:.4f}" for name in SHOWN_METRICS if name in metrics]
    if shown:
        head += "; " + ", ".join(shown)
    if result.get("already_recorded"):
        head += " (stored earlier)"
    return head


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc)
