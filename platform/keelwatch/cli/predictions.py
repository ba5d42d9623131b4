"""``keelwatch predictions label``: record ground-truth labels from a CSV or Parquet file.

The command is mounted on the ``predictions`` group that ``ops`` owns. The whole file is
read and checked before anything is written (a bad row 90,000 writes nothing), then sent in
batches of :data:`~keelwatch.storage.labels.MAX_LABELS_PER_CALL`, each in its own transaction
with its own audit entry. Recording is idempotent, so sending a file again after a failure is
safe. pandas is imported inside the command so that ``keelwatch --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from keelwatch.cli.support import cli_actor, cli_errors, cli_services, fail, stderr_console
from keelwatch.entities import LabelRecord, LabelWriteResult

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.wiring import Services

LABEL_COLUMNS = ("request_id", "label")
DATA_SUFFIXES = (".csv", ".parquet", ".pq")
#: Unknown request ids printed in the summary (``--json`` lists all of them).
SHOWN_UNKNOWN = 10


def predictions_label(
    file: Annotated[
        Path, typer.Argument(help="CSV or Parquet file with columns request_id and label.")
    ],
    actor: Annotated[str | None, typer.Option(help="Who sends the labels (audit log).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Record ground-truth labels for logged predictions (the latest label wins)."""
    from keelwatch.storage.labels import validate_labels

    records = read_label_file(file)
    with cli_errors():
        distinct = validate_labels(records, position=lambda index: f"{file.name} row {index + 1}")
    labels = [LabelRecord(request_id, label) for request_id, label in distinct.items()]
    with cli_services() as services:
        result = send_labels(services, labels, cli_actor(actor, services.settings), quiet=as_json)
    if as_json:
        typer.echo(json.dumps(_as_json(result)))
        return
    typer.echo(
        f"labels from {file.name}: {result.inserted:,} inserted, {result.updated:,} updated, "
        f"{result.unchanged:,} unchanged, {len(result.unknown):,} unknown request ids"
    )
    if result.unknown:
        shown = ", ".join(result.unknown[:SHOWN_UNKNOWN])
        more = len(result.unknown) - SHOWN_UNKNOWN
        suffix = f" and {more:,} more (--json lists them all)" if more > 0 else ""
        # Text, not markup: request ids may contain "[...]".
        stderr_console.print(
            Text(f"not in the prediction log, not stored: {shown}{suffix}", style="yellow"),
            soft_wrap=True,
        )


def read_label_file(path: Path) -> list[LabelRecord]:
    """Every row of ``path`` as a label record, values as plain Python objects (unchecked)."""
    frame = _read_frame(path)
    missing = [column for column in LABEL_COLUMNS if column not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        fail(f"{path}: missing column(s) {', '.join(missing)} (found: {found})")
    if frame.empty:
        fail(f"{path}: no labels (the file has no rows)")
    ids = [_request_id(value) for value in frame["request_id"].tolist()]
    # tolist() turns numpy scalars into int/float/bool; missing values stay NaN or None and
    # are refused with their row number when the labels are checked.
    return [
        LabelRecord(rid, label) for rid, label in zip(ids, frame["label"].tolist(), strict=True)
    ]


def _read_frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        fail(f"{path}: expected a CSV or Parquet file ({', '.join(DATA_SUFFIXES)})")
    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        if suffix == ".csv":
            # request ids stay text ("007" is not 7); only empty cells are missing, so a label
            # "NA" or "null" is the string it says.
            return pd.read_csv(
                path, dtype={"request_id": str}, keep_default_na=False, na_values=[""]
            )
        return pd.read_parquet(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # These name the file, a line and field counts, never a cell's value.
        fail(f"{path}: cannot read labels ({exc})")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types for corrupt files
        # Other readers' messages may quote the cells they choked on: say only what failed.
        fail(f"{path}: cannot read labels ({type(exc).__name__}; not a valid CSV/Parquet file?)")


def _request_id(value: Any) -> Any:
    # Parquet files may hold integer ids; anything else that is not text is refused later.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def send_labels(
    services: Services, labels: list[LabelRecord], actor: str, *, quiet: bool = False
) -> LabelWriteResult:
    """Record ``labels`` in batches; a progress bar on stderr when there is more than one."""
    from sqlalchemy.exc import SQLAlchemyError

    from keelwatch.storage.labels import MAX_LABELS_PER_CALL, record_labels

    batch = MAX_LABELS_PER_CALL
    inserted = updated = unchanged = 0
    unknown: list[str] = []
    progress = Progress(
        TextColumn("labels"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr_console,
        disable=quiet or len(labels) <= batch,
    )
    with progress:
        bar = progress.add_task("labels", total=len(labels))
        for start in range(0, len(labels), batch):
            try:
                with services.db.session() as session:
                    result = record_labels(session, labels[start : start + batch], actor)
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", exc)).strip().splitlines()
                fail(
                    f"database error after {start:,} of {len(labels):,} labels were recorded "
                    f"(sending the file again is safe): {reason[0] if reason else exc}"
                )
            inserted += result.inserted
            updated += result.updated
            unchanged += result.unchanged
            unknown.extend(result.unknown)
            progress.advance(bar, min(batch, len(labels) - start))
    return LabelWriteResult(inserted, updated, unchanged, tuple(unknown))


def _as_json(result: LabelWriteResult) -> dict[str, Any]:
    # The same shape as the API's POST /predictions/labels response.
    return {
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "unknown_request_ids": list(result.unknown),
    }
