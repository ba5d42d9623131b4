"""The worker fleet's Celery app: the shared configuration plus the task modules of a role.

Queues, routes, reliability settings and the beat schedule are declared once in
:mod:`keelwatch.celery_config`, which the platform also uses for its client app; this module
adds what only workers need: the task modules to import and the settings the tasks read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery, Task

from keelwatch.celery_config import celery_config
from keelwatch.contract import ALL_QUEUES
from keelwatch.settings import Settings


class KeelwatchCelery(Celery):
    """A Celery app that carries the settings it was built from, for the tasks to read."""

    keelwatch_settings: Settings


def create_app(
    settings: Settings,
    task_modules: Sequence[str] = (),
    *,
    queues: Sequence[str] = ALL_QUEUES,
) -> KeelwatchCelery:
    """A worker's Celery app for ``settings``, importing ``task_modules``.

    ``queues`` are the queues a worker of this app consumes when started without ``-Q``.
    """
    app = KeelwatchCelery("keelwatch", set_as_current=False)
    app.keelwatch_settings = settings
    app.conf.update(celery_config(settings, queues=queues, task_modules=task_modules))
    return app


def task_settings(task: Task[Any, Any]) -> Settings:
    """The settings of the app ``task`` runs in (a role app built by :func:`create_app`)."""
    app = task.app
    if not isinstance(app, KeelwatchCelery):
        raise TypeError(f"task {task.name} is bound to {type(app).__name__}, not KeelwatchCelery")
    return app.keelwatch_settings
