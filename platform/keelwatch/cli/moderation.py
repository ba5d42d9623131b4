"""``keelwatch moderation ...``: content moderation of text models on the platform.

``moderation rates`` prints block, review and redact rates (and the categories found) per
model version and direction from the stored tallies; with ``KEELWATCH_API_URL`` set it reads
``GET /moderation/rates``. Exit 2 with one line for bad input (an unknown direction, a bad
``--since``), 1 when a service does not answer.

Other moderation commands join :data:`moderation_app` from their own modules.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.remote import remote_client
from keelwatch.cli.support import JsonOption, cli_errors, cli_services, fail

# Piped output (scripts, CI logs) is not cut to 80 columns; a terminal sets its own width.
console = Console(markup=False, width=None if sys.stdout.isatty() else 160)

moderation_app = typer.Typer(
    help="Content moderation of text models: rates (and moderation runs).",
    no_args_is_help=True,
)

DIRECTIONS = ("input", "output", "text")


@moderation_app.command("rates")
def moderation_rates(
    model: Annotated[
        str | None, typer.Option("--model", help="Registered model name (default: all).")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version.")] = None,
    direction: Annotated[
        str | None,
        typer.Option("--direction", help="input, output (inference jobs) or text (API checks)."),
    ] = None,
    since: Annotated[
        str,
        typer.Option("--since", help="Window ending now (24h, 30m, 7d) or an ISO 8601 time."),
    ] = "24h",
    as_json: JsonOption = False,
) -> None:
    """Moderation rates per model version and direction over a window ending now."""
    from datetime import UTC, datetime

    from keelwatch.schemas.moderation import ModerationRatesOut, RatesOut

    if direction is not None and direction not in DIRECTIONS:
        fail(f"--direction: {direction!r} is not one of {', '.join(DIRECTIONS)}")
    if version is not None and model is None:
        fail("--version needs --model")
    if (remote := remote_client()) is not None:
        params = {
            key: value
            for key, value in {
                "model": model,
                "version": version,
                "direction": direction,
                "since": since,
            }.items()
            if value is not None
        }
        answer = ModerationRatesOut.model_validate(remote.get("/moderation/rates", params))
    else:
        from keelwatch.monitoring.service.moderation import moderation_rates as read_rates
        from keelwatch.monitoring.service.moderation import rates_since

        until = datetime.now(UTC)
        with cli_errors():
            start = rates_since(since, until)
            with cli_services() as services, services.db.session() as session:
                found = read_rates(
                    session,
                    since=start,
                    until=until,
                    model=model,
                    version=version,
                    direction=direction,
                )
        answer = ModerationRatesOut(since=start, until=until, rates=[RatesOut.of(r) for r in found])
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json"), indent=2))
        return
    table = Table(
        "model",
        "version",
        "direction",
        "texts",
        "block",
        "review",
        "redact",
        "categories",
        title=(
            f"moderation rates {answer.since.isoformat(timespec='seconds')} to "
            f"{answer.until.isoformat(timespec='seconds')}"
        ),
    )
    for row in answer.rates:
        categories = ", ".join(
            f"{name} {rate:.1%}"
            for name, rate in sorted(row.category_rates.items(), key=lambda kv: -kv[1])
            if rate > 0
        )
        table.add_row(
            row.model,
            row.version or "-",
            row.direction,
            f"{row.texts:,}",
            f"{row.rates.get('block', 0.0):.1%}",
            f"{row.rates.get('review', 0.0):.1%}",
            f"{row.rates.get('redact', 0.0):.1%}",
            categories or "-",
        )
    console.print(table)
    if not answer.rates:
        console.print("no moderated texts in the window")
