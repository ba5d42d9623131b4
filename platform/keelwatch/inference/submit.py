"""Submitting a batch-inference job: validate everything, write the job, then enqueue chunks.

Three steps the caller can also take one by one (the caller owns the transaction):
:func:`plan_batch_inference` (validation, no writes), :func:`create_batch_job` (rows and audit in
the caller's session), :func:`enqueue_chunks` (after the commit);
:func:`submit_batch_inference` does all three.

Nothing is written unless the request is valid (model resolves, input exists, is readable, not
empty and matches the model signature), and nothing is enqueued before the job row is committed,
so a worker never receives a chunk it cannot find.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from keelwatch.contract import (
    INFERENCE_CHUNK,
    JOB_BATCH_INFERENCE,
    QUEUE_CPU,
    QUEUE_GPU,
    BatchInferenceRequest,
    BrokerUnavailableError,
    Device,
    InferenceChunkPayload,
    TaskSender,
)
from keelwatch.data_roots import require_inside, resolve_read, resolve_write
from keelwatch.entities import Job, JobStatus
from keelwatch.errors import ConflictError, InvalidInputError
from keelwatch.inference.dataset import InputFormat, column_types, inspect_input, local_path
from keelwatch.inference.planning import PART_FILE_PREFIX, check_columns, plan_chunks
from keelwatch.inference.validation import check_column_types
from keelwatch.storage.audit import record_audit
from keelwatch.storage.jobs import create_job, finish_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.entities.registry import ResolvedModel
    from keelwatch.registry import ModelRegistry
    from keelwatch.settings import DataRootsSettings, InferenceSettings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)


#: Default of ``settings.moderation.text_model_tag``: the tag that marks a text model.
TEXT_MODEL_TAG = "keelwatch.text_model"


class TextColumns(BaseModel):
    """The text columns a worker moderates in a job of a text model: input columns of the
    data and output columns of the model, each a list of names or ``"*"`` (every string
    column)."""

    inputs: list[str] | Literal["*"] = Field(default_factory=list)
    outputs: list[str] | Literal["*"] = Field(default_factory=list)


class BatchInferenceParams(BaseModel):
    """Everything a worker needs about a batch-inference job, stored in the job row's params.

    The model reference is pinned to a version at submission: promoting another champion while
    the job runs does not change which model scores the remaining chunks.
    """

    model_ref: str
    model_name: str
    model_version: str
    model_uri: str
    input_path: str
    input_format: InputFormat
    columns: list[str] | None
    column_types: dict[str, str] | None = None
    """Signature type per input column (``double``, ``long`` ...): the worker parses CSV columns
    as these and reports a value that does not fit by column and row."""
    output_dir: str
    device: Device
    queue: str
    chunk_rows: int
    log_sample_rate: float
    moderation: TextColumns | None = None
    """Set for a text model (tagged ``keelwatch.text_model``): the columns the worker moderates
    (absent for other models, so jobs stored before moderation existed still parse)."""


def queue_for_device(device: Device) -> str:
    """``gpu`` goes to the gpu queue; ``cpu`` and ``auto`` to the cpu queue."""
    return QUEUE_GPU if device == "gpu" else QUEUE_CPU


@dataclass(frozen=True)
class PlannedJob:
    """A validated batch-inference request, ready to be written: what :func:`create_batch_job`
    stores and what the audit entry says."""

    job_id: str
    params: BatchInferenceParams
    bounds: list[tuple[int, int]]
    rows: int


def plan_batch_inference(
    registry: ModelRegistry,
    defaults: InferenceSettings,
    request: BatchInferenceRequest,
    *,
    data_roots: DataRootsSettings | None = None,
    text_model_tag: str = TEXT_MODEL_TAG,
) -> PlannedJob:
    """Validate ``request`` against the registry and the input file; writes nothing.

    Raises NotFoundError for an unknown model and InvalidInputError for an input that is missing,
    unreadable, empty, of an unsupported format or whose columns do not match the model signature.

    With ``data_roots`` (what arrives over the API) the input must lie inside the read roots and
    the output folder inside the write roots (:mod:`keelwatch.data_roots`), checked before the
    model or the file is looked at; without them (the local CLI) paths are taken as given.

    A version (or its registered model) tagged ``text_model_tag``
    (``settings.moderation.text_model_tag``) is a text model: its job moderates the columns
    the tag names (:func:`text_columns_from_tag`; an input column the signature lacks is an
    InvalidInputError).
    """
    if data_roots is not None:
        request = _confine(request, data_roots)
    resolved = registry.resolve(request.model)
    expected = registry.input_spec(resolved)
    expected_columns = list(expected) if expected is not None else None
    moderation = text_columns_of(registry, resolved, text_model_tag)
    if moderation is not None and expected_columns is not None and moderation.inputs != "*":
        unknown = [c for c in moderation.inputs if c not in expected_columns]
        if unknown:
            raise InvalidInputError(
                f"model {resolved.name} v{resolved.version}: tag {text_model_tag} names input "
                f"column(s) {', '.join(repr(c) for c in unknown)} that its signature lacks"
            )

    info = inspect_input(request.input_uri)
    if info.rows == 0:
        raise InvalidInputError(f"input {info.path} has no rows")
    check_columns(info.columns, expected_columns, source=f"input {info.path}")
    check_column_types(column_types(info.path, info.format), expected, source=f"input {info.path}")

    job_id = str(uuid.uuid4())
    output_dir = (
        local_path(request.output_uri)
        if request.output_uri
        else Path(defaults.output_dir).resolve() / job_id
    )
    if data_roots is not None:
        output_dir = require_inside(
            output_dir, data_roots.write, what="the output folder (KEELWATCH_INFERENCE__OUTPUT_DIR)"
        )
    _refuse_used_output(output_dir)

    chunk_rows = request.chunk_rows or defaults.chunk_rows
    bounds = plan_chunks(info.rows, chunk_rows, info.row_group_rows)
    params = BatchInferenceParams(
        model_ref=request.model,
        model_name=resolved.name,
        model_version=str(resolved.version),
        model_uri=resolved.model_uri,
        input_path=str(info.path),
        input_format=info.format,
        columns=list(expected_columns) if expected_columns is not None else None,
        column_types=expected,
        output_dir=str(output_dir),
        device=request.device,
        queue=queue_for_device(request.device),
        chunk_rows=chunk_rows,
        log_sample_rate=(
            request.log_sample_rate
            if request.log_sample_rate is not None
            else defaults.log_sample_rate
        ),
        moderation=moderation,
    )
    return PlannedJob(job_id=job_id, params=params, bounds=list(bounds), rows=info.rows)


def create_batch_job(session: Session, planned: PlannedJob, actor: str) -> Job:
    """Write the job, its chunks and the ``job.submit`` audit entry in the caller's transaction.

    Sends nothing: the caller commits, then calls :func:`enqueue_chunks`.
    """
    params = planned.params
    job = create_job(
        session,
        kind=JOB_BATCH_INFERENCE,
        params=params.model_dump(mode="json"),
        submitted_by=actor,
        chunk_bounds=planned.bounds,
        job_id=planned.job_id,
    )
    record_audit(
        session,
        actor=actor,
        action="job.submit",
        target=f"job:{planned.job_id}",
        reason=f"batch inference of {planned.rows} rows with {params.model_uri}",
        details={
            "kind": JOB_BATCH_INFERENCE,
            "model": params.model_ref,
            "model_uri": params.model_uri,
            "input": params.input_path,
            "rows": planned.rows,
            "chunks": len(planned.bounds),
            "queue": params.queue,
        },
    )
    return job


def submit_batch_inference(
    db: Database,
    sender: TaskSender,
    registry: ModelRegistry,
    defaults: InferenceSettings,
    request: BatchInferenceRequest,
    actor: str,
    *,
    data_roots: DataRootsSettings | None = None,
    text_model_tag: str = TEXT_MODEL_TAG,
) -> Job:
    """Plan, write (one committed transaction), then enqueue the chunks of a batch job.

    When the request is invalid no job row exists and no message was sent. ``data_roots`` and
    ``text_model_tag``: see :func:`plan_batch_inference`.
    """
    planned = plan_batch_inference(
        registry, defaults, request, data_roots=data_roots, text_model_tag=text_model_tag
    )
    with db.session() as session:
        job = create_batch_job(session, planned, actor)
    # Committed: a worker now finds the job and its chunks.
    enqueue_chunks(db, sender, job.id, range(len(planned.bounds)), planned.params.queue)
    return job


def enqueue_chunks(
    db: Database, sender: TaskSender, job_id: str, indexes: Iterable[int], queue: str
) -> None:
    """Send one chunk task per index (after the job's commit: a worker must find its rows).

    BrokerUnavailableError (503 on the API) when the broker does not take a message: the job
    is then marked failed with that reason, and ``keelwatch jobs retry`` (``POST
    /jobs/{id}/retry``) runs it once the broker is back. Failed rather than left pending: the
    caller was told no, so the job must not start later behind its back (a client that
    resubmits would get it twice); the row keeps the request and its audit entry, so nothing
    accepted is lost.
    """
    try:
        for index in indexes:
            payload = InferenceChunkPayload(job_id=job_id, chunk_index=index)
            # ignore_result: nobody waits on a chunk's Celery result (its row is the truth);
            # without it a Redis result backend subscribes this process to a channel per
            # message, never released, and a dead backend stalls the send for seconds.
            sender.send_task(
                INFERENCE_CHUNK, kwargs=payload.model_dump(), queue=queue, ignore_result=True
            )
    except Exception as exc:
        # The job is committed but its chunks cannot all reach the fleet: say so on the job
        # rather than leave it pending forever. Chunks already sent find it failed and stop.
        # Only the error's type: a broker error's text may name hosts and credentials.
        logger.warning("job %s: broker refused a chunk on queue %s: %r", job_id, queue, exc)
        message = (
            f"could not enqueue chunks on queue {queue!r}: the broker is unreachable "
            f"({type(exc).__name__}); the job is marked failed: retry it with "
            f"`keelwatch jobs retry {job_id}` (POST /jobs/{job_id}/retry) once the broker is back"
        )
        with db.session() as session:
            finish_job(session, job_id, status=JobStatus.FAILED, error=message)
        raise BrokerUnavailableError(f"job {job_id}: {message}") from exc


def _confine(request: BatchInferenceRequest, roots: DataRootsSettings) -> BatchInferenceRequest:
    """``request`` with its paths replaced by their real paths inside the data roots."""
    update = {"input_uri": str(resolve_read(request.input_uri, roots.read, field="input_uri"))}
    if request.output_uri:
        output = resolve_write(request.output_uri, roots.write, field="output_uri")
        update["output_uri"] = str(output)
    return request.model_copy(update=update)


def _refuse_used_output(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise InvalidInputError(f"output location {output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.glob(f"{PART_FILE_PREFIX}*")):
        raise ConflictError(
            f"output folder {output_dir} already holds part files from another job; "
            "choose an empty folder"
        )


def text_columns_from_tag(value: str, *, tag: str = TEXT_MODEL_TAG) -> TextColumns | None:
    """The text columns a tag value names: ``inputs=prompt;outputs=completion`` (names
    comma-separated, ``*`` for every string column, either part may be left out), ``true``
    (every string column of both), or None for ``false`` and an empty value.
    InvalidInputError naming the tag for anything else."""
    text = value.strip()
    if text.lower() in ("", "false", "0", "no"):
        return None
    if text.lower() in ("true", "1", "yes", "*"):
        return TextColumns(inputs="*", outputs="*")
    parts: dict[str, list[str] | Literal["*"]] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, names = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("inputs", "outputs") or key in parts:
            raise InvalidInputError(
                f"tag {tag}: write inputs=COL,...;outputs=COL,... (or true), not {value[:80]!r}"
            )
        columns = [c.strip() for c in names.split(",") if c.strip()]
        parts[key] = "*" if columns == ["*"] else columns
    if not parts:
        return None
    return TextColumns(**parts)


def text_columns_of(
    registry: ModelRegistry, resolved: ResolvedModel, tag: str = TEXT_MODEL_TAG
) -> TextColumns | None:
    """The text columns of a resolved version: its own ``tag``, else its registered model's;
    None when neither has it (not a text model)."""
    value = registry.get_version(resolved.name, resolved.version).tags.get(tag)
    if value is None:
        value = (registry.client.get_registered_model(resolved.name).tags or {}).get(tag)
    return None if value is None else text_columns_from_tag(str(value), tag=tag)


def job_params(job: Job) -> BatchInferenceParams:
    """The typed parameters of a batch-inference job."""
    return BatchInferenceParams.model_validate(job.params)
