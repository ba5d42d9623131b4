"""``keelwatch moderation run``: a batch moderation run as a job on the fleet.

``--dataset PATH --column text [--model M --version V]`` moderates a CSV or Parquet file's text
column; ``--predictions --model M --column C [--direction output] [--since 24h]`` moderates a
logged output (or input) column of the model's prediction log. Decisions are tallied into the
model's moderation rates, ``review`` texts join the review queue, and every decision (the
redacted text, never the original) goes to the job's ``decisions.parquet``; follow the job with
``keelwatch jobs status ID``. With ``KEELWATCH_API_URL`` set the run goes through
``POST /moderation/runs`` (operator).

Exit codes: 0 submitted, 2 with one line for bad input (no such file or column, a column that
is not text, a bad window), 1 when a service does not answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_errors, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.schemas.jobs import JobView
    from keelwatch.schemas.moderation_runs import ModerationRunIn


def moderation_run(
    column: Annotated[str, typer.Option("--column", help="The text column to moderate.")],
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="A CSV or Parquet file to moderate.")
    ] = None,
    predictions: Annotated[
        bool,
        typer.Option("--predictions", help="Moderate --model's prediction log instead."),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option("--model", help="The model (required with --predictions)."),
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version.")] = None,
    direction: Annotated[
        str, typer.Option("--direction", help="--predictions: input or output column.")
    ] = "output",
    since: Annotated[
        str | None,
        typer.Option("--since", help="--predictions: window ending now (24h, 7d) or ISO time."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Moderate a dataset's text column or a model's logged texts as a job on the fleet."""
    from datetime import UTC, datetime

    if (dataset is None) == (not predictions):
        fail("give exactly one of --dataset PATH or --predictions (with --model)")
    if direction not in ("input", "output"):
        fail(f"--direction: {direction!r} is not one of input, output")
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "source": "predictions" if predictions else "dataset",
        "column": column,
        "model": model,
        "version": version,
        "reason": reason,
    }
    if predictions:
        if model is None:
            fail("--predictions needs --model NAME")
        payload["direction"] = direction
        if since is not None:
            from keelwatch.monitoring.service.moderation import rates_since

            with cli_errors():
                payload["since"] = rates_since(since, now)
            payload["until"] = now
    else:
        if since is not None or direction != "output":
            fail("--since and --direction apply to --predictions runs only")
        assert dataset is not None
        payload["dataset"] = str(dataset.expanduser().resolve())
    body = _body(payload)
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        from keelwatch.schemas.jobs import JobView

        job = JobView.model_validate(
            remote.post("/moderation/runs", body.model_dump(mode="json", exclude_none=True))
        )
    else:
        job = _submit_local(body, actor, now)
    if as_json:
        typer.echo(json.dumps(job.model_dump(mode="json"), indent=2))
        return
    what = f"{Path(dataset).name} column {column}" if dataset else f"{model}'s logged {column}"
    typer.echo(
        f"moderation run {job.id} submitted ({what}); follow it: keelwatch jobs status {job.id}"
    )


def _body(payload: dict[str, Any]) -> ModerationRunIn:
    from pydantic import ValidationError

    from keelwatch.schemas.moderation_runs import ModerationRunIn

    try:
        return ModerationRunIn.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        fail(f"{where + ': ' if where else ''}{message}")


def _submit_local(body: ModerationRunIn, actor: str | None, now: Any) -> JobView:
    from keelwatch.monitoring.service.moderation_runs import submit_moderation_run
    from keelwatch.schemas.jobs import JobView

    with cli_services() as services:
        job = submit_moderation_run(
            services.db,
            services.sender,
            body,
            actor=cli_actor(actor, services.settings),
            output_root=services.settings.inference.output_dir,
            now=now,
        )
    return JobView.from_job(job)
