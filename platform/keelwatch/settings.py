"""Keelwatch's one settings tree.

Every knob lives here and is read from the environment with the ``KEELWATCH_`` prefix; nested
groups use ``__`` (``KEELWATCH_DATABASE__URL``, ``KEELWATCH_BROKER__URL``). Entry points (CLI,
API, worker apps) build :class:`Settings` once and pass it down: domain code never reads the
environment itself.

Embedded defaults need no server: a SQLite database, a SQLite-backed MLflow store, kombu's
filesystem transport as broker and a SQL result backend, all under ``data_dir``.

Where ``data_dir`` is, when ``KEELWATCH_DATA_DIR`` does not say: :func:`discover_data_dir` looks
for a ``.keelwatch/`` folder in the working directory and its parents (as git looks for
``.git``), then falls back to one folder per user (platformdirs). :func:`load_settings` calls
it; building :class:`Settings` directly never looks at the file system.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DATA_DIR_NAME = ".keelwatch"
DEFAULT_DATA_DIR = Path(DATA_DIR_NAME)
DATA_DIR_ENV = "KEELWATCH_DATA_DIR"
#: Written into every data dir Keelwatch creates, so discovery knows it from any other folder.
DATA_DIR_MARKER = "KEELWATCH_DATA_DIR.txt"
#: A data dir from before the marker existed is still recognised by its database.
_DATA_DIR_SIGNS = (DATA_DIR_MARKER, "keelwatch.db")


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
    request_timeout_s: int = Field(
        10,
        ge=1,
        description="Timeout of each HTTP call to an MLflow tracking server (sets MLflow's "
        "MLFLOW_HTTP_REQUEST_TIMEOUT for the process), and the connect / statement timeout "
        "of a PostgreSQL or MySQL MLflow store. An unreachable store answers 503.",
    )
    request_max_retries: int = Field(
        1,
        ge=0,
        description="Retries of a failed HTTP call to an MLflow tracking server (sets "
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES; MLflow's own default of 7 with backoff waits minutes).",
    )


class BrokerSettings(BaseModel):
    """Celery transport and result backend."""

    url: str = Field("", description="Default: kombu filesystem transport under data_dir.")
    result_backend: str = Field("", description="Default: SQL result backend in data_dir.")
    visibility_timeout_s: int = 3600


class AliasGovernance(StrEnum):
    """What the alias watcher does about a governed alias changed outside Keelwatch."""

    #: Record it in alias history (external), audit it and emit a signal.
    OBSERVE = "observe"
    #: The same, then put the alias back where Keelwatch last set it.
    ENFORCE = "enforce"


class RegistrySettings(BaseModel):
    """Model-registry policy."""

    require_approval: bool = Field(
        True, description="A version must be approved before it can become champion."
    )
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    read_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        description="How long the API serves registry reads (GET /models...) from its in-process "
        "cache; changes made through this process show at once, changes made elsewhere (MLflow "
        "UI, another replica, a worker) after this long (twice it at most, while one reader "
        "refreshes an expired entry). 0 turns the cache off.",
    )
    read_cache_entries: int = Field(
        1024, gt=0, description="Most registry reads the API's cache keeps (least recent go)."
    )
    alias_governance: AliasGovernance = Field(
        AliasGovernance.OBSERVE,
        description="observe: a governed alias changed outside Keelwatch (MLflow UI, a script) is "
        "recorded in alias history as external, audited model.alias.external and emitted as the "
        "signal registry.alias.external_change; enforce: the same, then the alias is put back "
        "where Keelwatch last set it (audited model.alias.restore).",
    )
    governed_aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Aliases the watcher compares with alias history, joined by ',' or a JSON "
        "list; empty: the champion and challenger aliases.",
    )
    watch_interval_s: float = Field(
        30.0,
        gt=0,
        description="How often beat runs the alias watcher (keelwatch.registry.watch_aliases) "
        "and the new-version watcher (keelwatch.registry.watch_versions).",
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="The secret of the MLflow registry webhook that calls POST "
        "/registry/webhooks/mlflow (X-MLflow-Signature, HMAC-SHA256); empty: the route refuses "
        "every call and polling alone notices changes. Never shown.",
    )
    webhook_max_age_s: int = Field(
        300,
        gt=0,
        description="Webhook deliveries whose X-MLflow-Timestamp is further than this from now "
        "are refused (replays).",
    )
    separation_of_duties: bool = Field(
        False,
        description="The actor who registered a version may not approve it (403 from the API, "
        "exit 1 from the CLI).",
    )

    @field_validator("governed_aliases", mode="before")
    @classmethod
    def _split_aliases(cls, value: object) -> object:
        return _env_list(value, ",")

    def governed(self) -> tuple[str, ...]:
        """The aliases the watcher governs (``governed_aliases`` or champion and challenger)."""
        aliases = self.governed_aliases or [self.champion_alias, self.challenger_alias]
        return tuple(dict.fromkeys(alias.strip() for alias in aliases if alias.strip()))


class EvaluationSettings(BaseModel):
    """Model evaluations: schedules, new-version triggers (KEELWATCH_EVALUATION__*)."""

    dispatch_interval_s: float = Field(
        30.0,
        gt=0,
        description="How often beat fires the evaluation schedules that are due "
        "(keelwatch.monitoring.evaluation.dispatch_due); a slot fires at most this late.",
    )
    realized_min_coverage: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Realized performance: below this share of labelled predictions in the "
        "window the verdict is insufficient_data (coverage signals only, no metric).",
    )
    realized_min_rows: int = Field(
        50,
        ge=1,
        description="Realized performance: fewer labelled rows than this in the window is "
        "insufficient_data.",
    )


class FairnessSettings(BaseModel):
    """Bias audits: how groups are sliced, bootstrapped and judged (KEELWATCH_FAIRNESS__*).

    The defaults of every audit (scheduled, on demand, from a file); a request may override
    each one."""

    min_group_size: int = Field(
        30,
        ge=1,
        description="A group with fewer rows is reported as insufficient data and enters no gap.",
    )
    resamples: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Bootstrap resamples behind every confidence interval.",
    )
    confidence: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="Confidence level of the intervals (before the multiple-comparison "
        "correction widens them).",
    )
    difference_threshold: float = Field(
        0.1,
        gt=0,
        description="A difference gap violates when its whole interval lies above this.",
    )
    ratio_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A ratio gap (demographic parity ratio) violates when its whole interval "
        "lies below this (the four-fifths rule).",
    )
    correction: Literal["bonferroni", "none"] = Field(
        "bonferroni",
        description="Multiple-comparison correction of the intervals: bonferroni or none.",
    )
    max_order: int | None = Field(
        None,
        ge=1,
        description="Largest intersection audited (1: each attribute alone); unset: every "
        "combination of the audited attributes.",
    )
    seed: int = Field(0, ge=0, description="Seed of the bootstrap resampling (reproducible).")
    positive_label: str = Field(
        "1",
        min_length=1,
        description="The favourable prediction of a binary model (an integer when it reads as "
        "one): the selection rate is its share.",
    )


class ModerationSettings(BaseModel):
    """Content moderation of text models (KEELWATCH_MODERATION__*): which filters run, the
    policy's per-category thresholds, and how text models are recognised."""

    classifier: str = Field(
        "profanity-check",
        description="ML classifier in the pipeline: `profanity-check` (alt-profanity-check's "
        "model shipped in its wheel), `none`, or a registered MLflow text classifier as "
        "`models:/name/version` (its score columns named after taxonomy categories).",
    )
    thresholds: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per-category overrides of the policy, e.g. "
        '`{"violence": {"review": 0.6, "block": 0.95}}` (keys redact, review, block; '
        "the score at or above which each decision applies).",
    )
    max_text_chars: int = Field(
        20_000,
        gt=0,
        le=100_000,
        description="Longer texts are not moderated but sent to review with a clear reason "
        "(fail closed).",
    )
    text_model_tag: str = Field(
        "keelwatch.text_model",
        description="Registered model (or version) tag that marks a text model; its value "
        "names the text columns to moderate as `inputs=prompt;outputs=completion` (`true`: "
        "every string column).",
    )
    review_min_claim_s: float = Field(
        900.0,
        gt=0,
        description="A claimed review item returns to the queue after this many seconds "
        "without a decision.",
    )


class PrivacySettings(BaseModel):
    """Data minimisation (KEELWATCH_PRIVACY__*): retention per table and PII redaction of the
    prediction log."""

    retention_days: dict[str, int] = Field(
        default_factory=lambda: {
            "prediction_log": 90,
            "prediction_labels": 365,
            "moderation_tallies": 365,
            "review_items": 365,
        },
        description="Days each table keeps its rows; the scheduled purge deletes older ones "
        "(0: keep forever). Tables: prediction_log, prediction_labels, prediction_attributes, "
        "moderation_tallies, review_items, signals (signals are purged by default by "
        "alerting.signal_retention_days; name them here only to purge them with the rest).",
    )
    purge_interval_s: float = Field(
        86_400.0, gt=0, description="How often beat runs the retention purge."
    )
    redact_prediction_log: Literal["pii", "none"] = Field(
        "pii",
        description="Default for every string column of the prediction log: `pii` replaces PII "
        "with typed placeholders before the row is stored; `none` keeps it.",
    )
    column_redaction: dict[str, Literal["pii", "none", "drop"]] = Field(
        default_factory=dict,
        description="Per-column override of redact_prediction_log (`pii`, `none`, or `drop` "
        'to never store the column), e.g. `{"notes": "drop", "sku": "none"}`.',
    )


class InferenceSettings(BaseModel):
    """Batch inference defaults."""

    chunk_rows: int = Field(100_000, gt=0, description="Rows per fan-out chunk.")
    log_sample_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="Fraction of scored rows copied to the prediction log."
    )
    output_dir: str = Field("", description="Default: data_dir/outputs.")
    model_cache_size: int = Field(4, gt=0, description="Models kept loaded per worker.")


class JobsSettings(BaseModel):
    """The job reconciler (``KEELWATCH_JOBS__*``): work whose task vanished is sent again."""

    reconcile_interval_s: float = Field(
        60.0, gt=0, description="How often beat runs keelwatch.housekeeping.reconcile_jobs."
    )
    lost_after_s: float = Field(
        600.0,
        gt=0,
        description="A chunk, drift check, evaluation or gate check with no progress for this "
        "long is taken as lost and sent again: set it longer than the longest chunk and "
        "evaluation, and shorter than "
        "broker.visibility_timeout_s so the reconciler acts before Redis redelivers.",
    )
    max_requeues: int = Field(
        3,
        ge=0,
        description="Times one chunk is sent again; lost once more, its job fails with the "
        "reason (chunk N lost M times: no worker finished it).",
    )


class WorkerSettings(BaseModel):
    """Worker processes (Celery)."""

    metrics_port: int | None = None
    metrics_multiproc_dir: str = Field(
        "",
        description="An empty folder where prefork pool processes share their Prometheus "
        "series (exported as PROMETHEUS_MULTIPROC_DIR at worker start); empty: main process only.",
    )
    evidently_telemetry: bool = Field(
        False, description="Let Evidently send usage telemetry (off: DO_NOT_TRACK=1 in workers)."
    )


class AlertingSettings(BaseModel):
    """Signals, rules, alerts and notifications (``KEELWATCH_ALERTING__*``)."""

    signal_retention_days: int = Field(
        30,
        gt=0,
        description="Signals older than this many days are purged by the daily housekeeping "
        "task (keelwatch.housekeeping.purge_signals).",
    )
    inbound_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token senders (Alertmanager's http_config.authorization) present to "
        "POST /alerts/inbound/alertmanager; empty: bearer tokens are refused. Never shown.",
    )
    inbound_signing_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC-SHA256 key for X-Keelwatch-Signature on inbound alerts (t=<unix "
        "seconds>,v1=<hex>); empty: signatures are refused. Never shown.",
    )
    delivery_max_attempts: int = Field(
        6,
        ge=1,
        description="Attempts per notification before it becomes a dead letter (retryable "
        "failures only; a permanent failure is dead-lettered at once).",
    )
    delivery_backoff_base_s: float = Field(
        2.0,
        gt=0,
        description="Retry n waits uniform(0, min(max, base * 2**(n-1))) seconds (full jitter).",
    )
    delivery_backoff_max_s: float = Field(
        300.0, gt=0, description="Cap of one notification retry's wait, in seconds."
    )
    delivery_claim_lease_s: float = Field(
        300.0,
        gt=0,
        description="A delivery claims its notification row before sending; a second delivery "
        "skips the row while the claim is younger than this, and takes it over once older "
        "(the first worker died).",
    )
    sweep_grace_s: float = Field(
        120.0,
        gt=0,
        description="The alert-evaluation tick enqueues again notifications still pending and "
        "action executions still pending this many seconds after they were due (their "
        "enqueue after the commit was lost).",
    )
    stale_after_s: dict[str, float] = Field(
        default_factory=lambda: {"ops.": 300.0, "anomaly.": 900.0},
        description="Signal-name prefix -> seconds after which the beat tick no longer counts "
        "a series' newest point (Prometheus' staleness): its alerts resolve. The ops tick writes "
        "every minute and anomaly alarms only when they alarm, so both go stale; drift signals "
        "(one per check, hours apart) never do. A JSON object in the environment.",
    )
    ops_interval_s: float = Field(
        60.0,
        gt=0,
        description="How often beat runs the ops tick (keelwatch.monitoring.ops_signals); its "
        "signals are observed at the tick's time truncated to this interval.",
    )
    ops_window_s: float = Field(
        300.0,
        gt=0,
        description="Trailing window of the ops series (error rate, latency, rows/s), and how far "
        "back the anomaly detectors look for new points.",
    )
    anomaly_signals: list[str] = Field(
        default_factory=lambda: [
            "ops.error_rate",
            "ops.latency_p50_s",
            "ops.latency_p95_s",
            "ops.rows_per_s",
            "ops.queue_depth",
        ],
        description="Signal names whose series the ops tick charts with EWMA and CUSUM, "
        "emitting anomaly.ewma / anomaly.cusum (a JSON list in the environment).",
    )
    anomaly_history_points: int = Field(
        100, ge=2, description="Newest points of each series the anomaly charts are drawn over."
    )


def _env_list(value: object, separator: str) -> object:
    """A list setting from the environment: a JSON list, or items joined by ``separator``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(separator) if item.strip()]


class DataRootsSettings(BaseModel):
    """Folders that dataset paths given to the API may point into (``KEELWATCH_DATA_ROOTS__*``).

    Either variable takes folders joined by ``:`` (as ``PATH`` does) or a JSON list. A path
    given to the API must resolve (symlinks followed) inside one of them; the local CLI's
    standalone commands are not confined.
    """

    read: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders the API may read datasets from (batch inputs, dataset windows, "
        "reference data), joined by ':' or a JSON list; default: data_dir and "
        "inference.output_dir.",
    )
    write: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders batch outputs may be written to (checked at submission and again "
        "by the worker before it writes), joined by ':' or a JSON list; default: "
        "inference.output_dir.",
    )

    @field_validator("read", "write", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _env_list(value, os.pathsep)


class AuthMode(StrEnum):
    """Whether the API authenticates callers."""

    REQUIRED = "required"
    #: Every call is allowed and audited as ``anonymous``; logged as a warning at start.
    DISABLED = "disabled"


class OidcSettings(BaseModel):
    """Optional OIDC: JWT access tokens from an identity provider (``KEELWATCH_AUTH__OIDC__*``).

    Off while ``issuer`` is empty. A token must be signed by a key from ``jwks_url``, issued by
    ``issuer`` for ``audience``; its ``roles_claim`` (a list or a space-separated string) names
    Keelwatch roles, and the audit actor is ``oidc:<sub>``.
    """

    issuer: str = Field("", description="Expected `iss` of OIDC access tokens; empty: OIDC off.")
    jwks_url: str = Field("", description="Where the issuer's signing keys (JWKS) are served.")
    audience: str = Field("", description="Expected `aud` of OIDC access tokens.")
    roles_claim: str = Field(
        "roles", description="Claim holding Keelwatch role names (list or space-separated)."
    )


class AuthSettings(BaseModel):
    """Authentication and roles on the API (``KEELWATCH_AUTH__*``)."""

    mode: AuthMode = Field(
        AuthMode.REQUIRED,
        description="required: every route but the open ones needs a bearer token with the "
        "route's role; disabled: no checks (a laptop only; warned at start).",
    )
    secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC key API tokens are stored under; empty: a random key generated once "
        "in data_dir/auth-secret (mode 0600). Set it when API replicas do not share a data "
        "dir. Never shown.",
    )
    metrics_require_token: bool = Field(
        False, description="Serve /metrics only to a token with the viewer role."
    )
    token_cache_ttl_s: float = Field(
        30.0,
        ge=0,
        description="Seconds an API process trusts a token it checked against the database "
        "(cached by the token's HMAC); a revocation made by another process takes effect here "
        "within this window, one made through this process at once. 0: check every request.",
    )
    rate_limit_per_s: float = Field(
        50.0,
        ge=0,
        description="Requests per second each token (each client address with auth disabled) "
        "may make to one API replica, refilled continuously; over it: 429 with Retry-After. "
        "/healthz, /readyz, /metrics and other open routes are exempt. 0: no limit.",
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="Requests a token may make at once before the rate applies."
    )
    encryption_key: SecretStr = Field(
        SecretStr(""),
        description="Key (32+ characters, e.g. `openssl rand -hex 32`) notifier secrets are "
        "encrypted under in the database; empty: derived from the server secret "
        "(auth.secret or data_dir/auth-secret) with HKDF. API, workers and beat need the same "
        "one. Never shown.",
    )
    oidc: OidcSettings = OidcSettings()

    @field_validator("encryption_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value()) < 32:
            raise ValueError("KEELWATCH_AUTH__ENCRYPTION_KEY must be at least 32 characters")
        return value


class ApiSettings(BaseModel):
    """HTTP API."""

    host: str = "127.0.0.1"
    port: int = 8000
    mlflow_ui_port: int = 5000
    max_body_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        description="Largest request body in bytes; a larger one is answered 413 before it is "
        "read (Content-Length) or as soon as the count passes it (chunked).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (CORS), joined by ',' or a "
        "JSON list; empty: CORS off (no Access-Control-* headers).",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return _env_list(value, ",")


class Settings(BaseSettings):
    """The whole configuration tree, read from ``KEELWATCH_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="KEELWATCH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = DEFAULT_DATA_DIR
    actor: str = Field("", description="Default actor name for audit entries (CLI).")
    token: SecretStr = Field(
        SecretStr(""),
        description="API token the CLI presents (KEELWATCH_TOKEN); empty: the local admin "
        "token in data_dir/admin-token. Never shown.",
    )
    api_url: str = Field(
        "",
        description="Base URL of a Keelwatch API (KEELWATCH_API_URL): the CLI becomes a remote "
        "client that sends KEELWATCH_TOKEN and runs only the commands the API serves; empty: "
        "the CLI opens the database directly, as a local administrator.",
    )
    api_timeout_s: float = Field(
        30.0, gt=0, description="Timeout in seconds of each request a remote CLI makes."
    )
    database: DatabaseSettings = DatabaseSettings()
    mlflow: MlflowSettings = MlflowSettings()
    broker: BrokerSettings = BrokerSettings()
    registry: RegistrySettings = RegistrySettings()
    inference: InferenceSettings = InferenceSettings()
    jobs: JobsSettings = JobsSettings()
    api: ApiSettings = ApiSettings()
    worker: WorkerSettings = WorkerSettings()
    alerting: AlertingSettings = AlertingSettings()
    auth: AuthSettings = AuthSettings()
    data_roots: DataRootsSettings = DataRootsSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    fairness: FairnessSettings = FairnessSettings()
    moderation: ModerationSettings = ModerationSettings()
    privacy: PrivacySettings = PrivacySettings()

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
        if not self.data_roots.read:
            self.data_roots.read = [str(data_dir), self.inference.output_dir]
        if not self.data_roots.write:
            self.data_roots.write = [self.inference.output_dir]
        return self

    @property
    def broker_is_embedded(self) -> bool:
        """True when the broker is kombu's filesystem transport (no server)."""
        return self.broker.url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        """Folder that the embedded filesystem broker exchanges messages through."""
        return self.data_dir / "broker"

    @property
    def database_is_embedded(self) -> bool:
        """True when Keelwatch's database is the SQLite file inside ``data_dir``."""
        return self.database.url == f"sqlite:///{self.data_dir / 'keelwatch.db'}"

    def ensure_data_dir(self) -> Path:
        """Create ``data_dir`` (and the embedded broker folders) if missing."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker = self.data_dir / DATA_DIR_MARKER
        if not marker.exists():
            marker.write_text(
                "This folder holds a Keelwatch installation's local data (databases, broker,\n"
                "outputs). Keelwatch commands run below its parent folder find it.\n"
            )
        if self.broker_is_embedded:
            (self.broker_dir / "queue").mkdir(parents=True, exist_ok=True)
            (self.broker_dir / "processed").mkdir(parents=True, exist_ok=True)
        return self.data_dir


class DataDirSource(StrEnum):
    """How the data dir was chosen."""

    ENVIRONMENT = "KEELWATCH_DATA_DIR"
    FOUND = "found above the working directory"
    USER = "per-user default"


@dataclass(frozen=True)
class DataDirChoice:
    """The data dir :func:`discover_data_dir` picked, why, and where it looked."""

    path: Path
    source: DataDirSource
    searched: tuple[Path, ...]
    """Every candidate looked at, nearest first (the per-user default last)."""

    @property
    def exists(self) -> bool:
        """True when the folder is already there."""
        return self.path.is_dir()

    def describe_search(self) -> str:
        """``'/a/.keelwatch, /.keelwatch and ~/.local/share/keelwatch'`` for messages."""
        names = [str(path) for path in self.searched]
        if len(names) > 4:  # deep folders: the nearest, the root and the per-user default
            names = [names[0], "...", *names[-2:]]
        return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def user_data_dir() -> Path:
    """The per-user default data dir (``~/.local/share/keelwatch`` on Linux, honouring
    ``XDG_DATA_HOME``)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("keelwatch", appauthor=False))


def is_data_dir(path: Path) -> bool:
    """True for a folder Keelwatch created (its marker file, or its database from before)."""
    return path.is_dir() and any((path / sign).exists() for sign in _DATA_DIR_SIGNS)


def discover_data_dir(
    cwd: Path, *, environ: Mapping[str, str] | None = None, user_dir: Path | None = None
) -> DataDirChoice:
    """Where Keelwatch's data lives, seen from ``cwd``.

    1. ``KEELWATCH_DATA_DIR`` when set (in ``environ``, default ``os.environ``);
    2. the nearest ``.keelwatch/`` holding Keelwatch data in ``cwd`` or a parent;
    3. the per-user folder (``user_dir``, default :func:`user_data_dir`), which may not exist
       yet: callers that create it say so.

    An empty ``.keelwatch/`` (no marker, no database) is not taken: it may be a stray folder.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(DATA_DIR_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser().resolve()
        return DataDirChoice(path, DataDirSource.ENVIRONMENT, (path,))
    start = cwd.resolve()
    searched: list[Path] = []
    for folder in (start, *start.parents):
        candidate = folder / DATA_DIR_NAME
        searched.append(candidate)
        if is_data_dir(candidate):
            return DataDirChoice(candidate, DataDirSource.FOUND, tuple(searched))
    fallback = (user_dir or user_data_dir()).expanduser().resolve()
    searched.append(fallback)
    return DataDirChoice(fallback, DataDirSource.USER, tuple(searched))


def load_settings(
    *, cwd: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """Build the settings tree from the environment, with explicit overrides on top.

    Without an explicit ``data_dir`` (override or ``KEELWATCH_DATA_DIR``), the data dir is the
    one :func:`discover_data_dir` finds from ``cwd`` (default: the working directory).
    """
    if "data_dir" not in overrides:
        overrides["data_dir"] = discover_data_dir(cwd or Path.cwd(), environ=environ).path
    return Settings(**overrides)  # type: ignore[arg-type]
