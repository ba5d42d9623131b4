"""``keelwatch review list|show|claim|next|approve|reject|appeal|export``: the human review queue
of content moderation.

Locally (the database) the reviewer is ``--actor`` (else ``settings.actor``, else the OS user);
with ``KEELWATCH_API_URL`` set every command goes through ``/review/...`` and the reviewer is
the token's identity (a token with the ``reviewer`` role). ``show`` prints the text with its
findings highlighted. ``export`` writes decided items as JSON lines (stdout or ``-o FILE``).

Exit codes: 0 on success (``next`` with nothing to review too), 2 with one line for bad input
or a refused action (unknown item, claimed by someone else, not decided), 1 when a service
does not answer.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.schemas.review import ReviewItemOut

# Piped output (scripts, CI logs) is not cut to 80 columns; a terminal sets its own width.
console = Console(markup=False, width=None if sys.stdout.isatty() else 160)

review_app = typer.Typer(
    help="The moderation review queue: list, claim, approve, reject, appeal, export.",
    no_args_is_help=True,
)

ItemArgument = Annotated[
    int, typer.Argument(help="Review item id (see `review list`).", min=1, max=2**63 - 1)
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (stored and audited).")]
ModelOption = Annotated[str | None, typer.Option("--model", help="Registered model name.")]
STATUSES = ("pending", "claimed", "approved", "rejected", "appealed")
CATEGORY_STYLE = "bold white on red"
PII_STYLE = "bold black on yellow"


def _print_item(item: ReviewItemOut, *, as_json: bool, headline: str = "") -> None:
    if as_json:
        typer.echo(json.dumps(item.model_dump(mode="json"), indent=2))
        return
    if headline:
        typer.echo(headline)
    console.print(
        f"review item {item.id} [{item.status.value}] {item.model_name} v{item.model_version} "
        f"{item.direction} from {item.source_key}"
    )
    text = Text(item.text or "(no text kept)")
    for finding in item.findings:
        text.stylize(CATEGORY_STYLE, finding.start, finding.end)
    if item.text:
        # PII placeholders ([EMAIL], [PHONE] ...) stand out too.
        text.highlight_regex(r"\[[A-Z_]+\]", PII_STYLE)
    console.print(text, soft_wrap=True)
    for finding in item.findings:
        console.print(
            f"  {finding.category} {finding.score:.2f} ({finding.source}) "
            f"at {finding.start}-{finding.end}"
        )
    if item.reasons:
        console.print("reasons: " + "; ".join(item.reasons))
    if item.claimed_by:
        console.print(f"claimed by {item.claimed_by} at {_when(item.claimed_at)}")
    if item.decided_by:
        labels = f" labels {','.join(item.labels)}" if item.labels else ""
        console.print(
            f"decided by {item.decided_by} at {_when(item.decided_at)}: "
            f"{item.decision_reason}{labels}"
        )
    if item.appealed_by:
        console.print(
            f"appealed by {item.appealed_by} at {_when(item.appealed_at)}: {item.appeal_reason}"
        )


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else "-"


def _status(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        fail(f"--status: {value!r} is not one of {', '.join(STATUSES)}")
    return value


@review_app.command("list")
def review_list(
    status: Annotated[
        str | None, typer.Option("--status", help=f"Only items with this status: {STATUSES}.")
    ] = None,
    model: ModelOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Items to show.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Review items, oldest first."""
    from keelwatch.schemas.review import ReviewItemOut

    _status(status)
    if (remote := remote_client()) is not None:
        params = {key: value for key, value in (("status", status), ("model", model)) if value}
        items = [
            ReviewItemOut.model_validate(item)
            for item in remote.get_all("/review/items", params, most=limit)
        ]
    else:
        from keelwatch.entities.moderation import ReviewStatus
        from keelwatch.monitoring.service.review_queue import list_review_items

        with cli_services() as services, services.db.session() as session:
            found, _ = list_review_items(
                session,
                status=ReviewStatus(status) if status else None,
                model_name=model,
                limit=limit,
            )
        items = [ReviewItemOut.of(item) for item in found]
    if as_json:
        typer.echo(json.dumps([item.model_dump(mode="json") for item in items], indent=2))
        return
    table = Table(
        "id", "created", "status", "model", "version", "direction", "categories", "who",
        title="review items",
    )  # fmt: skip
    for item in items:
        who = item.decided_by if item.status.value in ("approved", "rejected") else None
        table.add_row(
            str(item.id),
            item.created_at.isoformat(timespec="seconds"),
            item.status.value,
            item.model_name,
            item.model_version,
            item.direction,
            ",".join(item.categories),
            who or item.claimed_by or "",
        )
    console.print(table)


@review_app.command("show")
def review_show(item_id: ItemArgument, as_json: JsonOption = False) -> None:
    """One item: its text with the findings highlighted, reasons, claim, decision, appeal."""
    from keelwatch.schemas.review import ReviewItemOut

    if (remote := remote_client()) is not None:
        item = ReviewItemOut.model_validate(remote.get(f"/review/items/{item_id}"))
    else:
        from keelwatch.monitoring.service.review_queue import get_review_item

        with cli_services() as services, services.db.session() as session:
            item = ReviewItemOut.of(get_review_item(session, item_id))
    _print_item(item, as_json=as_json)


@review_app.command("claim")
def review_claim(
    item_id: ItemArgument, actor: ActorOption = None, as_json: JsonOption = False
) -> None:
    """Claim an item (renews your own claim). Exit 2 when someone else holds it."""
    item = _act(f"/review/items/{item_id}/claim", None, actor, "claim", item_id=item_id)
    assert item is not None
    _print_item(item, as_json=as_json, headline=f"claimed review item {item.id}")


@review_app.command("next")
def review_next(
    model: ModelOption = None, actor: ActorOption = None, as_json: JsonOption = False
) -> None:
    """Claim the oldest open item (optionally of one model); exit 0 with a note when none."""
    path = "/review/items/next" + (f"?model={_quote(model)}" if model else "")
    item = _act(path, None, actor, "next", model=model)
    if item is None:
        if as_json:
            typer.echo("null")
        else:
            typer.echo("nothing to review")
        return
    _print_item(item, as_json=as_json, headline=f"claimed review item {item.id}")


@review_app.command("approve")
def review_approve(
    item_id: ItemArgument,
    reason: ReasonOption,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve an item you hold: the text is acceptable."""
    item = _act(
        f"/review/items/{item_id}/approve",
        {"reason": reason},
        actor,
        "approve",
        item_id=item_id,
        reason=reason,
    )
    assert item is not None
    _print_item(item, as_json=as_json, headline=f"approved review item {item.id}")


@review_app.command("reject")
def review_reject(
    item_id: ItemArgument,
    reason: ReasonOption,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels", help="Confirmed categories, comma-separated (default: those found)."
        ),
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject an item you hold: the text is harmful."""
    chosen = [name.strip() for name in labels.split(",") if name.strip()] if labels else None
    body: dict[str, Any] = {"reason": reason}
    if chosen:
        body["labels"] = chosen
    item = _act(
        f"/review/items/{item_id}/reject",
        body,
        actor,
        "reject",
        item_id=item_id,
        reason=reason,
        labels=chosen or (),
    )
    assert item is not None
    _print_item(item, as_json=as_json, headline=f"rejected review item {item.id}")


@review_app.command("appeal")
def review_appeal(
    item_id: ItemArgument,
    reason: ReasonOption,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Appeal a decided item: back in the queue for another reviewer."""
    item = _act(
        f"/review/items/{item_id}/appeal",
        {"reason": reason},
        actor,
        "appeal",
        item_id=item_id,
        reason=reason,
    )
    assert item is not None
    _print_item(item, as_json=as_json, headline=f"appealed review item {item.id}")


@review_app.command("export")
def review_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON lines here.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Only items decided at or after (ISO 8601; naive is UTC)."),
    ] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decided items as labelled JSON lines (text, label acceptable|harmful, categories,
    model, version, direction, reviewer, decided_at, item_id) for retraining.

    Without -o the lines go to stdout. With -o, one summary line (--json: a JSON object)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if (remote := remote_client()) is not None:
        params = {"model": model} if model else {}
        if since is not None:
            params["since"] = since.isoformat()
        query = "&".join(f"{key}={_quote(value)}" for key, value in params.items())
        text = remote.get_text("/review/export" + (f"?{query}" if query else ""))
        lines = [line for line in text.splitlines() if line.strip()]
    else:
        from keelwatch.monitoring.service.review_queue import export_labelled

        with cli_services() as services, services.db.session() as session:
            lines = [
                json.dumps(row, ensure_ascii=False)
                for row in export_labelled(session, since=since, model_name=model)
            ]
    if output is None:
        for line in lines:
            typer.echo(line)
        return
    try:
        output.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.__class__.__name__}")
    if as_json:
        typer.echo(json.dumps({"written": len(lines), "output": str(output)}))
    else:
        typer.echo(f"{len(lines)} labelled review item(s) written to {output}")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _act(
    path: str, body: dict[str, Any] | None, actor: str | None, what: str, **args: Any
) -> ReviewItemOut | None:
    """Run one queue change remotely (``POST path``) or locally (the service, in one
    transaction); the item it left, or None (``next`` with nothing to review)."""
    from keelwatch.schemas.review import ReviewItemOut

    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        answer = remote.post(path, body)
        return None if answer is None else ReviewItemOut.model_validate(answer)
    from keelwatch.monitoring.service import review_queue as service

    if "reason" in args and not str(args["reason"]).strip():
        fail("--reason: give a reason (it is stored and audited)")
    with cli_services() as services, services.db.session() as session:
        who = cli_actor(actor, services.settings)
        now = datetime.now(UTC)
        timeout = services.settings.moderation.review_min_claim_s
        if what == "claim":
            item = service.claim_review_item(
                session, args["item_id"], reviewer=who, now=now, claim_timeout_s=timeout
            )
        elif what == "next":
            found = service.claim_next_review_item(
                session, reviewer=who, now=now, model_name=args["model"], claim_timeout_s=timeout
            )
            if found is None:
                return None
            item = found
        elif what == "appeal":
            item = service.appeal_review_item(
                session, args["item_id"], actor=who, reason=args["reason"], now=now
            )
        else:
            item = service.decide_review_item(
                session,
                args["item_id"],
                reviewer=who,
                verdict="approve" if what == "approve" else "reject",
                reason=args["reason"],
                labels=args.get("labels", ()),
                now=now,
            )
    return ReviewItemOut.of(item)
