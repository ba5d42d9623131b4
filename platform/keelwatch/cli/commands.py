"""The command lines of Keelwatch's services: API, Celery worker and beat, MLflow server.

Shared by the single-service CLI commands (which ``exec`` them) and by ``keelwatch up``, whose
:class:`~keelwatch.cli.supervisor.Supervisor` runs several of them as children. Each builder
returns an argv; none of them starts anything.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from keelwatch.contract import ALL_QUEUES, QUEUE_CPU, QUEUE_GPU, QUEUE_MONITORING
from keelwatch.settings import Settings

#: Worker roles (modules under ``keelwatch_workers.roles``) and the queues each consumes.
ROLE_QUEUES: dict[str, tuple[str, ...]] = {
    "all": ALL_QUEUES,
    "cpu": (QUEUE_CPU,),
    "gpu": (QUEUE_GPU,),
    "monitoring": (QUEUE_MONITORING,),
}

#: The Celery app that beat runs with (the one that knows the whole schedule).
BEAT_APP = "keelwatch_workers.roles.all"


def api_command(
    settings: Settings, *, host: str | None = None, port: int | None = None
) -> list[str]:
    """Serve the API with uvicorn (the app is built from ``KEELWATCH_*`` in the child)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "keelwatch.api.app:create_app",
        "--factory",
        "--host",
        host or settings.api.host,
        "--port",
        str(port if port is not None else settings.api.port),
    ]


def worker_command(
    *,
    role: str = "all",
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> list[str]:
    """A Celery worker for ``role`` consuming ``queues`` (default: the role's queues)."""
    if role not in ROLE_QUEUES:
        known = ", ".join(sorted(ROLE_QUEUES))
        raise ValueError(f"unknown worker role {role!r} (known: {known})")
    chosen = list(queues) if queues else list(ROLE_QUEUES[role])
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        f"keelwatch_workers.roles.{role}",
        "worker",
        "-Q",
        ",".join(chosen),
        "--loglevel",
        loglevel,
    ]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    if hostname:
        command += ["--hostname", hostname]
    return command


def beat_command(settings: Settings, *, loglevel: str = "INFO") -> list[str]:
    """Celery beat with its schedule file in the data dir (not the working directory)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        BEAT_APP,
        "beat",
        "--schedule",
        str(settings.data_dir / "celerybeat-schedule"),
        "--loglevel",
        loglevel,
    ]


def mlflow_server_command(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    allowed_hosts: str | None = None,
) -> list[str]:
    """``mlflow server`` on Keelwatch's own MLflow store, so the UI shows what Keelwatch wrote.

    New experiments' artifacts go to ``settings.mlflow.artifact_root``, the same place the
    platform and the workers write to directly; proxied uploads land there too.
    """
    mlflow = settings.mlflow
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        mlflow.tracking_uri,
        "--default-artifact-root",
        mlflow.artifact_root,
        "--artifacts-destination",
        mlflow.artifact_root,
        "--host",
        host,
        "--port",
        str(port if port is not None else settings.api.mlflow_ui_port),
        "--workers",
        str(workers),
    ]
    if mlflow.registry_uri and mlflow.registry_uri != mlflow.tracking_uri:
        command += ["--registry-store-uri", mlflow.registry_uri]
    if allowed_hosts:
        command += ["--allowed-hosts", allowed_hosts]
    return command


#: Defaults for the MLflow server's environment (an operator's own value wins). Its job runner
#: (GenAI prompt optimisation, trace roll-ups) costs three extra processes and Keelwatch uses
#: none of it.
MLFLOW_SERVER_ENV_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus :data:`MLFLOW_SERVER_ENV_DEFAULTS` where ``base`` does not set them."""
    return {**MLFLOW_SERVER_ENV_DEFAULTS, **base}


def prepare_mlflow_store(settings: Settings) -> None:
    """Create (migrate) a database-backed MLflow store once, before several processes race to."""
    if settings.mlflow.tracking_uri.startswith(("http://", "https://", "databricks")):
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def display_host(host: str) -> str:
    """A host to put in a URL a person can click (wildcard binds → loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
