"""Scoring one chunk of a batch-inference job. Called by the worker's task adapter.

Every step is safe to repeat, because a chunk may run more than once (a retry, or redelivery
after a worker died mid-chunk):

1. the output file has a fixed name per chunk and is written to a temporary file then renamed,
   so a rerun replaces it whole and readers never see half a file; a temporary file left by a
   run killed mid-write is removed by the chunk's next run, and the job's last step removes
   any left in the output folder;
2. prediction-log rows have request ids ``f"{job_id}:{row}"`` picked by a deterministic sample,
   and the log ignores ids it already holds;
3. chunk completion is a conditional update, and the job is finished by whichever transaction
   sees the last chunk done, under a lock on the job row, so exactly once.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from keelwatch.data_roots import require_inside
from keelwatch.entities import ChunkStatus, JobStatus, PredictionRecord
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError, KeelwatchError
from keelwatch.inference.dataset import InputFormat, read_rows
from keelwatch.inference.planning import PART_FILE_PREFIX, part_file_name
from keelwatch.inference.sampling import prediction_request_id, sampled_rows
from keelwatch.inference.submit import BatchInferenceParams
from keelwatch.inference.validation import (
    arrow_type_for,
    first_unparsable_row,
    missing_value_problem,
    safe_exception_text,
)
from keelwatch.storage.jobs import (
    complete_chunk,
    fail_chunk,
    finish_job,
    get_chunk,
    get_job,
    list_chunks,
    lock_job,
    start_chunk,
)
from keelwatch.storage.predictions import bulk_write_predictions, count_predictions

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from keelwatch.monitoring.moderation.pipeline import Moderator
    from keelwatch.monitoring.service.moderation_chunks import ChunkModeration
    from keelwatch.storage.db import Database


class Predictor(Protocol):
    """What scores a frame: an ``mlflow.pyfunc.PyFuncModel`` in production."""

    def predict(self, data: Any) -> Any:
        """Predictions for every row of ``data``."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score, and where it runs."""

    predictor: Predictor
    device: str
    device_reason: str


ModelLoader = Callable[[str], LoadedModel]
"""Given a pinned ``models:/name/version`` URI, a (cached) loaded model."""

LogRedactor = Callable[[dict[str, Any]], dict[str, Any]]
"""Redacts a logged row's inputs or outputs (column → value) before the prediction log
stores them (``monitoring.service.privacy.prediction_log_redactor``)."""


@dataclass(frozen=True)
class ChunkOutcome:
    """What happened to one chunk task."""

    job_id: str
    chunk_index: int
    status: Literal["done", "already_done", "skipped"]
    rows: int = 0
    logged_rows: int = 0
    seconds: float = 0.0
    device: str = ""
    device_reason: str = ""
    model_name: str = ""
    model_version: str = ""
    job_finished: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class InputProfiler(Protocol):
    """Profiles the scored input in the same pass.

    Implemented by ``keelwatch.monitoring.service.job_profiles``.
    """

    def profile_chunk(
        self,
        *,
        model_name: str,
        model_version: str,
        table: pa.Table,
        output_dir: Path,
        chunk_index: int,
        predictions: Mapping[str, np.ndarray[Any, Any]] | None = None,
    ) -> Path | None:
        """Write the chunk's input (and prediction) profile next to its output part.

        Never raises.
        """
        ...

    def finish(self, output_dir: Path) -> None:
        """Merge the chunk profiles once the job is done (never raises)."""
        ...


def run_inference_chunk(
    db: Database,
    job_id: str,
    chunk_index: int,
    *,
    load_model: ModelLoader,
    input_profiler: InputProfiler | None = None,
    output_roots: Sequence[str | Path] | None = None,
    log_redactor: LogRedactor | None = None,
    moderator: Moderator | Callable[[], Moderator] | None = None,
) -> ChunkOutcome:
    """Score chunk ``chunk_index`` of job ``job_id``; finish the job if it was the last one.

    Raises InvalidInputError for problems that a retry cannot fix (unreadable rows, a model that
    rejects the data, an output folder outside ``output_roots``); the caller fails the job with
    it. Any other exception is transient. Workers pass their write roots
    (``KEELWATCH_DATA_ROOTS__WRITE``) as ``output_roots``, a second line of defence behind the
    API's check: nothing is read, scored or written for a job whose output lies elsewhere.

    A job of a text model (``params.moderation``) has its text columns moderated after
    predicting, by ``moderator`` (or a callable building it, called only for such jobs;
    workers pass ``settings.moderation``'s; without one, rules and PII detectors under the
    default policy): the part file holds each moderated output's released text (null for
    review and block) and a ``<column>_moderation`` decision column per moderated input and
    output; the prediction log and the profile see the redacted text only; tallies, rate
    signals and review items are stored before the chunk is marked done (see
    :mod:`keelwatch.monitoring.service.moderation_chunks`).
    """
    started = time.perf_counter()
    with db.session() as session:
        job = get_job(session, job_id)
        chunk = get_chunk(session, job_id, chunk_index)
    if job.finished:
        return ChunkOutcome(job_id, chunk_index, "skipped", detail={"job_status": job.status})
    if chunk.status is ChunkStatus.DONE:
        return ChunkOutcome(job_id, chunk_index, "already_done", rows=chunk.rows_done)

    params = BatchInferenceParams.model_validate(job.params)
    if output_roots is not None:
        require_inside(params.output_dir, output_roots, what=f"job {job_id}'s output folder")
    model = load_model(params.model_uri)
    with db.session() as session:
        start_chunk(session, job_id, chunk_index, device=model.device)

    table = _read_chunk(params, chunk.row_start, chunk.row_stop)
    predict_started = time.perf_counter()
    predictions = _predict(model.predictor, table, params, row_start=chunk.row_start)
    predict_seconds = time.perf_counter() - predict_started
    part_columns, kept_table, kept_predictions = predictions, table, predictions
    moderation: ChunkModeration | None = None
    if params.moderation is not None:
        moderation = _moderate_texts(_the_moderator(moderator), params, table, predictions)
        part_columns = moderation.part_columns(predictions)
        # Only redacted text goes further: the prediction log and the profile.
        kept_table, kept_predictions = moderation.logged_columns(table, predictions)

    output_dir = Path(params.output_dir)
    output_path = output_dir / part_file_name(chunk_index)
    _write_part_atomically(output_path, chunk.row_start, part_columns)
    if input_profiler is not None:
        input_profiler.profile_chunk(
            model_name=params.model_name,
            model_version=params.model_version,
            table=kept_table,
            output_dir=output_dir,
            chunk_index=chunk_index,
            predictions=kept_predictions,
        )

    logged = _log_sample(
        db,
        job_id,
        params,
        kept_table,
        kept_predictions,
        row_start=chunk.row_start,
        latency_ms=1000.0 * predict_seconds / max(table.num_rows, 1),
        log_redactor=log_redactor,
    )
    detail: dict[str, Any] = {}
    if moderation is not None:
        detail["moderation"] = _record_moderation(
            db, moderation, job_id, chunk_index, chunk.row_start, params
        )
    seconds = time.perf_counter() - started
    finished = _complete(
        db,
        job_id,
        chunk_index,
        rows=table.num_rows,
        output_path=str(output_path),
        model=model,
        params=params,
        # The merge runs before the job is marked succeeded, so whoever sees the job finished
        # also sees its one merged profile (and a crash before the commit redoes both).
        on_last_chunk=(
            (lambda: input_profiler.finish(output_dir)) if input_profiler is not None else None
        ),
    )
    return ChunkOutcome(
        job_id,
        chunk_index,
        "done",
        rows=table.num_rows,
        logged_rows=logged,
        seconds=seconds,
        device=model.device,
        device_reason=model.device_reason,
        model_name=params.model_name,
        model_version=params.model_version,
        job_finished=finished,
        detail=detail,
    )


def _moderate_texts(
    moderator: Moderator,
    params: BatchInferenceParams,
    table: pa.Table,
    predictions: dict[str, np.ndarray[Any, Any]],
) -> ChunkModeration:
    from keelwatch.monitoring.service.moderation_chunks import moderate_chunk

    assert params.moderation is not None
    return moderate_chunk(
        moderator,
        params.moderation.inputs,
        params.moderation.outputs,
        table,
        predictions,
    )


def _the_moderator(moderator: Moderator | Callable[[], Moderator] | None) -> Moderator:
    from keelwatch.monitoring.moderation.pipeline import Moderator

    if isinstance(moderator, Moderator):
        return moderator
    if moderator is not None:
        return moderator()
    # Never unmoderated: a caller without a moderator gets the rules and PII detectors.
    from keelwatch.monitoring.moderation.pii import PiiDetector
    from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, RuleFilter

    return Moderator([RuleFilter([DEFAULT_PROFANITY]), PiiDetector()])


def _record_moderation(
    db: Database,
    moderation: ChunkModeration,
    job_id: str,
    chunk_index: int,
    row_start: int,
    params: BatchInferenceParams,
) -> dict[str, Any]:
    """Tallies, signals and review items in their own transaction, before the chunk is marked
    done (a crash in between reruns the chunk, whose rerun replaces and skips them); the
    counters after the commit."""
    from keelwatch.monitoring.service.moderation_chunks import record_chunk_moderation
    from keelwatch.monitoring.service.moderation_metrics import count_tallies

    with db.session() as session:
        record = record_chunk_moderation(
            session,
            moderation,
            job_id=job_id,
            chunk_index=chunk_index,
            row_start=row_start,
            model_name=params.model_name,
            model_version=params.model_version,
            now=datetime.now(UTC),
        )
    count_tallies(record.tallies)
    return {
        "tallies": {t.direction: dict(t.decisions) for t in record.tallies},
        "recorded": {t.direction: t.detail.get("recorded") for t in record.tallies},
        "review_items": record.review_items,
        "alert_transitions": record.alert_transitions,
    }


def fail_inference_chunk(db: Database, job_id: str, chunk_index: int, error: str) -> None:
    """Record a chunk failure; the job fails with it (once)."""
    with db.session() as session:
        fail_chunk(session, job_id, chunk_index, error=error)


def _read_chunk(params: BatchInferenceParams, start: int, stop: int) -> pa.Table:
    path = Path(params.input_path)
    types = _csv_types(params)
    try:
        table = read_rows(path, params.input_format, start, stop, params.columns, types)
    except KeelwatchError:
        raise
    except FileNotFoundError as exc:
        raise InvalidInputError(f"input {params.input_path} disappeared") from exc
    except (ValueError, KeyError, TypeError) as exc:  # ArrowInvalid/ArrowTypeError included
        # Arrow's message quotes the value it could not convert: find it by column and row.
        raise InvalidInputError(_unreadable_rows(params, start, stop, exc)) from exc
    if table.num_rows != stop - start:
        raise InvalidInputError(
            f"{params.input_path} has fewer rows than at submission "
            f"(wanted rows {start}..{stop}, got {table.num_rows}): was it changed?"
        )
    return table


def _csv_types(params: BatchInferenceParams) -> dict[str, pa.DataType] | None:
    if params.input_format is not InputFormat.CSV or not params.column_types:
        return None
    types = {name: arrow_type_for(kind) for name, kind in params.column_types.items()}
    return {name: kind for name, kind in types.items() if kind is not None}


def _unreadable_rows(params: BatchInferenceParams, start: int, stop: int, exc: Exception) -> str:
    """Which column and row could not be read, never the value itself."""
    where = f"rows {start}..{stop} of {params.input_path}"
    if params.input_format is InputFormat.CSV and params.column_types:
        import pyarrow as pa

        as_text = {name: pa.string() for name in params.column_types}
        try:
            text = read_rows(
                Path(params.input_path), params.input_format, start, stop, params.columns, as_text
            )
        except (ValueError, KeyError, TypeError, OSError):
            text = None
        for name, kind in (params.column_types or {}).items():
            if text is None or name not in text.column_names:
                continue
            row = first_unparsable_row(text.column(name), kind)
            if row is not None:
                return f"column {name!r}: value at row {start + row} is not a valid {kind}"
    return f"cannot read {where}: {safe_exception_text(exc)}"


def _predict(
    predictor: Predictor, table: pa.Table, params: BatchInferenceParams, *, row_start: int
) -> dict[str, np.ndarray[Any, Any]]:
    # A missing value where the signature has an integer or boolean is known before predicting.
    problem = missing_value_problem(table, params.column_types, row_start=row_start, strict=False)
    if problem is not None:
        raise InvalidInputError(problem)
    frame = table.to_pandas()
    try:
        raw = predictor.predict(frame)
    except Exception as exc:
        # Same model, same rows, same error on every retry: that is a data problem, not luck.
        # Its text quotes rows (pandas, scikit-learn and MLflow all do): describe it instead.
        if _is_data_error(exc):
            problem = missing_value_problem(
                table, params.column_types, row_start=row_start, strict=True
            )
            raise InvalidInputError(
                f"model {params.model_name} v{params.model_version} rejected rows "
                f"{row_start}..{row_start + table.num_rows} of {params.input_path}: "
                f"{problem or safe_exception_text(exc)}"
            ) from exc
        raise
    return prediction_columns(raw, table.num_rows)


def _is_data_error(exc: Exception) -> bool:
    if isinstance(exc, ValueError | TypeError | KeyError):
        return True
    # MLflow's schema enforcement raises MlflowException with INVALID_PARAMETER_VALUE.
    error_code = getattr(exc, "error_code", None)
    return error_code == "INVALID_PARAMETER_VALUE"


def prediction_columns(raw: Any, rows: int) -> dict[str, np.ndarray[Any, Any]]:
    """Named output columns from whatever ``predict`` returned (array, Series, frame, list)."""
    import numpy as np
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        columns = {str(name): raw[name].to_numpy() for name in raw.columns}
    elif isinstance(raw, pd.Series):
        columns = {"prediction": raw.to_numpy()}
    else:
        array = np.asarray(raw)
        if array.ndim == 1:
            columns = {"prediction": array}
        elif array.ndim == 2:
            columns = {f"prediction_{i}": array[:, i] for i in range(array.shape[1])}
        else:
            raise InvalidInputError(f"model returned a {array.ndim}-d array; expected 1-d or 2-d")
    for name, values in columns.items():
        if len(values) != rows:
            raise InvalidInputError(
                f"model returned {len(values)} values for {rows} rows in column {name!r}"
            )
    return columns


#: Tries at writing a part whose temporary file a racing copy of the chunk removed (see below).
_PART_WRITE_ATTEMPTS = 3


def _write_part_atomically(
    path: Path, row_start: int, predictions: dict[str, np.ndarray[Any, Any]]
) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = len(next(iter(predictions.values())))
    table = pa.table(
        {"row_index": np.arange(row_start, row_start + rows, dtype=np.int64), **predictions}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # A run of this chunk killed between write and rename (SIGKILL, lost host) left its
    # temporary file: remove it, once, before writing.
    for stale in path.parent.glob(f".{path.name}.*{TEMPORARY_SUFFIX}"):
        stale.unlink(missing_ok=True)
    # A copy of this chunk running right now (a duplicate delivery) may have removed our
    # temporary file in its own clean-up, between our write and our rename. Both copies write
    # the same rows, so write it again (no clean-up this time, so two copies cannot keep
    # removing each other's files); a third vanished file is an error, and a retry of the task.
    for attempt in range(_PART_WRITE_ATTEMPTS):
        # A leading dot hides the temporary file from Parquet dataset readers.
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}")
        try:
            pq.write_table(table, temporary)
            temporary.replace(path)
            return
        except FileNotFoundError:
            if attempt + 1 == _PART_WRITE_ATTEMPTS:
                raise
        finally:
            temporary.unlink(missing_ok=True)


#: Ending of a part file being written (``.part-00003.parquet.<hex>.tmp``).
TEMPORARY_SUFFIX = ".tmp"


def remove_leftover_parts(output_dir: Path) -> list[Path]:
    """Remove temporary part files under ``output_dir`` (runs killed mid-write left them);
    returns those removed. Only Keelwatch's own names are touched."""
    removed: list[Path] = []
    if not output_dir.is_dir():
        return removed
    for stale in output_dir.glob(f".{PART_FILE_PREFIX}*{TEMPORARY_SUFFIX}"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def _log_sample(
    db: Database,
    job_id: str,
    params: BatchInferenceParams,
    table: pa.Table,
    predictions: dict[str, np.ndarray[Any, Any]],
    *,
    row_start: int,
    latency_ms: float,
    log_redactor: LogRedactor | None = None,
) -> int:
    # ``log_redactor`` (settings.privacy, monitoring.service.privacy) redacts each row's inputs
    # and outputs before they are written: PII never reaches the prediction log in clear.
    redact = log_redactor or _keep
    picked = sampled_rows(job_id, row_start, row_start + table.num_rows, params.log_sample_rate)
    if len(picked) == 0:
        return 0
    positions = picked - row_start
    inputs = table.take(positions).to_pylist()
    outputs = {name: values[positions].tolist() for name, values in predictions.items()}
    now = datetime.now(UTC)
    records = [
        PredictionRecord(
            request_id=prediction_request_id(job_id, int(row)),
            model_name=params.model_name,
            model_version=params.model_version,
            inputs=redact(_json_safe(inputs[i])),
            outputs=redact(_json_safe({name: outputs[name][i] for name in outputs})),
            latency_ms=latency_ms,
            created_at=now,
            job_id=job_id,
        )
        for i, row in enumerate(picked)
    ]
    # Its own transaction, before the chunk is marked done: a crash in between leaves the chunk
    # to be rerun, and the rerun's rows collide with these instead of duplicating them.
    return bulk_write_predictions(db.engine, records)


def _keep(values: dict[str, Any]) -> dict[str, Any]:
    return values


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            safe[key] = None  # JSON (and PostgreSQL's jsonb) has no NaN or infinity
        elif value is None or isinstance(value, str | int | float | bool):
            safe[key] = value
        else:
            safe[key] = str(value)
    return safe


def _complete(
    db: Database,
    job_id: str,
    chunk_index: int,
    *,
    rows: int,
    output_path: str,
    model: LoadedModel,
    params: BatchInferenceParams,
    on_last_chunk: Callable[[], None] | None = None,
) -> bool:
    with db.session() as session:
        # Locking the job row first serialises the completions of one job, so the "all chunks
        # done?" count below sees every other completion and exactly one transaction finishes it.
        lock_job(session, job_id)
        newly_done = complete_chunk(
            session,
            job_id,
            chunk_index,
            rows_done=rows,
            output_path=output_path,
            device=model.device,
        )
        if not newly_done:
            return False
        job = get_job(session, job_id)
        if job.chunks_done < job.chunks_total:
            return False
        if on_last_chunk is not None:
            on_last_chunk()
        # Before the commit that finishes the job: whoever sees it succeeded sees a clean folder.
        remove_leftover_parts(Path(params.output_dir))
        chunks = list_chunks(session, job_id)
        devices: dict[str, int] = {}
        for chunk in chunks:
            devices[chunk.device or "unknown"] = devices.get(chunk.device or "unknown", 0) + 1
        result = {
            "output_uri": Path(params.output_dir).as_uri(),
            "rows": job.rows_done,
            "chunks": job.chunks_total,
            "model_name": params.model_name,
            "model_version": params.model_version,
            "model_uri": params.model_uri,
            "device": next(iter(devices)) if len(devices) == 1 else "mixed",
            "devices": devices,
            "device_reason": model.device_reason,
            "queue": params.queue,
            "logged_rows": count_predictions(session, job_id=job_id),
            "duration_s": round((utcnow() - job.created_at).total_seconds(), 3),
        }
        return finish_job(session, job_id, status=JobStatus.SUCCEEDED, result=result)
