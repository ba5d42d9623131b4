"""Batch moderation runs: a dataset's text column, or a window of one model's prediction log
(a logged input or output column), moderated by the configured pipeline
(``monitoring.service.moderation.cached_moderator``) as one job (kind ``moderation_run``, so
``keelwatch jobs`` shows it).

Submission (:func:`submit_moderation_run`: the API's ``POST /moderation/runs`` and
``keelwatch moderation run``) checks the request, writes the job row and the audit entry
(``moderation.run``), commits, then sends ``MODERATION_RUN`` to the monitoring queue. The worker
(:func:`run_moderation_job`) reads the texts :data:`BATCH_ROWS` at a time; per batch it records
a tally (``record_moderation``: rates, signals, alert rules) and queues every ``review`` text
for a person (``enqueue_review``), in one transaction per batch. Every decision goes to
``<output folder>/decisions.parquet`` (``row``, ``request_id``, ``decision``, ``categories``,
``redacted``, ``error``): the redacted text only, never a text in clear.

Idempotent: tallies are keyed ``job:<id>:<batch>`` and review items ``job:<id>:<row>:<column>``,
so a redelivered run replaces its tallies, queues nothing twice and rewrites the file whole.
Errors name the file, column, rows and types, never a text.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.contract import (
    JOB_MODERATION_RUN,
    MODERATION_RUN,
    QUEUE_MONITORING,
    BrokerUnavailableError,
    TaskSender,
)
from keelwatch.data_roots import require_inside, resolve_read
from keelwatch.entities import Job, JobStatus
from keelwatch.errors import InvalidInputError
from keelwatch.inference.dataset import (
    InputFormat,
    column_types,
    inspect_input,
    local_path,
    read_rows,
)
from keelwatch.monitoring.moderation.policy import Decision
from keelwatch.storage.audit import record_audit
from keelwatch.storage.jobs import create_job, finish_job, get_job, set_job_running
from keelwatch.storage.predictions import recent_predictions

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.entities.moderation import ModerationTally
    from keelwatch.monitoring.moderation.pipeline import ModerationResult, Moderator
    from keelwatch.schemas.moderation_runs import ModerationRunIn
    from keelwatch.settings import DataRootsSettings
    from keelwatch.storage.db import Database

SUBMIT_ACTION = "moderation.run"
#: Texts per batch: one moderation call, one tally, one transaction.
BATCH_ROWS = 10_000
DECISIONS_FILE = "decisions.parquet"
#: The longest prediction-log window one run reads.
MAX_WINDOW = timedelta(days=400)
DEFAULT_WINDOW = timedelta(hours=24)
#: Stands for the version of a dataset run without ``model``/``version``.
NO_VERSION = "-"


@dataclass(frozen=True)
class ModerationRunOutcome:
    """What one run (one delivery of the task) did."""

    job_id: str
    status: str  # succeeded | skipped (the job had already finished)
    texts: int = 0
    skipped_rows: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    review_items: int = 0
    alert_transitions: int = 0
    output_path: str = ""


# --------------------------------------------------------------------------- submission


def create_moderation_run(
    session: Session,
    request: ModerationRunIn,
    *,
    actor: str,
    output_root: str | Path,
    now: datetime,
    data_roots: DataRootsSettings | None = None,
) -> Job:
    """Check ``request``, write the job and its ``moderation.run`` audit entry in the caller's
    transaction. With ``data_roots`` (requests over the API) the dataset must lie inside the
    read roots and the output folder inside the write roots. Sends nothing: the caller
    commits, then calls :func:`enqueue_moderation_run`."""
    job_id = str(uuid.uuid4())
    output_dir = Path(output_root).resolve() / job_id
    if data_roots is not None:
        output_dir = require_inside(output_dir, data_roots.write, what="the output folder")
    params: dict[str, Any] = {
        "source": request.source,
        "column": request.column,
        "output_dir": str(output_dir),
    }
    if request.source == "dataset":
        assert request.dataset is not None  # the schema requires it
        path = (
            resolve_read(request.dataset, data_roots.read, field="dataset")
            if data_roots is not None
            else local_path(request.dataset)
        )
        info = inspect_input(str(path))
        _check_text_column(path, info.format, info.columns, request.column)
        params.update(
            dataset=str(info.path),
            format=info.format.value,
            rows=info.rows,
            model_name=request.model or f"dataset:{info.path.name}"[:255],
            model_version=request.version or NO_VERSION,
            direction="text",
        )
        target = f"dataset:{info.path.name}"
    else:
        assert request.model is not None  # the schema requires it
        until = request.until or now
        try:
            since = request.since or until - DEFAULT_WINDOW
        except OverflowError:
            raise InvalidInputError("until is too early: give since as well") from None
        if since >= until:
            raise InvalidInputError("since must be before until")
        if until - since > MAX_WINDOW:
            raise InvalidInputError(f"the window is longer than {MAX_WINDOW.days} days")
        params.update(
            model_name=request.model,
            model_version=request.version,
            direction=request.direction,
            since=since.isoformat(),
            until=until.isoformat(),
        )
        target = f"model:{request.model}"
    job = create_job(
        session, kind=JOB_MODERATION_RUN, params=params, submitted_by=actor, job_id=job_id
    )
    record_audit(
        session,
        actor=actor,
        action=SUBMIT_ACTION,
        target=target[:255],
        reason=request.reason,
        details={"job_id": job.id, **{k: v for k, v in params.items() if k != "output_dir"}},
        at=now,
    )
    return job


def enqueue_moderation_run(db: Database, sender: TaskSender, job: Job) -> None:
    """Send a committed run to the monitoring queue. If the broker refuses it, the job is
    marked failed (its own transaction) and BrokerUnavailableError says why."""
    try:
        sender.send_task(
            MODERATION_RUN, kwargs={"job_id": job.id}, queue=QUEUE_MONITORING, ignore_result=True
        )
    except Exception as exc:
        message = (
            f"could not enqueue the moderation run: the broker is unreachable "
            f"({type(exc).__name__}); submit it again once the broker is back"
        )
        with db.session() as session:
            finish_job(session, job.id, status=JobStatus.FAILED, error=message)
        raise BrokerUnavailableError(f"job {job.id}: {message}") from exc


def submit_moderation_run(
    db: Database,
    sender: TaskSender,
    request: ModerationRunIn,
    *,
    actor: str,
    output_root: str | Path,
    now: datetime,
    data_roots: DataRootsSettings | None = None,
) -> Job:
    """Create the run in one transaction, commit, and only then enqueue it."""
    with db.session() as session:
        job = create_moderation_run(
            session, request, actor=actor, output_root=output_root, now=now, data_roots=data_roots
        )
    enqueue_moderation_run(db, sender, job)
    return job


def fail_moderation_run(db: Database, job_id: str, message: str) -> bool:
    """Fail the job once (its own transaction); False when it had already finished."""
    with db.session() as session:
        return finish_job(session, job_id, status=JobStatus.FAILED, error=message)


# --------------------------------------------------------------------------- the run


@dataclass
class _Batch:
    rows: list[int]
    texts: list[object]
    versions: list[str]
    request_ids: list[str | None]


def run_moderation_job(
    db: Database,
    job_id: str,
    *,
    moderator: Moderator,
    now: datetime,
    output_roots: Sequence[str | Path] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ModerationRunOutcome:
    """Moderate every text of run ``job_id`` and finish its job (see the module docstring).

    Raises InvalidInputError for what a retry cannot fix (the file changed or vanished, the
    column is gone, an output folder outside ``output_roots``); anything else is transient.
    """
    from keelwatch.monitoring.service.moderation import record_moderation
    from keelwatch.monitoring.service.moderation_metrics import count_tallies
    from keelwatch.monitoring.service.review_queue import enqueue_review

    with db.session() as session:
        job = get_job(session, job_id)
        if job.finished:
            return ModerationRunOutcome(job_id, "skipped")
        set_job_running(session, job_id)
    params = job.params
    column = str(params["column"])
    direction = str(params["direction"])
    model_name = str(params["model_name"])
    output_dir = Path(str(params["output_dir"]))
    if output_roots is not None:
        output_dir = require_inside(output_dir, output_roots, what=f"job {job_id}'s output folder")
    # A log run over every version of the model tallies each version of a batch apart.
    per_version = params["source"] == "predictions" and not params.get("model_version")
    writer = _DecisionsWriter(output_dir / DECISIONS_FILE)
    decisions = {d.value: 0 for d in Decision}
    texts = skipped = reviews = transitions = 0
    try:
        for index, batch in enumerate(_batches(db, params, batch_rows)):
            skipped += batch.rows.count(-1)
            keep = [i for i, row in enumerate(batch.rows) if row >= 0]
            results = moderator.moderate_many([batch.texts[i] for i in keep])
            tallies: list[ModerationTally] = []
            with db.session() as session:
                for version, members in _by_version(keep, batch.versions).items():
                    tally = record_moderation(
                        session,
                        [results[j] for j in members],
                        model_name=model_name,
                        model_version=version,
                        direction=direction,
                        source=f"job:{job_id}:{index}" + (f":{version}" if per_version else ""),
                        now=now,
                        detail={"job_id": job_id, "column": column},
                    )
                    tallies.append(tally)
                    transitions += int(tally.detail.get("alert_transitions", 0))
                for j, i in enumerate(keep):
                    result = results[j]
                    if result.decision is not Decision.REVIEW:
                        continue
                    text = batch.texts[i]
                    item = enqueue_review(
                        session,
                        source_key=f"job:{job_id}:{batch.rows[i]}:{column}"[:512],
                        model_name=model_name,
                        model_version=batch.versions[i] or NO_VERSION,
                        direction=direction,
                        text=text if isinstance(text, str) else "",
                        result=result,
                        now=now,
                        max_chars=moderator.max_chars,
                    )
                    reviews += item is not None
            count_tallies(tallies)
            for moderated in results:
                decisions[moderated.decision.value] += 1
            texts += len(keep)
            writer.write(
                [batch.rows[i] for i in keep], [batch.request_ids[i] for i in keep], results
            )
        written = writer.close()
    finally:
        writer.discard()
    summary: dict[str, Any] = {
        "texts": texts,
        "skipped_rows": skipped,
        "decisions": decisions,
        "review_items": reviews,
        "output_uri": written.as_uri(),
        "column": column,
        "direction": direction,
    }
    with db.session() as session:
        finish_job(session, job_id, status=JobStatus.SUCCEEDED, result=summary)
    return ModerationRunOutcome(
        job_id,
        "succeeded",
        texts=texts,
        skipped_rows=skipped,
        decisions=decisions,
        review_items=reviews,
        alert_transitions=transitions,
        output_path=str(written),
    )


def _by_version(keep: Sequence[int], versions: Sequence[str]) -> dict[str, list[int]]:
    """Positions in the moderated batch, grouped by the model version of their row."""
    groups: dict[str, list[int]] = {}
    for j, i in enumerate(keep):
        groups.setdefault(versions[i], []).append(j)
    return groups


def _batches(db: Database, params: dict[str, Any], batch_rows: int) -> Iterator[_Batch]:
    if params["source"] == "dataset":
        yield from _dataset_batches(params, batch_rows)
    else:
        yield from _log_batches(db, params, batch_rows)


def _dataset_batches(params: dict[str, Any], batch_rows: int) -> Iterator[_Batch]:
    """The column's values, ``batch_rows`` rows at a time; a missing value is skipped
    (row ``-1``)."""
    import pyarrow as pa

    path = Path(str(params["dataset"]))
    column = str(params["column"])
    fmt = InputFormat(str(params["format"]))
    rows = int(params["rows"])
    version = str(params["model_version"])
    types = {column: pa.string()} if fmt is InputFormat.CSV else None
    for start in range(0, rows, batch_rows):
        stop = min(start + batch_rows, rows)
        try:
            table = read_rows(path, fmt, start, stop, [column], types)
        except FileNotFoundError as exc:
            raise InvalidInputError(f"dataset {path} disappeared") from exc
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise InvalidInputError(
                f"cannot read rows {start}..{stop} of column {column!r} of {path} "
                f"({type(exc).__name__})"
            ) from exc
        if table.num_rows != stop - start:
            raise InvalidInputError(f"{path} has fewer rows than at submission: was it changed?")
        values = table.column(column).to_pylist()
        yield _Batch(
            rows=[start + i if v is not None else -1 for i, v in enumerate(values)],
            texts=values,
            versions=[version] * len(values),
            request_ids=[None] * len(values),
        )


def _log_batches(db: Database, params: dict[str, Any], batch_rows: int) -> Iterator[_Batch]:
    """The logged column of the window, newest first by log id; a row without it is skipped."""
    column = str(params["column"])
    side = "inputs" if params["direction"] == "input" else "outputs"
    version = params.get("model_version")
    since = datetime.fromisoformat(str(params["since"]))
    until = datetime.fromisoformat(str(params["until"]))
    before: int | None = None
    while True:
        with db.session() as session:
            page = recent_predictions(
                session,
                model_name=str(params["model_name"]),
                model_version=str(version) if version else None,
                since=since,
                until=until,
                limit=batch_rows,
                before_id=before,
            )
        if not page:
            return
        values = [getattr(record, side).get(column) for record in page]
        yield _Batch(
            rows=[
                int(record.log_id or 0) if value is not None else -1
                for record, value in zip(page, values, strict=True)
            ],
            texts=values,
            versions=[record.model_version for record in page],
            request_ids=[record.request_id for record in page],
        )
        if len(page) < batch_rows:
            return
        before = page[-1].log_id


def _check_text_column(path: Path, fmt: InputFormat, columns: list[str], column: str) -> None:
    import pyarrow as pa

    if column not in columns:
        shown = ", ".join(repr(c) for c in columns[:10]) + (", ..." if len(columns) > 10 else "")
        raise InvalidInputError(f"{path.name} has no column {column!r} (columns: {shown})")
    kind = column_types(path, fmt).get(column)
    if kind is not None and not (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
    ):
        raise InvalidInputError(f"column {column!r} of {path.name} is {kind}, not text")


class _DecisionsWriter:
    """Streams decisions to a hidden temporary Parquet file, renamed into place on close (a
    reader never sees half a file; a rerun replaces it whole)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        self._writer: Any = None

    def write(
        self, rows: list[int], request_ids: list[str | None], results: list[ModerationResult]
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "row": pa.array(rows, pa.int64()),
                "request_id": pa.array(request_ids, pa.string()),
                "decision": pa.array([r.decision.value for r in results], pa.string()),
                "categories": pa.array(
                    [[c.value for c in r.categories] for r in results], pa.list_(pa.string())
                ),
                # The redacted form only; a text that could not be moderated keeps nothing.
                "redacted": pa.array(
                    [None if r.error else r.redacted for r in results], pa.string()
                ),
                "error": pa.array([r.error for r in results], pa.string()),
            }
        )
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._temporary, table.schema)
        self._writer.write_table(table)

    def close(self) -> Path:
        if self._writer is None:  # no text at all: an empty file with the schema
            self.write([], [], [])
        self._writer.close()
        self._writer = None
        self._temporary.replace(self.path)
        return self.path

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._temporary.unlink(missing_ok=True)
