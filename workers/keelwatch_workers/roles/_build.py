"""Shared construction of the role apps from the environment (``KEELWATCH_*``).

This is the worker's entry point: settings are read once, the environment that libraries read
at import is prepared from them, and only then are the lifecycle hooks (and with them
prometheus_client) imported.
"""

from __future__ import annotations

from collections.abc import Sequence

from keelwatch.settings import load_settings
from keelwatch_workers.celery_app import KeelwatchCelery, create_app
from keelwatch_workers.environment import prepare_worker_environment

INFERENCE_TASKS = (
    "keelwatch_workers.tasks.inference",
    "keelwatch_workers.tasks.actions",
    "keelwatch_workers.tasks.evaluation",
    "keelwatch_workers.tasks.gate",
)
MONITORING_TASKS = (
    "keelwatch_workers.tasks.housekeeping",
    "keelwatch_workers.tasks.drift",
    "keelwatch_workers.tasks.notifications",
    "keelwatch_workers.tasks.alerting",
    "keelwatch_workers.tasks.ops",
    "keelwatch_workers.tasks.registry",
    "keelwatch_workers.tasks.eval_schedules",
    "keelwatch_workers.tasks.version_watch",
    "keelwatch_workers.tasks.realized",
    "keelwatch_workers.tasks.bias_audits",
    "keelwatch_workers.tasks.privacy",
    "keelwatch_workers.tasks.moderation",
)


def build_role_app(task_modules: Sequence[str], queues: Sequence[str]) -> KeelwatchCelery:
    """The app of one role, with settings read once from the environment."""
    settings = load_settings()
    settings.ensure_data_dir()
    prepare_worker_environment(settings)
    # Connects the worker lifecycle hooks; imported after the environment is prepared because
    # it imports prometheus_client, which reads PROMETHEUS_MULTIPROC_DIR at import.
    import keelwatch_workers.signals  # noqa: F401

    return create_app(settings, task_modules, queues=queues)
