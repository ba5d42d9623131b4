"""``keelwatch infer ...`` and ``keelwatch jobs ...``: batch inference and job progress.

``infer submit`` validates and enqueues a batch-inference job (``--wait`` follows it with a
progress bar); ``jobs status|list|wait`` read job progress from Keelwatch's database. Celery,
MLflow and pyarrow are imported only inside the commands that need them.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from keelwatch.cli.remote import remote_client
from keelwatch.cli.support import cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.entities import Job, JobChunk
    from keelwatch.schemas.jobs import JobView
    from keelwatch.wiring import Services

# No markup: paths, model names and error messages are user text and may contain "[...]".
console = Console(markup=False)

infer_app = typer.Typer(help="Batch inference through the worker fleet.", no_args_is_help=True)
jobs_app = typer.Typer(
    help="Job status, listing, waiting, cancelling and retrying.", no_args_is_help=True
)

EXIT_JOB_FAILED = 1
POLL_INTERVAL_S = 0.5

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
JobIdArgument = Annotated[
    str, typer.Argument(help="Job id, or a unique prefix of it (the short id progress bars print).")
]
TimeoutOption = Annotated[
    float | None, typer.Option("--timeout", help="Give up waiting after this many seconds.")
]


def _load_job(services: Services, job_id: str) -> Job:
    from keelwatch.storage.jobs import get_job, resolve_job_id

    with services.db.session() as session:
        return get_job(session, resolve_job_id(session, job_id))


def _job_json(services: Services, job: Job, *, with_chunks: bool) -> str:
    from keelwatch.schemas.jobs import JobView
    from keelwatch.storage.jobs import list_chunks

    chunks = None
    if with_chunks:
        with services.db.session() as session:
            chunks = list_chunks(session, job.id)
    return JobView.from_job(job, chunks).model_dump_json(indent=2)


@infer_app.command("submit")
def submit(
    model: Annotated[
        str, typer.Option("--model", "-m", help="'name@alias', 'name/version' or models:/ URI.")
    ],
    input_uri: Annotated[
        str, typer.Option("--input", "-i", help="Parquet or CSV file (path or file:// URI).")
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output folder (default: data_dir/outputs/JOB_ID)."),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="auto | cpu | gpu (gpu: the gpu queue, CUDA there).")
    ] = "auto",
    chunk_rows: Annotated[
        int | None, typer.Option("--chunk-rows", help="Rows per chunk (default: settings).")
    ] = None,
    sample_rate: Annotated[
        float | None,
        typer.Option("--sample-rate", help="Fraction of rows copied to the prediction log."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to the end.")] = False,
    timeout: TimeoutOption = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who submits, for the audit log.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a batch-inference job; with --wait, show progress and exit 1 if it fails."""
    from pydantic import ValidationError

    from keelwatch.contract import BatchInferenceRequest
    from keelwatch.inference import submit_batch_inference

    try:
        request = BatchInferenceRequest(
            model=model,
            input_uri=input_uri,
            output_uri=output,
            device=device,
            chunk_rows=chunk_rows,
            log_sample_rate=sample_rate,
        )
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    with cli_services() as services:
        job = submit_batch_inference(
            services.db,
            services.sender,
            services.registry,
            services.settings.inference,
            request,
            cli_actor(actor, services.settings),
            text_model_tag=services.settings.moderation.text_model_tag,
        )
        params = job.params
        if not as_json:
            console.print(
                f"Submitted job {job.id}: {job.rows_total:,} rows in {job.chunks_total} chunks "
                f"on the {params['queue']} queue ({params['model_name']} "
                f"v{params['model_version']})"
            )
        if wait:
            job = _follow(services, job.id, timeout=timeout, quiet=as_json)
        if as_json:
            typer.echo(_job_json(services, job, with_chunks=False))
        elif wait:
            _print_outcome(job)
        if wait and not _succeeded(job):
            raise typer.Exit(EXIT_JOB_FAILED)


@jobs_app.command("status")
def status(
    job_id: JobIdArgument,
    as_json: JsonOption = False,
    chunks: Annotated[bool, typer.Option("--chunks", help="Also list every chunk.")] = False,
) -> None:
    """Show a job: status, progress (chunks and rows), result or error."""
    from keelwatch.schemas.jobs import JobView

    if (remote := remote_client()) is not None:
        view = JobView.model_validate(remote.get(f"/jobs/{quote(job_id, safe='')}"))
    else:
        with cli_services() as services:
            job = _load_job(services, job_id)
            view = JobView.from_job(job, _list_chunks(services, job.id) if chunks else None)
    if not chunks:
        view.chunks = None  # the API always sends them; --chunks asks for them
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
        return
    _print_job(view)


def _list_chunks(services: Services, job_id: str) -> list[JobChunk]:
    from keelwatch.storage.jobs import list_chunks

    with services.db.session() as session:
        return list_chunks(session, job_id)


def _print_job(view: JobView) -> None:
    """A job as ``jobs status`` prints it (from the database or the API), chunks if it has them."""
    table = Table(show_header=False, box=None)
    table.add_row("job", view.id)
    table.add_row("kind", view.kind)
    table.add_row("status", view.status)
    table.add_row("submitted by", f"{view.submitted_by} at {view.created_at:%Y-%m-%d %H:%M:%S}Z")
    table.add_row("chunks", f"{view.chunks_done}/{view.chunks_total}")
    table.add_row("rows", f"{view.rows_done:,}/{view.rows_total:,}")
    if "model_name" in view.params:
        table.add_row("model", f"{view.params['model_name']} v{view.params['model_version']}")
    for key in ("output_uri", "device", "device_reason", "logged_rows", "duration_s"):
        if key in view.result:
            table.add_row(key.replace("_", " "), str(view.result[key]))
    if view.error:
        table.add_row("error", view.error)
    console.print(table)
    if view.chunks is None:
        return
    chunk_table = Table("chunk", "status", "rows", "attempts", "device", "error")
    for chunk in view.chunks:
        chunk_table.add_row(
            str(chunk.index),
            chunk.status,
            f"{chunk.row_start}..{chunk.row_stop}",
            str(chunk.attempts),
            chunk.device or "",
            chunk.error or "",
        )
    console.print(chunk_table)


@jobs_app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option("--kind", help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The newest jobs first."""
    from keelwatch.schemas.jobs import JobView
    from keelwatch.storage.jobs import list_jobs

    with cli_services() as services:
        with services.db.session() as session:
            jobs = list_jobs(session, kind=kind, limit=limit)
        if as_json:
            typer.echo(json.dumps([JobView.from_job(j).model_dump(mode="json") for j in jobs]))
            return
        table = Table()
        table.add_column("id", no_wrap=True, min_width=36)
        for header in ("status", "chunks", "rows", "submitted", "kind"):
            table.add_column(header, no_wrap=True)
        for job in jobs:
            table.add_row(
                job.id,
                job.status.value,
                f"{job.chunks_done}/{job.chunks_total}",
                f"{job.rows_done:,}/{job.rows_total:,}",
                f"{job.created_at:%m-%d %H:%M}",
                job.kind,
            )
        console.print(table)


@jobs_app.command("wait")
def wait_(
    job_id: JobIdArgument, timeout: TimeoutOption = None, as_json: JsonOption = False
) -> None:
    """Follow a job with a progress bar; exit 0 if it succeeds, 1 if it fails or times out."""
    with cli_services() as services:
        job = _follow(services, job_id, timeout=timeout, quiet=as_json)
        if as_json:
            typer.echo(_job_json(services, job, with_chunks=False))
        else:
            _print_outcome(job)
        if not _succeeded(job):
            raise typer.Exit(EXIT_JOB_FAILED)


ActorOption = Annotated[str | None, typer.Option("--actor", help="Who acts, for the audit log.")]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")]


@jobs_app.command("cancel")
def cancel(
    job_id: JobIdArgument,
    reason: ReasonOption = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a pending or running job: chunks not started are skipped, running ones finish."""
    from keelwatch.inference.control import cancel_job

    with cli_services() as services:
        with services.db.session() as session:
            job = cancel_job(
                session, job_id, actor=cli_actor(actor, services.settings), reason=reason
            )
        if as_json:
            typer.echo(_job_json(services, job, with_chunks=False))
            return
    console.print(
        f"Cancelled job {job.id} ({job.chunks_done}/{job.chunks_total} chunks done; "
        "running chunks finish, the rest are skipped)"
    )


@jobs_app.command("retry")
def retry(
    job_id: JobIdArgument,
    reason: ReasonOption = "",
    actor: ActorOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job to the end.")] = False,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the chunks of a failed or cancelled job that are not done again."""
    from keelwatch.inference.control import retry_job

    with cli_services() as services:
        job = retry_job(
            services.db,
            services.sender,
            job_id,
            actor=cli_actor(actor, services.settings),
            reason=reason,
        )
        if not as_json:
            console.print(
                f"Retrying job {job.id}: {job.chunks_total - job.chunks_done} of "
                f"{job.chunks_total} chunks enqueued again"
            )
        if wait:
            job = _follow(services, job.id, timeout=timeout, quiet=as_json)
        if as_json:
            typer.echo(_job_json(services, job, with_chunks=False))
        elif wait:
            _print_outcome(job)
        if wait and not _succeeded(job):
            raise typer.Exit(EXIT_JOB_FAILED)


def _follow(services: Services, job_id: str, *, timeout: float | None, quiet: bool) -> Job:
    """Poll the job until it finishes (or ``timeout``), drawing chunks and rows done."""
    deadline = None if timeout is None else time.monotonic() + timeout
    job = _load_job(services, job_id)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} chunks"),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=False,
    )
    with progress:
        bar = progress.add_task(f"job {job.id[:8]}", total=job.chunks_total, rows="0")
        while True:
            progress.update(
                bar,
                completed=job.chunks_done,
                rows=f"{job.rows_done:,}/{job.rows_total:,}",
                description=f"job {job.id[:8]} {job.status.value}",
            )
            if job.finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                fail(f"job {job.id} still {job.status.value} after {timeout:g}s", EXIT_JOB_FAILED)
            time.sleep(POLL_INTERVAL_S)
            job = _load_job(services, job_id)


def _succeeded(job: Job) -> bool:
    from keelwatch.entities import JobStatus

    return job.status is JobStatus.SUCCEEDED


def _print_outcome(job: Job) -> None:
    if _succeeded(job):
        result = job.result
        console.print(
            f"Job {job.id} succeeded: {result.get('rows', job.rows_done):,} rows on "
            f"{result.get('device', '?')} ({result.get('device_reason', '')}) in "
            f"{result.get('duration_s', '?')}s; output {result.get('output_uri', '?')}; "
            f"{result.get('logged_rows', 0)} rows in the prediction log"
        )
    else:
        Console(stderr=True, markup=False).print(f"Job {job.id} {job.status.value}: {job.error}")
