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
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import ActorOption, JsonOption, cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.schemas.evaluations import DatasetOut, EvaluationOut

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
    path: Annotated[
        Path, typer.Argument(help="CSV or Parquet file (a server path in remote mode).")
    ],
    label: Annotated[str, typer.Option("--label", help="Label (target) column.")],
    task: Annotated[
        str, typer.Option("--task", help="classification, regression or text_generation.")
    ] = "classification",
    description: Annotated[str, typer.Option("--description")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register PATH as the next version of dataset NAME (the same bytes: the same version)."""
    from keelwatch.schemas.evaluations import DatasetOut

    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        body = {"name": name, "uri": str(path), "label_column": label, "task": task,
                "description": description}  # fmt: skip
        dataset = DatasetOut.model_validate(remote.post("/evaluations/datasets", body))
    else:
        from keelwatch.monitoring.service.evaluations import register_dataset as register

        with cli_services() as services:
            who = cli_actor(actor, services.settings)
            with services.db.session() as session:
                registered = register(
                    session,
                    name=name,
                    uri=str(path),
                    label_column=label,
                    task=task,
                    actor=who,
                    description=description,
                )
        dataset = DatasetOut.from_entity(registered)
    if as_json:
        typer.echo(dataset.model_dump_json(indent=2))
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
    from keelwatch.schemas.evaluations import DatasetOut

    datasets: list[DatasetOut]
    if (remote := remote_client()) is not None:
        answer = remote.get("/evaluations/datasets", params={"name": name} if name else None)
        datasets = [DatasetOut.model_validate(d) for d in answer]
    else:
        from keelwatch.monitoring.service.evaluations import list_datasets as listed

        with cli_services() as services, services.db.session() as session:
            datasets = [DatasetOut.from_entity(d) for d in listed(session, name)]
    if as_json:
        typer.echo(json.dumps([d.model_dump(mode="json") for d in datasets], indent=2))
        return
    table = Table("name", "version", "task", "rows", "label", "sha256", "created by")
    for d in datasets:
        table.add_row(
            d.name, str(d.version), d.task, str(d.rows), d.label_column, d.content_hash[:12],
            d.created_by,
        )  # fmt: skip
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
    """Evaluate MODEL on a dataset on the worker fleet (exit 1 when it failed)."""
    from keelwatch.schemas.evaluations import EvaluationOut

    deadline = time.monotonic() + timeout
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        body = {"model": model, "dataset": dataset, "suites": suite or None,
                "require": require or [], "reason": reason}  # fmt: skip
        run = EvaluationOut.model_validate(remote.post("/evaluations", body))
        while wait and run.status not in TERMINAL:
            _check_deadline(run, deadline, timeout)
            time.sleep(0.5)
            run = EvaluationOut.model_validate(remote.get(f"/evaluations/{run.id}"))
    else:
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
            while True:
                with services.db.session() as session:
                    run = EvaluationOut.from_entity(run_for_job(session, job.id))
                if not wait or run.status in TERMINAL:
                    break
                _check_deadline(run, deadline, timeout)
                time.sleep(0.5)
    if as_json:
        typer.echo(run.model_dump_json(indent=2))
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
    from keelwatch.schemas.evaluations import EvaluationOut

    runs: list[EvaluationOut]
    if (remote := remote_client()) is not None:
        params = {k: v for k, v in (("model", model), ("version", version)) if v}
        answer = remote.get_all("/evaluations", params, most=limit)
        runs = [EvaluationOut.model_validate(r) for r in answer]
    else:
        from keelwatch.monitoring.service.evaluations import list_runs

        with cli_services() as services, services.db.session() as session:
            listed = list_runs(session, model_name=model, model_version=version, limit=limit)
            runs = [EvaluationOut.from_entity(r) for r in listed]
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
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


def _check_deadline(run: EvaluationOut, deadline: float, timeout: float) -> None:
    if time.monotonic() > deadline:
        fail(f"evaluation {run.id} (job {run.job_id}) still {run.status} after {timeout:.0f}s", 1)


_HEADLINE = ("accuracy", "f1_macro", "roc_auc", "mae", "rmse", "r2", "bleu", "latency_p95_s")


def _headline(run: EvaluationOut) -> str:
    shown: list[str] = []
    for values in run.metrics.values():
        shown.extend(f"{name}={values[name]:.4g}" for name in _HEADLINE if name in values)
    return ", ".join(shown)


def _print_run(run: EvaluationOut) -> None:
    console.print(
        f"evaluation {run.id} (job {run.job_id}): {run.model_name} v{run.model_version} on "
        f"{run.dataset_name}:{run.dataset_version}: {run.status}"
    )
    if run.error:
        console.print(f"  error: {run.error}")
    for suite, values in run.metrics.items():
        for name, value in values.items():
            shown = str(int(value)) if value.is_integer() else f"{value:.6g}"
            console.print(f"  {suite}.{name} = {shown}")
    if run.mlflow_run_id:
        console.print(f"  mlflow run {run.mlflow_run_id}")
