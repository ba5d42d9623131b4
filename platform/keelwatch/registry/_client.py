"""The MLflow client the façade uses: bounded calls, outages as 503s, writes that invalidate.

Three things every MLflow call made for Keelwatch needs, done once here instead of at each of
the façade's (and its callers') call sites:

- **Bounded.** MLflow's REST client retries a refused connection 7 times with exponential
  backoff and waits 120 s per call by default, so an API request hung for minutes when the
  tracking server was down. It reads its limits from ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` at every call and has no per-client setting (its host
  credentials carry no timeout), so :func:`apply_http_limits` sets those two variables for the
  process from Keelwatch's settings. A PostgreSQL or MySQL store URI gets a connect timeout
  (and on PostgreSQL a statement timeout) in its query string, and is probed once before
  MLflow first opens it: MLflow's own engine setup retries a refused connection for ~100 s.
- **Outages are 503s.** A refused connection, a timeout or MLflow's ``TEMPORARILY_UNAVAILABLE``
  become :class:`~keelwatch.errors.RegistryUnavailableError`, never a 500 or a hang. The
  message names the kind of failure, never the URI (it may hold credentials).
- **Writes invalidate the read cache.** Every registry write through this client (the façade's
  and the tag writes of other modules that use ``registry.client``) drops the cached reads of
  that model afterwards, whether the write succeeded or not.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from keelwatch.errors import RegistryUnavailableError

#: MLflow error codes that mean "the store is down or overloaded", not "your request is wrong".
UNAVAILABLE_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "SERVICE_UNAVAILABLE"})

#: Client method prefixes that change the registry; with "model" in the name they are
#: registry writes (``set_registered_model_alias``, ``create_model_version`` ...).
_WRITE_PREFIXES = ("create_", "set_", "delete_", "update_", "rename_", "transition_", "copy_")
#: Writes whose first argument is not the one model they change: invalidate everything.
_WRITES_OF_UNKNOWN_MODELS = frozenset({"rename_registered_model", "copy_model_version"})

_NETWORK_SQL_SCHEMES = ("postgresql", "postgres", "mysql")


def apply_http_limits(timeout_s: int, max_retries: int) -> None:
    """Bound every MLflow REST call this process makes (see the module docstring for why the
    process environment is the only knob MLflow offers)."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(max_retries)


def is_network_sql_uri(uri: str) -> bool:
    """True for a PostgreSQL or MySQL MLflow store (``postgresql+psycopg://...``)."""
    scheme = urlsplit(uri).scheme.split("+", 1)[0]
    return scheme in _NETWORK_SQL_SCHEMES


def with_sql_timeouts(uri: str, timeout_s: int) -> str:
    """``uri`` with a connect timeout (and a PostgreSQL statement timeout) unless it has them."""
    if not is_network_sql_uri(uri):
        return uri
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("connect_timeout", str(timeout_s))
    if parts.scheme.startswith("postgres"):
        query.setdefault("options", f"-c statement_timeout={timeout_s * 1000}")
    return urlunsplit(parts._replace(query=urlencode(query)))


def unavailable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` means the MLflow store is unreachable (a short phrase), or None when it is
    an ordinary error (bad request, unknown model ...)."""
    import requests
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, MlflowException) and str(exc.error_code) in UNAVAILABLE_CODES:
        return "the MLflow store is temporarily unavailable"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # MLflow chains the cause implicitly
        seen.add(id(current))
        if isinstance(current, requests.exceptions.Timeout):
            return "the MLflow tracking server did not answer in time"
        if isinstance(current, requests.exceptions.ConnectionError | ConnectionError):
            return "could not connect to the MLflow tracking server"
        if isinstance(current, requests.exceptions.RetryError):
            return "the MLflow tracking server kept failing"
        if isinstance(current, OperationalError):
            return "the MLflow store's database is unreachable"
        current = current.__cause__ or current.__context__
    return None


def check_unavailable(exc: BaseException) -> None:
    """Raise :class:`RegistryUnavailableError` from ``exc`` when it means an outage."""
    reason = unavailable_reason(exc)
    if reason is not None:
        raise RegistryUnavailableError(
            f"model registry unavailable: {reason} ({type(exc).__name__}); retry later"
        ) from exc


class GuardedClient:
    """An ``MlflowClient`` whose calls raise :class:`RegistryUnavailableError` on outages and
    whose registry writes call ``on_write(model_name)`` (None: every model) afterwards.

    Attributes are forwarded to the wrapped client, so it stands in wherever an
    ``MlflowClient`` is expected by Keelwatch code.
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        on_write: Callable[[str | None], None],
        probe: Callable[[], None] | None = None,
    ) -> None:
        self._factory = factory
        self._on_write = on_write
        self._probe = probe
        self._client: Any = None

    def _target(self) -> Any:
        if self._client is None:
            if self._probe is not None:
                self._probe()  # fails fast (503) instead of MLflow's long engine retries
            self._client = self._factory()
            self._probe = None
        return self._client

    def __getattr__(self, attribute: str) -> Any:
        try:
            value = getattr(self._target(), attribute)
        except RegistryUnavailableError:
            raise
        except Exception as exc:
            check_unavailable(exc)
            raise
        if not callable(value):
            return value
        return self._guarded(attribute, value)

    def _guarded(self, method: str, call: Callable[..., Any]) -> Callable[..., Any]:
        writes = "model" in method and method.startswith(_WRITE_PREFIXES)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except Exception as exc:
                check_unavailable(exc)
                raise
            finally:
                if writes:
                    self._on_write(_written_model(method, args, kwargs))

        guarded.__name__ = method
        return guarded


def _written_model(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if method in _WRITES_OF_UNKNOWN_MODELS:
        return None
    name = args[0] if args else kwargs.get("name")
    return name if isinstance(name, str) else None


def guarded_client(
    factory: Callable[[], Any],
    *,
    store_uris: tuple[str, ...],
    timeout_s: int,
    max_retries: int,
    on_write: Callable[[str | None], None],
) -> GuardedClient:
    """A :class:`GuardedClient` over ``factory()`` (an ``MlflowClient`` on ``store_uris``),
    with the process's MLflow HTTP limits applied and network SQL stores probed first."""
    apply_http_limits(timeout_s, max_retries)
    sql_uris = sorted({uri for uri in store_uris if is_network_sql_uri(uri)})

    def probe() -> None:
        for uri in sql_uris:
            probe_sql_store(uri, timeout_s)

    return GuardedClient(factory, on_write=on_write, probe=probe if sql_uris else None)


def probe_sql_store(uri: str, timeout_s: int) -> None:
    """Connect once to a network SQL MLflow store; RegistryUnavailableError if that fails."""
    from sqlalchemy import create_engine, text

    engine = create_engine(uri, pool_pre_ping=False)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise RegistryUnavailableError(
            f"model registry unavailable: the MLflow store's database is unreachable "
            f"({type(exc).__name__}, timeout {timeout_s} s); retry later"
        ) from exc
    finally:
        engine.dispose()
