"""``keelwatch models ...``: the model registry from the command line.

Every mutating command records an audit entry; the actor is ``--actor``, else
``KEELWATCH_ACTOR``, else the OS user. Bad input exits with code 2 and a one-line message.
MLflow is only imported when a command talks to the registry, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from keelwatch.cli.remote import refuse_actor, remote_client, remote_settings
from keelwatch.cli.support import ActorOption, cli_actor, cli_services, fail

if TYPE_CHECKING:
    from keelwatch.registry import ModelVersionInfo, RegisteredModelInfo
    from keelwatch.schemas.registry import ModelVersionOut, RegisteredModelOut

# No markup: model names, aliases and reasons are user text and may contain "[...]".
console = Console(markup=False)

models_app = typer.Typer(
    help="Model registry: versions, approvals, aliases, rollback, history.", no_args_is_help=True
)
alias_app = typer.Typer(help="Set or clear a model alias.", no_args_is_help=True)
models_app.add_typer(alias_app, name="alias")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ReasonRequired = Annotated[
    str, typer.Option("--reason", "-r", help="Why (audit log; required for every change).")
]
ReasonOptional = Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")]
NameArgument = Annotated[str, typer.Argument(help="Registered model name.")]
VersionArgument = Annotated[str, typer.Argument(help="Version number.")]


def _print_json(items: BaseModel | Sequence[BaseModel]) -> None:
    if isinstance(items, BaseModel):
        payload: object = items.model_dump(mode="json")
    else:
        payload = [item.model_dump(mode="json") for item in items]
    typer.echo(json.dumps(payload, indent=2))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _versions_table(title: str, versions: Sequence[ModelVersionInfo | ModelVersionOut]) -> Table:
    table = Table(title=title)
    for column in ("version", "approval", "aliases", "created (UTC)", "by", "note"):
        table.add_column(column)
    for info in versions:
        note = "rolled back" if info.rolled_back else (info.approval_reason or "")
        table.add_row(
            info.version,
            info.approval.value,
            ", ".join(info.aliases),
            _when(info.created_at),
            info.approval_actor or info.tags.get("keelwatch.registered_by", ""),
            note,
        )
    return table


def _say_version(
    verb: str, info: ModelVersionInfo | ModelVersionOut, *, as_json: bool = False
) -> None:
    """One line for a changed version (or its JSON); ``info`` from the registry or the API."""
    if as_json:
        from keelwatch.schemas.registry import ModelVersionOut

        _print_json(info if isinstance(info, ModelVersionOut) else ModelVersionOut.of(info))
        return
    aliases = f" [{', '.join(info.aliases)}]" if info.aliases else ""
    console.print(f"{verb} {info.name} v{info.version}{aliases} ({info.approval.value})")


def _quote(segment: str) -> str:
    """A name or version as one URL path segment."""
    from urllib.parse import quote

    return quote(segment, safe="")


def _remote_version(payload: object) -> ModelVersionOut:
    from keelwatch.schemas.registry import ModelVersionOut

    return ModelVersionOut.model_validate(payload)


@models_app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """List registered models with their aliases."""
    from keelwatch.schemas.registry import RegisteredModelOut

    models: Sequence[RegisteredModelInfo | RegisteredModelOut]
    if (remote := remote_client()) is not None:
        models = [RegisteredModelOut.model_validate(item) for item in remote.get_all("/models")]
    else:
        with cli_services() as services:
            models = services.registry.list_models()
    if as_json:
        _print_json(
            [
                model if isinstance(model, RegisteredModelOut) else RegisteredModelOut.of(model)
                for model in models
            ]
        )
        return
    table = Table(title="Registered models")
    for column in ("name", "latest", "aliases", "updated (UTC)"):
        table.add_column(column)
    for model in models:
        aliases = ", ".join(
            f"{alias}→v{version}" for alias, version in sorted(model.aliases.items())
        )
        table.add_row(model.name, model.latest_version or "-", aliases, _when(model.updated_at))
    console.print(table)


@models_app.command("versions")
def list_versions(name: NameArgument, as_json: JsonOption = False) -> None:
    """List the versions of a model, oldest first."""
    from keelwatch.schemas.registry import ModelVersionOut

    if (remote := remote_client()) is not None:
        answer = remote.get_all(f"/models/{_quote(name)}/versions")
        versions = [_remote_version(item) for item in answer]
    else:
        with cli_services() as services:
            versions = [ModelVersionOut.of(info) for info in services.registry.list_versions(name)]
    if as_json:
        _print_json(versions)
        return
    console.print(_versions_table(f"{name}: versions", versions))


@models_app.command("show")
def show_version(name: NameArgument, version: VersionArgument, as_json: JsonOption = False) -> None:
    """Show one version: approval, aliases, source and tags."""
    from keelwatch.schemas.registry import ModelVersionOut

    if (remote := remote_client()) is not None:
        info = _remote_version(remote.get(f"/models/{_quote(name)}/versions/{_quote(version)}"))
    else:
        with cli_services() as services:
            info = ModelVersionOut.of(services.registry.get_version(name, version))
    if as_json:
        _print_json(info)
        return
    console.print(_versions_table(f"{name} v{info.version}", [info]))
    console.print(f"source: {info.source}", soft_wrap=True)
    for key, value in sorted(info.tags.items()):
        console.print(f"  {key} = {value}", soft_wrap=True)


@models_app.command("register")
def register(
    name: NameArgument,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="MLflow run holding the model.")
    ] = None,
    artifact_path: Annotated[
        str, typer.Option("--artifact-path", help="The model's name/path inside the run.")
    ] = "model",
    model_uri: Annotated[
        str | None,
        typer.Option("--model-uri", help="runs:/..., models:/..., or a folder with an MLmodel."),
    ] = None,
    reason: ReasonOptional = "",
    description: Annotated[str | None, typer.Option(help="Version description.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a new version (pending approval) from an MLflow run or a model URI."""
    from keelwatch.schemas.registry import ModelVersionOut

    if (run_id is None) == (model_uri is None):
        fail("give exactly one of --run-id and --model-uri")
    with cli_services(create=True) as services:
        info = services.registry.register_version(
            name,
            run_id=run_id,
            artifact_path=artifact_path,
            model_uri=model_uri,
            actor=cli_actor(actor, services.settings),
            reason=reason,
            description=description,
        )
    if as_json:
        _print_json(ModelVersionOut.of(info))
        return
    _say_version("registered", info)


@models_app.command("approve")
def approve(
    name: NameArgument,
    version: VersionArgument,
    reason: ReasonRequired,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a pending version (required before it can become champion).

    A rejected version cannot be approved: re-open it first (keelwatch models reopen).
    """
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        path = f"/models/{_quote(name)}/versions/{_quote(version)}/approve"
        answer = remote.post(path, {"reason": reason})
        _say_version("approved", _remote_version(answer), as_json=as_json)
        return
    with cli_services() as services:
        info = services.registry.approve(
            name, version, actor=cli_actor(actor, services.settings), reason=reason
        )
    _say_version("approved", info, as_json=as_json)


@models_app.command("reject")
def reject(
    name: NameArgument,
    version: VersionArgument,
    reason: ReasonRequired,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a version: final; it can no longer be approved or get any alias.

    Only an explicit, audited re-open (keelwatch models reopen) returns it to pending.
    """
    with cli_services() as services:
        info = services.registry.reject(
            name, version, actor=cli_actor(actor, services.settings), reason=reason
        )
    _say_version("rejected", info, as_json=as_json)


@models_app.command("reopen")
def reopen(
    name: NameArgument,
    version: VersionArgument,
    reason: ReasonRequired,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-open a rejected version: it returns to pending and can be approved again (audited)."""
    with cli_services() as services:
        info = services.registry.reopen(
            name, version, actor=cli_actor(actor, services.settings), reason=reason
        )
    _say_version("re-opened", info, as_json=as_json)


@models_app.command("promote")
def promote(
    name: NameArgument,
    version: VersionArgument,
    reason: ReasonRequired,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Alias to move (default: the champion).")
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias (default: champion) at a version; the champion must be approved."""
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        path = f"/models/{_quote(name)}/versions/{_quote(version)}/promote"
        body = {"reason": reason, "alias": alias} if alias is not None else {"reason": reason}
        _say_version("promoted", _remote_version(remote.post(path, body)), as_json=as_json)
        return
    with cli_services() as services:
        info = services.registry.promote(
            name, version, alias=alias, actor=cli_actor(actor, services.settings), reason=reason
        )
    _say_version("promoted", info, as_json=as_json)


@models_app.command("rollback")
def rollback(
    name: NameArgument,
    reason: ReasonRequired,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move the champion back to the last known-good version."""
    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        answer = remote.post(f"/models/{_quote(name)}/rollback", {"reason": reason})
        _say_version("rolled back to", _remote_version(answer), as_json=as_json)
        return
    with cli_services() as services:
        info = services.registry.rollback(
            name, actor=cli_actor(actor, services.settings), reason=reason
        )
    _say_version("rolled back to", info, as_json=as_json)


@alias_app.command("set")
def set_alias(
    name: NameArgument,
    alias: Annotated[str, typer.Argument(help="Alias name, e.g. challenger.")],
    version: VersionArgument,
    reason: ReasonRequired,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (same rules as promote)."""
    with cli_services() as services:
        info = services.registry.set_alias(
            name, alias, version, actor=cli_actor(actor, services.settings), reason=reason
        )
    _say_version(f"set {alias} on", info, as_json=as_json)


@alias_app.command("clear")
def clear_alias(
    name: NameArgument,
    alias: Annotated[str, typer.Argument(help="Alias name.")],
    reason: ReasonRequired,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove an alias from a model."""
    from keelwatch.schemas.registry import ClearedAliasOut

    with cli_services() as services:
        previous = services.registry.clear_alias(
            name, alias, actor=cli_actor(actor, services.settings), reason=reason
        )
    if as_json:
        _print_json(ClearedAliasOut(name=name, alias=alias, previous_version=previous))
        return
    console.print(f"cleared {name}@{alias} (was v{previous})")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"invalid --at {text!r}: use ISO 8601, e.g. 2026-01-31T12:00:00Z")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@models_app.command("history")
def history(
    name: NameArgument,
    alias: Annotated[str | None, typer.Option("--alias", help="Default: the champion.")] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="ISO time: print only the version the alias had then (UTC)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Alias history ("who was champion when"), or the version an alias had at --at."""
    from keelwatch.schemas.registry import AliasAtOut, AliasChangeOut

    moment = _parse_time(at) if at is not None else None
    version: str | None = None
    changes: list[AliasChangeOut] = []
    if (remote := remote_client()) is not None:
        settings = remote_settings()
        assert settings is not None  # remote mode
        alias_name = alias or settings.registry.champion_alias
        base = f"/models/{_quote(name)}/aliases/{_quote(alias_name)}"
        if moment is not None:
            answer = remote.get(base, {"at": moment.isoformat()})
            version = AliasAtOut.model_validate(answer).version
        else:
            changes = [AliasChangeOut.model_validate(c) for c in remote.get_all(f"{base}/history")]
    else:
        with cli_services() as services:
            alias_name = alias or services.settings.registry.champion_alias
            if moment is not None:
                version = services.registry.version_at(name, alias_name, moment)
            else:
                changes = [
                    AliasChangeOut.of(change)
                    for change in services.registry.alias_history(name, alias_name)
                ]
    if moment is not None:
        if as_json:
            _print_json(AliasAtOut(name=name, alias=alias_name, at=moment, version=version))
        elif version is None:
            console.print(f"{name}@{alias_name} was not set at {_when(moment)} UTC")
        else:
            console.print(f"{name}@{alias_name} was v{version} at {_when(moment)} UTC")
        return
    if as_json:
        _print_json(changes)
        return
    table = Table(title=f"{name}@{alias_name}: history")
    for column in ("at (UTC)", "version", "previous", "actor", "reason"):
        table.add_column(column)
    for change in changes:
        table.add_row(
            _when(change.at),
            f"v{change.version}" if change.version else "(cleared)",
            f"v{change.previous_version}" if change.previous_version else "-",
            change.actor,
            change.reason,
        )
    console.print(table)


@models_app.command("resolve")
def resolve(
    ref: Annotated[str, typer.Argument(help="name, name@alias, name/3, models:/name/3 ...")],
    as_json: JsonOption = False,
) -> None:
    """Resolve a model reference to a pinned version URI and its input columns."""
    from keelwatch.schemas.registry import ResolvedModelOut

    with cli_services() as services:
        resolved = services.registry.resolve(ref)
        columns = services.registry.input_columns(resolved)
    if as_json:
        _print_json(ResolvedModelOut.of(resolved, columns))
        return
    console.print(f"{ref} -> {resolved.model_uri}")
    console.print(
        f"input columns: {', '.join(columns) if columns is not None else '(no signature)'}"
    )


# ``package.module:function``: dotted identifiers, one colon, one identifier (what
# actions.executor.load_trainer imports); checked here so a typo fails now, not at retrain time.
_TRAINER_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


@models_app.command("set-trainer")
def set_trainer(
    name: NameArgument,
    trainer: Annotated[
        str, typer.Argument(help="The retrain function, as package.module:function.")
    ],
    reason: ReasonRequired,
    actor: ActorOption = None,
) -> None:
    """Record the function a `retrain` policy calls for this model (audited model.set_trainer).

    The function is imported by the worker that retrains, so it is not imported here: only its
    shape is checked.
    """
    from keelwatch.actions.executor import TAG_TRAINER
    from keelwatch.storage.audit import record_audit

    spec = trainer.strip()
    if not _TRAINER_SPEC.match(spec):
        fail(f"trainer {trainer!r} is not 'package.module:function'")
    if not reason.strip():
        fail("--reason must not be blank")
    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        model = services.registry.get_model(name)  # NotFoundError: a clean exit 2
        tags = services.registry.client.get_registered_model(model.name).tags or {}
        with services.db.session() as session:
            # Tag first, audit in the same transaction: a failed tag leaves no audit entry.
            services.registry.client.set_registered_model_tag(model.name, TAG_TRAINER, spec)
            record_audit(
                session,
                actor=who,
                action="model.set_trainer",
                target=f"model:{model.name}",
                reason=reason,
                details={"trainer": spec, "previous": tags.get(TAG_TRAINER)},
            )
    console.print(f"trainer of {model.name} set to {spec}")
