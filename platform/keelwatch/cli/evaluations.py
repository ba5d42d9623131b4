"""``keelwatch eval ...``: evaluation datasets, evaluation runs on the fleet, their results.

``eval_app`` is the ``eval`` group; other command modules add their sub-commands to it
(``eval realized``, ``eval schedule``). Every mutating command records an audit entry (actor:
``--actor``, else ``KEELWATCH_ACTOR``, else the OS user). Bad input exits with code 2 and a
one-line message. Heavy imports happen inside the commands, so ``keelwatch --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.entities.evaluation import EvalRun

console = Console(markup=False)

eval_app = typer.Typer(
    help="Evaluations of registered models: datasets, runs on the fleet, results.",
    no_args_is_help=True,
)
datasets_app = typer.Typer(help="Evaluation datasets (versioned files).", no_args_is_help=True)
eval_app.add_typer(datasets_app, name="datasets")

TERMINAL = ("succeeded", "failed", "cancelled")


@datasets_app.command("register")
def register_dataset(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file.")],
    label: Annotated[str, typer.Option("--label", help="Label (target) column.")],
    task: Annotated[
        str, typer.Option("--task", help="classification, regression or text_generation.")
    ] = "classification",
    description: Annotated[str, typer.Option("--description")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register PATH as the next version of dataset NAME (the same bytes: the same version)."""
    from keelwatch.monitoring.service.evaluations import register_dataset as register
    from keelwatch.schemas.evaluations import DatasetOut

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            dataset = register(
                session,
                name=name,
                uri=str(path),
                label_column=label,
                task=task,
                actor=who,
                description=description,
            )
    if as_json:
        typer.echo(DatasetOut.from_entity(dataset).model_dump_json(indent=2))
        return
    console.print(
        f"dataset {dataset.name} v{dataset.version}: {dataset.rows} rows, "
        f"{len(dataset.columns)} columns, label {dataset.label_column!r}, "
        f"sha256 {dataset.content_hash[:12]}"
    )


@datasets_app.command("list")
def list_datasets(
    name: Annotated[str | None, typer.Option("--name", help="Only this dataset.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every registered dataset version."""
    from keelwatch.monitoring.service.evaluations import list_datasets as listed
    from keelwatch.schemas.evaluations import DatasetOut

    with cli_services() as services, services.db.session() as session:
        datasets = listed(session, name)
    if as_json:
        typer.echo(
            json.dumps(
                [DatasetOut.from_entity(d).model_dump(mode="json") for d in datasets], indent=2
            )
        )
        return
    table = Table("name", "version", "task", "rows", "label", "sha256", "created by")
    for d in datasets:
        table.add_row(
            d.name,
            str(d.version),
            d.task,
            str(d.rows),
            d.label_column,
            d.content_hash[:12],
            d.created_by,
        )
    console.print(table)


@eval_app.command("run")
def run_evaluation(
    model: Annotated[str, typer.Argument(help="name, name/3 or name@alias.")],
    dataset: Annotated[str, typer.Option("--dataset", help="name or name:version.")],
    suite: Annotated[
        list[str] | None, typer.Option("--suite", help="Suite to run (repeatable).")
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option("--require", help="Metric that must be computable, e.g. roc_auc."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")] = 600.0,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate MODEL on a dataset on the worker fleet."""
    from keelwatch.monitoring.service.evaluations import run_for_job, submit_evaluation

    with cli_services() as services:
        job = submit_evaluation(
            services.db,
            services.sender,
            services.registry,
            model_ref=model,
            dataset=dataset,
            suites=suite or None,
            actor=cli_actor(actor, services.settings),
            reason=reason,
            require=require or (),
        )
        deadline = time.monotonic() + timeout
        while True:
            with services.db.session() as session:
                run = run_for_job(session, job.id)
            if not wait or run.status in TERMINAL:
                break
            if time.monotonic() > deadline:
                fail(f"evaluation {job.id} still {run.status} after {timeout:.0f}s", code=1)
            time.sleep(0.5)
    if as_json:
        typer.echo(json.dumps(_run_dict(run), indent=2))
    else:
        _print_run(run)
    if run.status == "failed":
        raise typer.Exit(1)


@eval_app.command("results")
def results(
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Only this version.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Evaluation runs, newest first, with their headline metrics."""
    from keelwatch.monitoring.service.evaluations import list_runs

    with cli_services() as services, services.db.session() as session:
        runs = list_runs(session, model_name=model, model_version=version, limit=limit)
    if as_json:
        typer.echo(json.dumps([_run_dict(r) for r in runs], indent=2))
        return
    table = Table("id", "model", "version", "dataset", "status", "metrics", "created")
    for r in runs:
        table.add_row(
            str(r.id),
            r.model_name,
            r.model_version,
            f"{r.dataset_name}:{r.dataset_version}",
            r.status,
            _headline(r) or (r.error or "")[:80],
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


def _run_dict(run: EvalRun) -> dict[str, Any]:
    from keelwatch.schemas.evaluations import EvaluationOut

    return EvaluationOut.from_entity(run).model_dump(mode="json")


_HEADLINE = ("accuracy", "f1_macro", "roc_auc", "mae", "rmse", "r2", "bleu", "latency_p95_s")


def _headline(run: EvalRun) -> str:
    shown: list[str] = []
    for values in run.metrics.values():
        shown.extend(f"{name}={values[name]:.4g}" for name in _HEADLINE if name in values)
    return ", ".join(shown)


def _print_run(run: EvalRun) -> None:
    console.print(
        f"evaluation {run.id} (job {run.job_id}): {run.model_name} v{run.model_version} on "
        f"{run.dataset_name}:{run.dataset_version}: {run.status}"
    )
    if run.error:
        console.print(f"  error: {run.error}")
    for suite, values in run.metrics.items():
        for name, value in values.items():
            console.print(f"  {suite}.{name} = {value:.6g}")
    if run.mlflow_run_id:
        console.print(f"  mlflow run {run.mlflow_run_id}")
