"""``keelwatch tokens ...``: create, list and revoke API tokens; see which token the CLI uses.

These commands talk to the database directly, as a local administrator: the audit log
records ``--actor``, else ``KEELWATCH_ACTOR``, else the OS user. ``create`` prints the token
once, alone on stdout (so ``TOKEN=$(keelwatch tokens create ...)`` works) and what it made on
stderr; nothing can show it again. ``list`` shows prefixes, never secrets or hashes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keelwatch.cli.remote import remote_client
from keelwatch.cli.support import (
    ActorOption,
    cli_actor,
    cli_errors,
    cli_services,
    fail,
    stderr_console,
)

if TYPE_CHECKING:
    from keelwatch.entities.auth import ApiToken

# No markup: names are user text.
console = Console(markup=False)

tokens_app = typer.Typer(
    help="API tokens: create (shown once), list (prefixes only), revoke.", no_args_is_help=True
)


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def token_json(token: ApiToken, now: datetime) -> dict[str, Any]:
    """What ``tokens list --json`` prints for one token (no secret, no hash)."""
    return {
        "name": token.name,
        "role": token.role.value,
        "prefix": token.prefix,
        "state": token.state(now).value,
        "created_by": token.created_by,
        "created_at": _when(token.created_at),
        "expires_at": _when(token.expires_at),
        "revoked_at": _when(token.revoked_at),
        "last_used_at": _when(token.last_used_at),
    }


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses it (unique while active).")],
    role: Annotated[
        str, typer.Option("--role", help="viewer, operator, reviewer, approver or admin.")
    ],
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Lifetime, e.g. 90d, 12h, 2w (default: no expiry)."),
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Create a token and print it once (stdout); store it now, it is never shown again."""
    from keelwatch.auth.roles import parse_role
    from keelwatch.auth.secrets_file import server_secret
    from keelwatch.auth.tokens import create_token, parse_lifetime
    from keelwatch.entities.time import utcnow

    with cli_errors():
        wanted_role = parse_role(role)
        lifetime = parse_lifetime(expires) if expires is not None else None
    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        key = server_secret(services.settings)
        with services.db.session() as session:
            issued = create_token(
                session,
                key,
                name=name,
                role=wanted_role,
                actor=who,
                now=utcnow(),
                lifetime=lifetime,
            )
    token = issued.token
    until = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "no expiry"
    stderr_console.print(
        Text(
            f"created token {token.name} (role {token.role.value}, prefix {token.prefix}, "
            f"{until}); it is shown once, below: store it now"
        ),
        soft_wrap=True,
    )
    typer.echo(issued.secret)


@tokens_app.command("list")
def list_tokens(
    all_tokens: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tokens, oldest first: name, role, prefix, state, expiry, last use (never secrets)."""
    from keelwatch.entities.time import utcnow
    from keelwatch.storage.tokens import list_tokens as stored_tokens

    with cli_services() as services, services.db.session() as session:
        tokens = stored_tokens(session, include_revoked=all_tokens)
    now = utcnow()
    if as_json:
        typer.echo(json.dumps([token_json(token, now) for token in tokens], indent=2))
        return
    table = Table("name", "role", "prefix", "state", "expires", "last used", "created by")
    for token in tokens:
        table.add_row(
            token.name,
            token.role.value,
            token.prefix,
            token.state(now).value,
            f"{token.expires_at:%Y-%m-%d %H:%M}" if token.expires_at else "never",
            f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never",
            token.created_by,
        )
    console.print(table)


@tokens_app.command("revoke")
def revoke(
    name_or_prefix: Annotated[
        str, typer.Argument(help="A token's prefix (from `tokens list`) or its name.")
    ],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audit log).")] = "",
    actor: ActorOption = None,
) -> None:
    """Revoke a token by prefix, or every unrevoked token with that name; effective at once."""
    from keelwatch.auth.tokens import revoke_tokens
    from keelwatch.entities.time import utcnow

    with cli_services() as services:
        who = cli_actor(actor, services.settings)
        with services.db.session() as session:
            revoked = revoke_tokens(session, name_or_prefix, actor=who, now=utcnow(), reason=reason)
    for token in revoked:
        typer.echo(f"revoked token {token.name} (prefix {token.prefix})")


@tokens_app.command("whoami")
def whoami() -> None:
    """Which token the CLI would present to the API (KEELWATCH_TOKEN, else
    <data_dir>/admin-token) and whether it is valid here."""
    from keelwatch.auth.errors import AuthenticationError
    from keelwatch.auth.secrets_file import admin_token_path, cli_token, server_secret
    from keelwatch.auth.tokens import verify_token
    from keelwatch.entities.time import utcnow

    if (remote := remote_client()) is not None:
        me = remote.get("/auth/whoami")
        roles = ", ".join(me["roles"])
        typer.echo(f"{me['identity']} (role {roles}) at {remote.base_url}")
        return
    with cli_services() as services:
        settings = services.settings
        token = cli_token(settings)
        if token is None:
            fail(
                f"no token: set KEELWATCH_TOKEN or create {admin_token_path(settings)} "
                "(`keelwatch up` does)"
            )
        source = (
            "KEELWATCH_TOKEN"
            if settings.token.get_secret_value()
            else str(admin_token_path(settings))
        )
        try:
            with services.db.session() as session:
                found = verify_token(session, server_secret(settings), token, now=utcnow())
        except AuthenticationError as exc:
            fail(f"the token from {source}: {exc}", code=1)
    typer.echo(f"{found.identity} (role {found.role.value}, prefix {found.prefix}) from {source}")
