"""The remote CLI: with ``KEELWATCH_API_URL`` set, commands go through the API and its checks.

A CLI that opens the database is a local administrator (it records ``--actor`` or the OS user);
a remote CLI is whoever its token says (``KEELWATCH_TOKEN``, else ``<data_dir>/admin-token``),
so the API's role checks and its audit actor (``token:<name>``) apply to it like to any client.

Only the commands in :data:`REMOTE_COMMANDS` have a remote mode; each starts with
``if (remote := remote_client()) is not None: ...``. Every other command is refused, once, by
:class:`RemoteAwareGroup` (the root group) while ``KEELWATCH_API_URL`` is set, so nothing
silently bypasses the API. Answers map to the CLI's conventions: 2xx → the JSON body; 4xx →
exit 2 with the API's message; 5xx or no answer → exit 1 naming the URL. The token is never
printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from typer.core import TyperGroup

from keelwatch.cli.support import fail

if TYPE_CHECKING:
    # Typer vendors click: its groups and contexts are these classes, not the click package's.
    from typer._click import Command, Context

    from keelwatch.settings import Settings

#: Commands (their path under ``keelwatch``) that run through the API when
#: ``KEELWATCH_API_URL`` is set.
REMOTE_COMMANDS: frozenset[tuple[str, ...]] = frozenset(
    {
        ("models", "list"),
        ("models", "approve"),
        ("models", "promote"),
        ("models", "rollback"),
        ("models", "versions"),
        ("models", "show"),
        ("models", "history"),
        ("actions", "approve"),
        ("actions", "reject"),
        ("tokens", "whoami"),
        ("jobs", "status"),
        ("alerts", "list"),
        ("alerts", "ack"),
        ("actions", "list"),
        ("eval", "realized"),
        ("eval", "run"),
        ("eval", "results"),
        ("eval", "datasets", "register"),
        ("eval", "datasets", "list"),
        ("eval", "schedule", "list"),
        ("gate", "show"),
        ("gate", "check"),
        ("gate", "decisions"),
        # bias audits (`audit run --data FILE` never calls the API: it needs no server)
        ("audit", "run"),
        ("audit", "history"),
        ("audit", "show"),
        ("audit", "report"),
        # moderation rates (GET /moderation/rates)
        ("moderation", "rates"),
        # batch moderation runs (POST /moderation/runs)
        ("moderation", "run"),
        # retention policy and purge (GET /privacy/retention, POST /privacy/purge)
        ("retention", "show"),
        ("retention", "purge"),
        # the moderation review queue (/review/items, /review/export)
        ("review", "list"),
        ("review", "show"),
        ("review", "claim"),
        ("review", "next"),
        ("review", "approve"),
        ("review", "reject"),
        ("review", "appeal"),
        ("review", "export"),
    }
)

#: The largest page the CLI asks for (no list route caps ``limit`` below it).
PAGE_LIMIT = 500

_HELP = frozenset({"-h", "--help", "--version"})
_ARGV_KEY = "keelwatch.remote.argv"


class RemoteClient:
    """JSON over HTTP to one Keelwatch API with one bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def get(self, path: str, params: Mapping[str, str | int | Sequence[str]] | None = None) -> Any:
        """``GET path``; the decoded JSON body of a 2xx answer, else a clean exit."""
        return self._send("GET", path, params=params)

    def get_all(
        self,
        path: str,
        params: Mapping[str, str | int | Sequence[str]] | None = None,
        *,
        most: int | None = None,
    ) -> list[Any]:
        """Every item of a paged list (``{"items": [...], "next_cursor": ...}``), page by page;
        with ``most``, stops after that many (pages of at most :data:`PAGE_LIMIT`)."""
        items: list[Any] = []
        query: dict[str, str | int | Sequence[str]] = dict(params or {})
        while most is None or len(items) < most:
            if most is not None:
                # The API caps ``limit``; ask for no more than is still wanted.
                query["limit"] = min(most - len(items), PAGE_LIMIT)
            page = self.get(path, params=query)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
            query["cursor"] = cursor
        return items if most is None else items[:most]

    def get_text(self, path: str) -> str:
        """``GET path`` of a non-JSON answer (an HTML report); its text, else a clean exit."""
        return str(self._send("GET", path, raw=True))

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """``POST path`` with a JSON body; the decoded JSON body of a 2xx answer."""
        return self._send("POST", path, body=body or {})

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | Sequence[str]] | None = None,
        body: Mapping[str, Any] | None = None,
        raw: bool = False,
    ) -> Any:
        import httpx

        url = f"{self.base_url}{path}"
        try:
            response = httpx.request(
                method,
                url,
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout_s,
            )
        except httpx.HTTPError as exc:
            # The exception's text can quote the request; the type and the URL are enough.
            fail(f"no answer from the Keelwatch API at {self.base_url} ({type(exc).__name__})", 1)
        if not response.is_success:
            message = _error_message(response)
            if response.status_code >= 500:
                fail(f"the Keelwatch API at {url} answered {response.status_code}: {message}", 1)
            fail(f"{message} (HTTP {response.status_code} from {method} {path})")
        if raw:
            return response.text
        return response.json() if response.content else None


def _error_message(response: Any) -> str:
    """The API's one-line ``{"error": ...}`` message, else its status phrase."""
    try:
        payload = response.json()
    except ValueError:
        return str(response.reason_phrase or "error")
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail"))
        if isinstance(error, str):
            return error.replace("\n", " ")
    return str(response.reason_phrase or "error")


def remote_settings() -> Settings | None:
    """The settings when ``KEELWATCH_API_URL`` is set (remote mode), else None."""
    from keelwatch.cli.ops import load_cli_settings

    # A malformed KEELWATCH_* variable is one line and exit 2 here too, never a traceback.
    settings = load_cli_settings()
    return settings if settings.api_url.strip() else None


def remote_client() -> RemoteClient | None:
    """A client for ``KEELWATCH_API_URL`` with the CLI's token, or None in local mode.

    Fails (exit 2) in remote mode without a token: the API would refuse every call.
    """
    from keelwatch.auth.secrets_file import admin_token_path, cli_token

    settings = remote_settings()
    if settings is None:
        return None
    token = cli_token(settings)
    if token is None:
        fail(
            f"KEELWATCH_API_URL is set but there is no token: set KEELWATCH_TOKEN "
            f"(or create {admin_token_path(settings)})"
        )
    return RemoteClient(settings.api_url.strip(), token, timeout_s=settings.api_timeout_s)


def refuse_actor(actor: str | None) -> None:
    """In remote mode the audit actor is the token's identity: ``--actor`` cannot change it."""
    if actor is not None:
        fail("--actor cannot be used with KEELWATCH_API_URL: the API records the token's identity")


def command_path(group: TyperGroup, ctx: Context, args: Sequence[str]) -> tuple[str, ...]:
    """The sub-command names ``args`` select under ``group`` (sub-groups take no options)."""
    path: list[str] = []
    command: Command = group
    for token in args:
        if token.startswith("-") or not isinstance(command, TyperGroup):
            break
        sub = command.get_command(ctx, token)
        if sub is None:
            break
        path.append(token)
        command = sub
    return tuple(path)


def local_only(group: TyperGroup, ctx: Context, args: Sequence[str]) -> str | None:
    """The command ``args`` runs when it needs direct database access, else None (a remote
    command, a group, or a help request)."""
    if _HELP.intersection(args):
        return None
    path = command_path(group, ctx, args)
    if not path or path in REMOTE_COMMANDS:
        return None
    target: Command | None = group
    for name in path:
        assert isinstance(target, TyperGroup)
        target = target.get_command(ctx, name)
    if isinstance(target, TyperGroup):
        return None  # a group alone prints its help
    return " ".join(path)


class RemoteAwareGroup(TyperGroup):
    """The root group: refuses commands without a remote mode while ``KEELWATCH_API_URL`` is
    set, before anything opens the database."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """Keep the command line for :meth:`invoke` (click splits it up while parsing)."""
        ctx.meta[_ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Context) -> Any:
        """Check the command about to run, then run it."""
        name = local_only(self, ctx, ctx.meta.get(_ARGV_KEY, []))
        if name is not None and remote_settings() is not None:
            fail(
                f"keelwatch {name} needs direct database access (a local administrator); "
                "unset KEELWATCH_API_URL to run it locally"
            )
        return super().invoke(ctx)
