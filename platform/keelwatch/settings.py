"""Keelwatch's one settings tree.

Every knob lives here and is read from the environment with the ``KEELWATCH_`` prefix; nested
groups use ``__`` (``KEELWATCH_DATABASE__URL``, ``KEELWATCH_BROKER__URL``). Entry points (CLI,
API, worker apps) build :class:`Settings` once and pass it down: domain code never reads the
environment itself.

Embedded defaults need no server: a SQLite database, a SQLite-backed MLflow store, kombu's
filesystem transport as broker and a SQL result backend, all under ``data_dir``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".keelwatch")


class DatabaseSettings(BaseModel):
    """Keelwatch's own SQL store (monitoring state, jobs, audit log, prediction log)."""

    url: str = Field("", description="SQLAlchemy URL; default: SQLite file in data_dir.")
    echo: bool = False
    pool_size: int = 5


class MlflowSettings(BaseModel):
    """Where models live: MLflow tracking server and model registry."""

    tracking_uri: str = Field("", description="Default: SQLite-backed store in data_dir.")
    registry_uri: str = Field("", description="Default: same as tracking_uri.")
    artifact_root: str = Field("", description="Default: data_dir/mlartifacts.")


class BrokerSettings(BaseModel):
    """Celery transport and result backend."""

    url: str = Field("", description="Default: kombu filesystem transport under data_dir.")
    result_backend: str = Field("", description="Default: SQL result backend in data_dir.")
    visibility_timeout_s: int = 3600


class RegistrySettings(BaseModel):
    """Model-registry policy."""

    require_approval: bool = Field(
        True, description="A version must be approved before it can become champion."
    )
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"


class InferenceSettings(BaseModel):
    """Batch inference defaults."""

    chunk_rows: int = Field(100_000, gt=0, description="Rows per fan-out chunk.")
    log_sample_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Fraction of scored rows copied to the prediction log."
    )
    output_dir: str = Field("", description="Default: data_dir/outputs.")
    model_cache_size: int = Field(4, gt=0, description="Models kept loaded per worker.")


class WorkerSettings(BaseModel):
    """Worker processes (Celery)."""

    metrics_port: int | None = None


class ApiSettings(BaseModel):
    """HTTP API."""

    host: str = "127.0.0.1"
    port: int = 8000
    mlflow_ui_port: int = 5000


class Settings(BaseSettings):
    """The whole configuration tree, read from ``KEELWATCH_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="KEELWATCH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = DEFAULT_DATA_DIR
    actor: str = Field("", description="Default actor name for audit entries (CLI).")
    database: DatabaseSettings = DatabaseSettings()
    mlflow: MlflowSettings = MlflowSettings()
    broker: BrokerSettings = BrokerSettings()
    registry: RegistrySettings = RegistrySettings()
    inference: InferenceSettings = InferenceSettings()
    api: ApiSettings = ApiSettings()
    worker: WorkerSettings = WorkerSettings()

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        """Derive every unset URL from ``data_dir`` so a bare machine needs no server."""
        data_dir = self.data_dir.expanduser().resolve()
        self.data_dir = data_dir
        if not self.database.url:
            self.database.url = f"sqlite:///{data_dir / 'keelwatch.db'}"
        if not self.mlflow.tracking_uri:
            self.mlflow.tracking_uri = f"sqlite:///{data_dir / 'mlflow.db'}"
        if not self.mlflow.registry_uri:
            self.mlflow.registry_uri = self.mlflow.tracking_uri
        if not self.mlflow.artifact_root:
            self.mlflow.artifact_root = (data_dir / "mlartifacts").as_uri()
        if not self.broker.url:
            self.broker.url = "filesystem://"
        if not self.broker.result_backend:
            self.broker.result_backend = f"db+sqlite:///{data_dir / 'celery-results.db'}"
        if not self.inference.output_dir:
            self.inference.output_dir = str(data_dir / "outputs")
        return self

    @property
    def broker_is_embedded(self) -> bool:
        """True when the broker is kombu's filesystem transport (no server)."""
        return self.broker.url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        """Folder that the embedded filesystem broker exchanges messages through."""
        return self.data_dir / "broker"

    def ensure_data_dir(self) -> Path:
        """Create ``data_dir`` (and the embedded broker folders) if missing."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.broker_is_embedded:
            (self.broker_dir / "queue").mkdir(parents=True, exist_ok=True)
            (self.broker_dir / "processed").mkdir(parents=True, exist_ok=True)
        return self.data_dir


def load_settings(**overrides: object) -> Settings:
    """Build the settings tree from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
