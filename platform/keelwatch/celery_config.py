"""The Celery configuration both sides of the broker share, and the platform's broker client.

The platform (API, CLI, beat's client side) enqueues by name through :func:`create_client`; the
worker fleet (``keelwatch_workers.celery_app``) builds its apps from the same
:func:`celery_config` plus its task modules, so queues, routes and reliability settings are
declared once, here, and ``keelwatch`` never imports ``keelwatch_workers``.

Reliability: tasks are acknowledged after they finish (``acks_late``) and given back to the
broker when the worker process dies (``task_reject_on_worker_lost``); each worker process
reserves one message at a time (prefetch 1) because chunks are long. With Redis an
unacknowledged message is redelivered after ``broker.visibility_timeout_s``, so that must exceed
the longest task.

Celery and kombu are imported inside the functions: importing this module stays cheap, so the
CLI's ``--help`` does not pay for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from keelwatch.contract import (
    ACTION_EXECUTE,
    ALERTING_DELIVER,
    ALERTING_EVALUATE_TICK,
    ALL_QUEUES,
    DRIFT_DISPATCH_DUE,
    EVALUATION_DISPATCH_DUE,
    HOUSEKEEPING_HEARTBEAT,
    HOUSEKEEPING_PURGE_SIGNALS,
    HOUSEKEEPING_RECONCILE_JOBS,
    INFERENCE_CHUNK,
    MONITORING_OPS_SIGNALS,
    QUEUE_CPU,
    QUEUE_MONITORING,
    REGISTRY_WATCH_ALIASES,
    REGISTRY_WATCH_VERSIONS,
    RETENTION_PURGE,
)

if TYPE_CHECKING:
    from celery import Celery

    from keelwatch.settings import Settings

# A chunk of 100,000 rows takes seconds; these only stop a task that is truly stuck.
TASK_SOFT_TIME_LIMIT_S = 1800
TASK_TIME_LIMIT_S = 1900
HEARTBEAT_INTERVAL_S = 60.0
#: How often beat looks for due drift monitors (their own schedules are interval/cron).
DRIFT_DISPATCH_INTERVAL_S = 30.0
#: How often beat evaluates the rules on the latest signals (``for`` durations, resolution).
ALERT_EVALUATION_INTERVAL_S = 15.0
#: How often beat purges signals past their retention (one day: retention is counted in days).
SIGNAL_PURGE_INTERVAL_S = 86_400.0


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options for the configured broker (folders for the embedded one)."""
    if settings.broker_is_embedded:
        folder = settings.broker_dir
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        }
    if settings.broker.url.startswith(("redis://", "rediss://", "sentinel://")):
        return {"visibility_timeout": settings.broker.visibility_timeout_s}
    return {}


def celery_config(
    settings: Settings,
    *,
    queues: Sequence[str] = ALL_QUEUES,
    task_modules: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``app.conf`` of every Keelwatch Celery app, client or worker.

    ``queues`` are the queues a worker consumes when started without ``-Q`` (a client can
    still send to any queue); ``task_modules`` are imported by workers only.
    """
    from kombu import Exchange, Queue

    declared = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in queues]
    transport_options = broker_transport_options(settings)
    return {
        "broker_url": settings.broker.url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "result_backend": settings.broker.result_backend,
        "result_backend_transport_options": (
            transport_options if "visibility_timeout" in transport_options else {}
        ),
        "result_extended": True,
        "result_expires": 24 * 3600,
        "task_queues": declared,
        # Sending to a queue this app does not consume declares it on the fly.
        "task_create_missing_queues": True,
        "task_default_queue": QUEUE_CPU,
        "task_default_exchange": QUEUE_CPU,
        "task_default_routing_key": QUEUE_CPU,
        "task_routes": {
            INFERENCE_CHUNK: {"queue": QUEUE_CPU},
            ACTION_EXECUTE: {"queue": QUEUE_CPU},
            HOUSEKEEPING_HEARTBEAT: {"queue": QUEUE_MONITORING},
            HOUSEKEEPING_PURGE_SIGNALS: {"queue": QUEUE_MONITORING},
            HOUSEKEEPING_RECONCILE_JOBS: {"queue": QUEUE_MONITORING},
            "keelwatch.monitoring.*": {"queue": QUEUE_MONITORING},
            ALERTING_DELIVER: {"queue": QUEUE_MONITORING},
            ALERTING_EVALUATE_TICK: {"queue": QUEUE_MONITORING},
            REGISTRY_WATCH_ALIASES: {"queue": QUEUE_MONITORING},
            REGISTRY_WATCH_VERSIONS: {"queue": QUEUE_MONITORING},
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # With acks_late, a lost broker connection means the message will be redelivered; stop
        # the running copy instead of letting two run at once.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": TASK_SOFT_TIME_LIMIT_S,
        "task_time_limit": TASK_TIME_LIMIT_S,
        "task_track_started": True,
        "worker_send_task_events": False,
        "enable_utc": True,
        "timezone": "UTC",
        "beat_schedule": {
            "keelwatch-heartbeat": {
                "task": HOUSEKEEPING_HEARTBEAT,
                "schedule": HEARTBEAT_INTERVAL_S,
                "options": {"queue": QUEUE_MONITORING},
            },
            "keelwatch-drift-dispatch": {
                "task": DRIFT_DISPATCH_DUE,
                "schedule": DRIFT_DISPATCH_INTERVAL_S,
                "options": {"queue": QUEUE_MONITORING},
            },
            "keelwatch-alert-evaluation": {
                "task": ALERTING_EVALUATE_TICK,
                "schedule": ALERT_EVALUATION_INTERVAL_S,
                "options": {"queue": QUEUE_MONITORING},
            },
            "keelwatch-signal-purge": {
                "task": HOUSEKEEPING_PURGE_SIGNALS,
                "schedule": SIGNAL_PURGE_INTERVAL_S,
                "options": {"queue": QUEUE_MONITORING},
            },
            # Chunks and drift checks whose message vanished (jobs.lost_after_s) are resent.
            "keelwatch-job-reconcile": {
                "task": HOUSEKEEPING_RECONCILE_JOBS,
                "schedule": settings.jobs.reconcile_interval_s,
                "options": {"queue": QUEUE_MONITORING},
            },
            # The fleet's ops.* series and EWMA/CUSUM alarms (alerting.ops_interval_s).
            "keelwatch-ops-signals": {
                "task": MONITORING_OPS_SIGNALS,
                "schedule": settings.alerting.ops_interval_s,
                "options": {"queue": QUEUE_MONITORING},
            },
            # Governed aliases changed outside Keelwatch (registry.watch_interval_s).
            "keelwatch-alias-watch": {
                "task": REGISTRY_WATCH_ALIASES,
                "schedule": settings.registry.watch_interval_s,
                "options": {"queue": QUEUE_MONITORING},
            },
            # Evaluation schedules read from their table each tick (evaluation.dispatch_interval_s).
            "keelwatch-evaluation-dispatch": {
                "task": EVALUATION_DISPATCH_DUE,
                "schedule": settings.evaluation.dispatch_interval_s,
                "options": {"queue": QUEUE_MONITORING},
            },
            # Model versions registered by anyone start the gate or an evaluation.
            "keelwatch-version-watch": {
                "task": REGISTRY_WATCH_VERSIONS,
                "schedule": settings.registry.watch_interval_s,
                "options": {"queue": QUEUE_MONITORING},
            },
            # Rows past their table's retention (privacy.retention_days), batch by batch.
            "keelwatch-retention-purge": {
                "task": RETENTION_PURGE,
                "schedule": settings.privacy.purge_interval_s,
                "options": {"queue": QUEUE_MONITORING},
            },
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "include": list(task_modules),
    }


def create_client(settings: Settings) -> Celery:
    """A Celery client app that enqueues by name (it imports no task module)."""
    from celery import Celery

    app = Celery("keelwatch", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def queue_consumers(
    app: Celery, queues: Sequence[str] = ALL_QUEUES, *, timeout_s: float = 1.0
) -> dict[str, list[str]]:
    """The workers consuming each of ``queues``: ``{"monitoring": ["monitoring@host"], ...}``.

    Asks every worker over the broker (``inspect().active_queues()``, a broadcast that waits
    ``timeout_s`` for replies); a worker that does not answer in time counts as absent. Works
    on Redis and on the embedded filesystem broker. Raises when the broker cannot be reached.
    """
    # Connect first with one quick try: the broadcast alone would retry a dead broker for
    # minutes (Celery's connection retry settings), and a probe must answer quickly.
    with app.connection_for_write(connect_timeout=2.0) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        inspector = app.control.inspect(timeout=timeout_s, connection=connection)
        replies = inspector.active_queues() or {}
    consumers: dict[str, list[str]] = {queue: [] for queue in queues}
    for worker, declared in replies.items():
        for queue in declared or ():
            name = queue.get("name")
            if name in consumers:
                consumers[name].append(worker)
    return {queue: sorted(workers) for queue, workers in consumers.items()}


class _DeclaringChannel(Protocol):
    # Every kombu channel has AMQP's queue_declare; celery-types' StdChannel does not list it.
    def queue_declare(self, queue: str, passive: bool) -> Any: ...


def queue_depths(
    settings: Settings, queues: Sequence[str] = ALL_QUEUES, *, timeout_s: float = 2.0
) -> dict[str, int]:
    """Messages waiting in each of ``queues``, through kombu's public API.

    A passive ``queue_declare`` reports a queue's message count on every transport (Redis sums
    its priority lists, the filesystem broker counts its message files); a queue the broker
    has never seen holds no messages. Raises when the broker cannot be reached.
    """
    from kombu import Connection
    from kombu.exceptions import ChannelError

    depths: dict[str, int] = {}
    with Connection(
        settings.broker.url,
        connect_timeout=timeout_s,
        transport_options=broker_transport_options(settings),
    ) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        for queue in queues:
            # A channel per queue: on AMQP a failed passive declare closes its channel.
            with connection.channel() as channel:
                try:
                    declared = cast(_DeclaringChannel, channel).queue_declare(
                        queue=queue, passive=True
                    )
                except ChannelError:
                    depths[queue] = 0
                else:
                    depths[queue] = int(declared.message_count)
    return depths
