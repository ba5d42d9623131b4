"""``keelwatch gate ...``: champion/challenger gate policies, checks and decisions.

``gate set MODEL --file policy.yaml`` stores a model's policy (YAML or JSON; errors name the
key); ``gate check MODEL`` runs the gate on the worker fleet (``--wait`` prints the decision;
exit 1 when the job failed, 3 when the champion did not move). ``show``, ``check`` and
``decisions`` also work remotely (``KEELWATCH_API_URL``); ``set`` is local (or
``PUT /gate/policies/{model}``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console

from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import (
    ActorOption,
    JsonOption,
    cli_actor,
    cli_services,
    fail,
    read_definitions,
)

if TYPE_CHECKING:
    from keelwatch.cli.remote import RemoteClient
    from keelwatch.schemas.gate import GateDecisionOut

console = Console(markup=False)

gate_app = typer.Typer(
    help="Champion/challenger gate: policies, checks, decisions.", no_args_is_help=True
)

#: Exit code of ``gate check --wait`` when the gate did not promote.
NOT_PROMOTED_EXIT = 3


def _load_policy(file: Path) -> dict[str, Any]:
    import yaml

    text = read_definitions(file, "gate policy")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"gate policy file {file} is not valid YAML/JSON ({type(exc).__name__})")
    if not isinstance(data, dict):
        fail(f"gate policy file {file} must hold a mapping")
    return data


@gate_app.command("set")
def set_policy(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="Policy file (YAML or JSON).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store MODEL's gate policy from FILE (replacing any)."""
    from keelwatch.monitoring.service import gate as service
    from keelwatch.schemas.gate import GatePolicyOut

    data = _load_policy(file)
    with cli_services() as services, services.db.session() as session:
        record = service.set_policy(
            session, model, data, actor=cli_actor(actor, services.settings), reason=reason
        )
    out = GatePolicyOut.from_entity(record)
    if as_json:
        typer.echo(out.model_dump_json(indent=2))
        return
    console.print(f"gate policy of {model} set by {out.updated_by}")


@gate_app.command("show")
def show_policy(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: JsonOption = False,
) -> None:
    """Print MODEL's gate policy (exit 2 when it has none)."""
    from keelwatch.monitoring.service import gate as service
    from keelwatch.schemas.gate import GatePolicyOut

    if (remote := remote_client()) is not None:
        out = GatePolicyOut.model_validate(remote.get(f"/gate/policies/{quote(model, safe='')}"))
    else:
        with cli_services() as services, services.db.session() as session:
            out = GatePolicyOut.from_entity(service.get_policy(session, model))
    if as_json:
        typer.echo(out.model_dump_json(indent=2))
        return
    import yaml

    console.print(f"# gate policy of {model} (set by {out.updated_by} at {out.updated_at})")
    console.print(yaml.safe_dump(out.policy, sort_keys=False).rstrip())


@gate_app.command("check")
def run_check(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    challenger: Annotated[
        str | None, typer.Option("--challenger", help="Version (default: challenger alias).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="name or name:N (default: the policy's).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the decision.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")] = 600.0,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the gate on MODEL's challenger against its champion on the worker fleet."""
    from keelwatch.monitoring.service import gate as service
    from keelwatch.schemas.gate import GateCheckOut, GateDecisionOut
    from keelwatch.storage.gate import decision_for_job
    from keelwatch.storage.jobs import get_job

    deadline = time.monotonic() + timeout
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        body = {"model": model, "challenger": challenger, "dataset": dataset, "reason": reason}
        submitted = GateCheckOut.model_validate(remote.post("/gate/checks", body))
        summary = (
            f"gate check {submitted.job_id}: challenger v{submitted.challenger_version} vs "
            f"champion v{submitted.champion_version} on {submitted.dataset}"
        )
        if not wait:
            _print_submitted(submitted.job_id, submitted.status, summary, as_json=as_json)
            return
        decided = _remote_decision(remote, submitted.job_id, model, deadline, timeout)
        _finish_check(decided, summary, as_json=as_json)
        return
    with cli_services() as services:
        job = service.submit_gate_check(
            services.db,
            services.sender,
            services.registry,
            model=model,
            challenger=challenger,
            dataset=dataset,
            actor=cli_actor(actor, services.settings),
            reason=reason,
        )
        params = job.params
        summary = (
            f"gate check {job.id}: challenger v{params['challenger']['version']} vs champion "
            f"v{params['champion']['version']} on {params['dataset']['name']}:"
            f"{params['dataset']['version']}"
        )
        if not wait:
            _print_submitted(job.id, job.status.value, summary, as_json=as_json)
            return
        while True:
            with services.db.session() as session:
                current = get_job(session, job.id)
                found = decision_for_job(session, job.id) if current.finished else None
            if current.finished:
                break
            if time.monotonic() > deadline:
                fail(f"gate check {job.id} still {current.status.value} after {timeout:.0f} s", 1)
            time.sleep(0.5)
    if found is None:
        fail(f"gate check {job.id} failed: {current.error}", 1)
    _finish_check(GateDecisionOut.from_entity(found), summary, as_json=as_json)


def _print_submitted(job_id: str, status: str, summary: str, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"job_id": job_id, "status": status}))
    else:
        console.print(summary + " (queued)")


def _remote_decision(
    remote: RemoteClient, job_id: str, model: str, deadline: float, timeout: float
) -> GateDecisionOut:
    from keelwatch.schemas.gate import GateDecisionOut

    while True:
        job = remote.get(f"/jobs/{job_id}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            fail(f"gate check {job_id} still {job['status']} after {timeout:.0f} s", 1)
        time.sleep(0.5)
    for decision in remote.get_all("/gate/decisions", {"model": model}, most=50):
        if decision["job_id"] == job_id:
            return GateDecisionOut.model_validate(decision)
    return fail(f"gate check {job_id} failed: {job.get('error')}", 1)


def _finish_check(out: GateDecisionOut, summary: str, *, as_json: bool) -> None:
    if as_json:
        typer.echo(out.model_dump_json(indent=2))
    else:
        console.print(summary)
        _print_decision(out)
    if not out.promoted:
        raise typer.Exit(NOT_PROMOTED_EXIT)


@gate_app.command("decisions")
def list_decisions(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    as_json: JsonOption = False,
) -> None:
    """MODEL's gate decisions, newest first, with their reasons."""
    from keelwatch.monitoring.service import gate as service
    from keelwatch.schemas.gate import GateDecisionOut

    if (remote := remote_client()) is not None:
        answer = remote.get_all("/gate/decisions", {"model": model}, most=limit)
        decisions = [GateDecisionOut.model_validate(d) for d in answer]
    else:
        with cli_services() as services, services.db.session() as session:
            decisions = [
                GateDecisionOut.from_entity(d)
                for d in service.list_decisions(session, model=model, limit=limit)
            ]
    if as_json:
        typer.echo(json.dumps([d.model_dump(mode="json") for d in decisions], indent=2))
        return
    for decision in decisions:
        _print_decision(decision)


def _print_decision(decision: Any) -> None:
    moved = "champion moved" if decision.promoted else "champion unchanged"
    console.print(
        f"decision {decision.id} [{decision.decided_at:%Y-%m-%d %H:%M:%S}] {decision.outcome} "
        f"({moved}): v{decision.challenger_version} vs champion v{decision.champion_version} "
        f"on {decision.dataset}"
    )
    for line in decision.reasons:
        console.print(f"  {line}")
