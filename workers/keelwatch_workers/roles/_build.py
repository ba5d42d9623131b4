"""Shared construction of the role apps from the environment (``KEELWATCH_*``)."""

from __future__ import annotations

from collections.abc import Sequence

import keelwatch_workers.signals  # noqa: F401  (connects the worker lifecycle hooks)
from keelwatch.settings import load_settings
from keelwatch_workers.celery_app import KeelwatchCelery, create_app

INFERENCE_TASKS = ("keelwatch_workers.tasks.inference",)
MONITORING_TASKS = ("keelwatch_workers.tasks.housekeeping", "keelwatch_workers.tasks.drift")


def build_role_app(task_modules: Sequence[str], queues: Sequence[str]) -> KeelwatchCelery:
    """The app of one role, with settings read once from the environment."""
    settings = load_settings()
    settings.ensure_data_dir()
    return create_app(settings, task_modules, queues=queues)
