"""``keelwatch predictions attributes FILE``: record the sensitive attributes of logged
predictions (gender, age band...), the groups bias audits compare; never model features.

JSON Lines of ``{"request_id": ..., "attributes": {...}}``, or CSV/Parquet with ``request_id``
and one column per attribute (an empty cell: that row lacks the attribute). Like ``predictions
label``: the whole file is checked before anything is written (a bad row exits 2 naming it),
then sent in batches of 10,000, each its own transaction and audit entry; request ids not in
the prediction log are reported, not stored. Sending a file again is safe (names merge, the
latest value wins). ``cli.audits.register`` mounts it on ops' ``predictions`` group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from keelwatch.cli.support import (
    ActorOption,
    JsonOption,
    cli_actor,
    cli_errors,
    cli_services,
    fail,
    stderr_console,
)

if TYPE_CHECKING:
    from keelwatch.schemas.audits import AttributeIn
    from keelwatch.wiring import Services

#: Unknown request ids printed in the summary (``--json`` lists all of them).
SHOWN_UNKNOWN = 10


def predictions_attributes(
    file: Annotated[
        Path,
        typer.Argument(
            help='JSON Lines of {"request_id": ..., "attributes": {...}}, or CSV/Parquet '
            "with request_id and one column per attribute."
        ),
    ],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the sensitive attributes of logged predictions (bias audits group by them)."""
    from keelwatch.schemas.audits import MAX_ATTRIBUTE_RECORDS_PER_CALL

    items = read_attribute_file(file)
    with cli_services() as services:
        stored, unknown = _send_attributes(
            services,
            items,
            cli_actor(actor, services.settings),
            batch=MAX_ATTRIBUTE_RECORDS_PER_CALL,
            quiet=as_json,
        )
    if as_json:
        # The shape of POST /predictions/attributes' answer.
        typer.echo(json.dumps({"stored": stored, "unknown_request_ids": unknown}))
        return
    typer.echo(
        f"attributes from {file.name}: {stored:,} request ids stored, "
        f"{len(unknown):,} unknown request ids"
    )
    if unknown:
        shown = ", ".join(unknown[:SHOWN_UNKNOWN])
        more = len(unknown) - SHOWN_UNKNOWN
        suffix = f" and {more:,} more (--json lists them all)" if more > 0 else ""
        stderr_console.print(
            Text(f"not in the prediction log, not stored: {shown}{suffix}", style="yellow"),
            soft_wrap=True,
        )


def read_attribute_file(path: Path) -> list[AttributeIn]:
    """Every row of ``path``, checked (exit 2 naming the row before anything is written). A
    request id on several rows merges their attributes, the later row winning per name."""
    from pydantic import ValidationError

    from keelwatch.schemas.audits import AttributeIn

    rows = _attribute_rows(path)
    if not rows:
        fail(f"{path}: no attributes (the file has no rows)")
    items: list[AttributeIn] = []
    for index, (request_id, attributes) in enumerate(rows, start=1):
        try:
            items.append(
                AttributeIn.model_validate({"request_id": request_id, "attributes": attributes})
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            fail(f"{path.name} row {index}: {where}: {first.get('msg', 'invalid')}")
    return items


def _attribute_rows(path: Path) -> list[tuple[Any, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if not path.is_file():
        fail(f"{path}: no such file")
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path)
    if suffix not in (".csv", ".parquet", ".pq"):
        fail(f"{path}: expected a JSON Lines, CSV or Parquet file (.jsonl, .csv, .parquet)")
    import pandas as pd

    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            frame = pd.read_parquet(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        fail(f"{path}: cannot read attributes ({exc})")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types
        fail(f"{path}: cannot read attributes ({type(exc).__name__}; not a valid file?)")
    if "request_id" not in frame.columns:
        found = ", ".join(map(str, frame.columns[:20])) or "none"
        fail(f"{path}: missing column request_id (found: {found})")
    names = [str(c) for c in frame.columns if c != "request_id"]
    if not names:
        fail(f"{path}: no attribute columns besides request_id")
    rows: list[tuple[Any, dict[str, Any]]] = []
    for record in frame.to_dict(orient="records"):
        request_id = record["request_id"]
        if isinstance(request_id, int) and not isinstance(request_id, bool):
            request_id = str(request_id)
        # An empty cell: this row does not have that attribute.
        rows.append((request_id, {n: _plain(record[n]) for n in names if not pd.isna(record[n])}))
    return rows


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars from Parquet → int/bool/float/str
    return item() if callable(item) else value


def _jsonl_rows(path: Path) -> list[tuple[Any, dict[str, Any]]]:
    rows: list[tuple[Any, dict[str, Any]]] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    fail(f"{path.name} line {number}: not a JSON object")
                if not isinstance(item, dict) or set(item) != {"request_id", "attributes"}:
                    fail(
                        f"{path.name} line {number}: expected exactly the keys request_id and "
                        "attributes"
                    )
                rows.append((item["request_id"], item["attributes"]))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read attributes ({type(exc).__name__})")
    return rows


def _send_attributes(
    services: Services, items: list[AttributeIn], actor: str, *, batch: int, quiet: bool
) -> tuple[int, list[str]]:
    """Record ``items`` in batches of ``batch``, each its own transaction; a progress bar on
    stderr when there is more than one batch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from keelwatch.storage.attributes import AttributeRecord, record_attributes

    stored = 0
    unknown: list[str] = []
    progress = Progress(
        TextColumn("attributes"),
        BarColumn(),
        MofNCompleteColumn(),
        console=stderr_console,
        disable=quiet or len(items) <= batch,
    )
    with progress, cli_errors():
        bar = progress.add_task("attributes", total=len(items))
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            records = [AttributeRecord(i.request_id, dict(i.attributes)) for i in chunk]
            with services.db.session() as session:
                result = record_attributes(session, records, actor)
            stored += result.stored
            unknown.extend(result.unknown)
            progress.advance(bar, len(chunk))
    return stored, unknown
