"""SQLAlchemy 2 ORM models for Keelwatch's own tables (MLflow keeps the models themselves)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Re-exported: the column defaults below use it, and tests that build rows import it from here.
from keelwatch.entities.time import utcnow as utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite has no BIGINT autoincrement; INTEGER PRIMARY KEY is its 64-bit rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes; SQLite drops the zone, so it is put back as UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    # `dialect` is part of SQLAlchemy's TypeDecorator signature; these hooks do not need it.
    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the storage layer; use UTC-aware times")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with a naming convention so Alembic names constraints stably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PredictionRow(Base):
    """A scored row copied (sampled) to the prediction log.

    Write speed matters more here than anywhere else (ADR 0004): ``inputs``/``outputs`` are
    plain JSON, not JSONB, because nothing queries inside them server-side and JSONB's
    conversion costs a quarter of a COPY; time ranges use a BRIN index, which an append-only,
    time-ordered table keeps almost for free; "last N rows of a model" walks the primary key
    backwards.
    """

    __tablename__ = "prediction_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)

    __table_args__ = (
        Index("ix_prediction_log_created_at", "created_at", postgresql_using="brin"),
        Index("ix_prediction_log_job", "job_id"),
    )


class PredictionLabelRow(Base):
    """The ground-truth label of a logged prediction, which often arrives days after scoring.

    A table of its own, not a column of ``prediction_log``: that table is append-only and
    written with COPY, and updating its rows later would bloat it. No foreign key to
    ``prediction_log.request_id`` either: it would make ``TRUNCATE prediction_log`` fail and
    tie the log's retention to this table; ``storage.labels`` stores labels for logged request
    ids only.
    """

    __tablename__ = "prediction_labels"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[Any] = mapped_column(JsonType)
    labelled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    submitted_by: Mapped[str] = mapped_column(String(255))


class PredictionAttributeRow(Base):
    """The sensitive attributes of a logged prediction (gender, age band, ...), keyed by
    request id: the groups a bias audit compares, which are never model features.

    A side table like ``prediction_labels`` and for the same reasons (the log is append-only;
    no foreign key). ``attributes`` maps an attribute name to its value as a string;
    ``storage.attributes`` merges new names into a stored row (the latest value wins).
    """

    __tablename__ = "prediction_attributes"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    attributes: Mapped[dict[str, str]] = mapped_column(JsonType)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    submitted_by: Mapped[str] = mapped_column(String(255))


class JobRow(Base):
    """Accepted work and its progress."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    result: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    submitted_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    #: Times the reconciler started this job again as a whole (drift checks).
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_jobs_kind_created", "kind", "created_at"),
        # The reconciler reads the unfinished jobs every minute.
        Index("ix_jobs_status", "status"),
    )


class JobChunkRow(Base):
    """One slice of a fanned-out job. (job_id, chunk_index) makes completion idempotent."""

    __tablename__ = "job_chunks"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    row_start: Mapped[int] = mapped_column(BigInteger)
    row_stop: Mapped[int] = mapped_column(BigInteger)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    device: Mapped[str | None] = mapped_column(String(32), nullable=True)
    output_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    #: Times the reconciler sent this chunk again after its task vanished.
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditRow(Base):
    """Append-only audit log of every mutating action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (Index("ix_audit_log_target_at", "target", "at"),)


class AliasHistoryRow(Base):
    """Every change of a registry alias, so "who was champion at time T" is one query."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    #: True for a change Keelwatch did not make, found by the alias watcher (migration 0014).
    external: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (Index("ix_alias_history_model_alias_at", "model_name", "alias", "at"),)


class ReferenceProfileRow(Base):
    """Metadata of a reference profile attached to a model version (the profile itself is an
    MLflow artifact at ``artifact_uri``)."""

    __tablename__ = "reference_profiles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    artifact_uri: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[str]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Added with the drift monitors (revision 0002): who (re)computed it, from what, and when.
    source: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by: Mapped[str] = mapped_column(String(255), default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("model_name", "model_version", name="uq_reference_profiles_version"),
    )


class DriftMonitorRow(Base):
    """A drift monitor: which model, which window of data, how often, and how to test it."""

    __tablename__ = "drift_monitors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_ref: Mapped[str] = mapped_column(String(320))
    window: Mapped[dict[str, Any]] = mapped_column(JsonType)
    schedule_interval_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule_cron: Mapped[str | None] = mapped_column(String(128), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_drift_monitors_model_name", "model_name"),)


class DriftResultRow(Base):
    """One drift check of a monitor. ``job_id`` is unique, so a retried check writes once."""

    __tablename__ = "drift_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("drift_monitors.id", ondelete="CASCADE"),
    )
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    dataset_drift: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    share_drifted: Mapped[float | None] = mapped_column(Float, nullable=True)
    columns: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    window_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    mode: Mapped[str] = mapped_column(String(32), default="in_process")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_artifact_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_drift_results_monitor_finished", "monitor_id", "finished_at"),)


class SignalRow(Base):
    """One observation of a signal series (see ``keelwatch.entities.signals``).

    Append-only and purged by age (``alerting.signal_retention_days``). ``fingerprint`` is the
    SHA-256 of the sorted labels, so one series is an indexed equality instead of a JSON match
    that SQLite and PostgreSQL spell differently.
    """

    __tablename__ = "signals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    labels: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(255), default="")

    __table_args__ = (
        Index("ix_signals_name_observed", "name", "observed_at"),
        Index("ix_signals_fingerprint_observed", "fingerprint", "observed_at"),
        Index("ix_signals_observed", "observed_at"),
    )


class NotifierRow(Base):
    """A notification target (webhook, Slack, PagerDuty, Alertmanager, email) and its route.

    ``config`` holds secrets as given (a later issue encrypts them at rest); no API or CLI
    output shows it unmasked. ``route`` carries the grouping of this receiver (``group_by``,
    ``group_wait_s``, ``group_interval_s``, ``repeat_interval_s``, ``send_resolved``).
    """

    __tablename__ = "notifiers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    route: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class NotificationGroupRow(Base):
    """The grouping planner's state of one aggregation group, kept between ticks."""

    __tablename__ = "notification_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    receiver: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(String(2048))
    state: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("receiver", "group_key", name="uq_notification_groups_receiver_key"),
    )


class NotificationLogRow(Base):
    """One notification decided by the planner and what became of its delivery.

    ``idempotency_key`` (a hash of group key, state and sequence) is UNIQUE: two dispatchers or
    a redelivered tick insert each notification once, so each is delivered once.
    """

    __tablename__ = "notification_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    notifier: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: When a delivery claimed the row (pending → sending); older than the lease: taken over.
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: When a retried row is due again (the sweeper leaves it alone until then).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_notification_log_status_created", "status", "created_at"),)


class NotificationDeadLetterRow(Base):
    """A notification given up on (retries spent or a permanent failure), until replayed."""

    __tablename__ = "notification_dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    log_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("notification_log.id", ondelete="CASCADE"),
    )
    notifier: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_notification_dead_letters_log_id", "log_id"),)


class AlertRuleRow(Base):
    """One alerting rule; ``definition`` is ``keelwatch.alerting.rules.rule_to_dict``'s form."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonType)
    source: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AlertRow(Base):
    """One alert (one fingerprint) across all its episodes; the current state only."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    rule_name: Mapped[str] = mapped_column(String(128))
    labels: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    annotations: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    episode: Mapped[int] = mapped_column(Integer)
    runbook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    active_at: Mapped[datetime] = mapped_column(UtcDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_evaluated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_comment: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_alerts_state", "state"),
        Index("ix_alerts_rule_name", "rule_name"),
    )


class AlertHistoryRow(Base):
    """One transition of an alert. Each state is entered at most once per episode, so the
    unique constraint makes a replayed evaluation unable to write history twice."""

    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule_name: Mapped[str] = mapped_column(String(128))
    episode: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint(
            "fingerprint", "episode", "to_state", name="uq_alert_history_episode_state"
        ),
        Index("ix_alert_history_fingerprint_at", "fingerprint", "at"),
    )


class SilenceRow(Base):
    """A silence: matchers (their text, e.g. ``model="credit"``), who, why, and when."""

    __tablename__ = "silences"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    matchers: Mapped[list[str]] = mapped_column(JsonType)
    author: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_when_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expired_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)


class ActionPolicyRow(Base):
    """One action policy; ``definition`` is what ``keelwatch.actions.policies`` parses."""

    __tablename__ = "action_policies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ActionExecutionRow(Base):
    """One execution of a policy for one firing episode of one alert.

    UNIQUE (policy, alert_fingerprint, episode): however often an episode is re-evaluated or
    a dispatch is redelivered, the second insert fails and nothing runs twice.
    """

    __tablename__ = "action_executions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    policy: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(255))
    alert_fingerprint: Mapped[str] = mapped_column(String(64))
    episode: Mapped[int] = mapped_column(Integer)
    alert_labels: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    params: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    decided_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: The delivery (Celery task id) that claimed it; only that one resumes it after a crash.
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: When it was last enqueued again (approved, or by the sweeper: its enqueue was lost).
    requeued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint(
            "policy",
            "alert_fingerprint",
            "episode",
            name="uq_action_executions_policy_alert_episode",
        ),
        Index("ix_action_executions_model_created", "model", "created_at"),
        Index("ix_action_executions_status", "status"),
    )


class ApiTokenRow(Base):
    """One API token. ``secret_hash`` is HMAC-SHA256(server secret, whole token) in hex; the
    token itself is never stored. ``prefix`` (public, unique) finds the row for a request."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_api_tokens_name", "name"),)


class EvalScheduleRow(Base):
    """One evaluation schedule: evaluate ``model`` on ``dataset`` (kind ``evaluation``) or
    compute its realized performance over ``window_s`` (kind ``realized``) on a cron.

    ``armed_at``: slots at or before it never fire (set at creation and whenever the cron
    changes or the schedule is enabled again), so an edit does not fire a slot already past.
    """

    __tablename__ = "eval_schedules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    model: Mapped[str] = mapped_column(String(255))
    cron: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str | None] = mapped_column(String(255), nullable=True)
    suites: Mapped[list[str]] = mapped_column(JsonType, default=list)
    window_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The sensitive attributes an ``audit`` schedule audits (NULL for the other kinds).
    attributes: Mapped[list[str] | None] = mapped_column(JsonType, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    armed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (Index("ix_eval_schedules_model", "model"),)


class EvalScheduleFiringRow(Base):
    """One firing of a schedule for one cron slot. UNIQUE (schedule_id, slot): however many
    beat processes tick, only the one whose insert commits submits the slot's work."""

    __tablename__ = "eval_schedule_firings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("eval_schedules.id", ondelete="CASCADE")
    )
    slot: Mapped[datetime] = mapped_column(UtcDateTime)
    fired_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    fired_by: Mapped[str] = mapped_column(String(255))
    #: The evaluation job (kind ``evaluation``) or Celery task id (kind ``realized``).
    job_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("schedule_id", "slot", name="uq_eval_schedule_firings_schedule_slot"),
    )


class ModelVersionWatermarkRow(Base):
    """The highest version number of a registered model the new-version watcher has seen."""

    __tablename__ = "model_version_watermarks"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    max_version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EvalDatasetRow(Base):
    """One version of a registered evaluation dataset (a file and the hash of its bytes)."""

    __tablename__ = "eval_datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[str]] = mapped_column(JsonType)
    label_column: Mapped[str] = mapped_column(String(255))
    task: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("name", "version", name="uq_eval_datasets_name_version"),)


class EvalRunRow(Base):
    """One evaluation job's run: the pinned model version and dataset, and its metrics."""

    __tablename__ = "eval_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), unique=True
    )
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(32))
    dataset_name: Mapped[str] = mapped_column(String(255))
    dataset_version: Mapped[int] = mapped_column(Integer)
    suites: Mapped[list[str]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_eval_runs_model_created", "model_name", "created_at"),)


class RealizedPerformanceRow(Base):
    """Realized performance of one model version over one prediction-log window
    ``[window_end - window_s, window_end)``, from the labels that had arrived when computed.

    UNIQUE (model, version, window_s, window_end): a rerun of the same slot finds its row and
    writes no second result and no duplicate signals.
    """

    __tablename__ = "realized_performance"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    window_s: Mapped[int] = mapped_column(Integer)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    alias: Mapped[str | None] = mapped_column(String(255), nullable=True)
    task: Mapped[str | None] = mapped_column(String(32), nullable=True)
    predictions: Mapped[int] = mapped_column(Integer)
    labelled: Mapped[int] = mapped_column(Integer)
    coverage: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, float]] = mapped_column(JsonType, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    schedule_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    computed_by: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        UniqueConstraint(
            "model_name",
            "model_version",
            "window_s",
            "window_end",
            name="uq_realized_performance_slot",
        ),
        Index("ix_realized_performance_model_end", "model_name", "window_end"),
    )


class GatePolicyRow(Base):
    """A model's champion/challenger gate policy (one per model; replaced on update)."""

    __tablename__ = "gate_policies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255), unique=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JsonType)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GateDecisionRow(Base):
    """One gate check's verdict on a challenger against the champion (one per job)."""

    __tablename__ = "gate_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), unique=True
    )
    model_name: Mapped[str] = mapped_column(String(255))
    champion_version: Mapped[str] = mapped_column(String(32))
    challenger_version: Mapped[str] = mapped_column(String(32))
    dataset_name: Mapped[str] = mapped_column(String(255))
    dataset_version: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[str]] = mapped_column(JsonType)
    comparisons: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    decided_by: Mapped[str] = mapped_column(String(255))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        Index(
            "ix_gate_decisions_model_challenger",
            "model_name",
            "challenger_version",
            "decided_at",
        ),
    )


class BiasAuditRow(Base):
    """One bias audit of one model version: over a prediction-log window
    ``[window_end - window_s, window_end)`` (source ``prediction_log``) or a file (``file``).

    ``result`` is ``AuditResult.to_dict()``. ``attributes_key`` is the audited attributes,
    sorted and comma-joined: with UNIQUE (model, version, window_s, window_end,
    attributes_key) a redelivered slot finds its row and writes no second audit and no
    duplicate signals (file audits have no window, so NULLs keep them apart).
    ``mlflow_run_id`` and ``report_html`` are filled after the commit that stored the row.
    """

    __tablename__ = "bias_audits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    window_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attributes: Mapped[list[str]] = mapped_column(JsonType)
    attributes_key: Mapped[str] = mapped_column(String(1024))
    alias: Mapped[str | None] = mapped_column(String(255), nullable=True)
    verdict: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int] = mapped_column(Integer)
    violations: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JsonType)
    report_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    schedule_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    computed_by: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        UniqueConstraint(
            "model_name",
            "model_version",
            "window_s",
            "window_end",
            "attributes_key",
            name="uq_bias_audits_slot",
        ),
        Index("ix_bias_audits_model_computed", "model_name", "computed_at"),
    )


class ReviewItemRow(Base):
    """One text in the human review queue (``entities.moderation.ReviewItem``).

    ``source_key`` is unique: enqueueing the same source twice finds the row and writes no
    second one. ``text`` is what a reviewer may see (PII redacted; a blocked text is never
    stored); ``findings`` are spans of that text. The queue is read oldest first by
    (status, id); ``created_at`` drives retention, ``decided_at`` the labelled export.
    """

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(512), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    categories: Mapped[list[str]] = mapped_column(JsonType)
    reasons: Mapped[list[str]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[list[str]] = mapped_column(JsonType)
    appealed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    appealed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    appeal_reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_review_items_status_id", "status", "id"),
        Index("ix_review_items_model_status", "model_name", "status"),
        Index("ix_review_items_created_at", "created_at"),
        Index("ix_review_items_decided_at", "decided_at"),
    )


class ModerationTallyRow(Base):
    """Decisions of one moderated batch (``entities.moderation.ModerationTally``): one
    inference chunk's inputs or outputs, one API check, one dataset run.

    UNIQUE (source, direction): a rerun of the same batch (a redelivered chunk) replaces its
    row instead of adding one, so rates never count a text twice. The per-decision counts are
    columns (rates sum them in SQL); ``categories`` is ``{category: {decision: texts}}``.
    ``created_at`` is when the batch was first recorded: rate windows and retention use it.
    """

    __tablename__ = "moderation_tallies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    texts: Mapped[int] = mapped_column(Integer)
    allow_count: Mapped[int] = mapped_column(Integer)
    redact_count: Mapped[int] = mapped_column(Integer)
    review_count: Mapped[int] = mapped_column(Integer)
    block_count: Mapped[int] = mapped_column(Integer)
    categories: Mapped[dict[str, Any]] = mapped_column(JsonType)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("source", "direction", name="uq_moderation_tallies_source_direction"),
        Index("ix_moderation_tallies_model_created", "model_name", "model_version", "created_at"),
        Index("ix_moderation_tallies_created_at", "created_at"),
    )
