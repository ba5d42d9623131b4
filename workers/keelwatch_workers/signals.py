"""Worker lifecycle hooks: metrics endpoint and library preloading in the main process, cleanup
in pool processes.

Imported by every role module; Celery signals are process-global, so each hook is connected
once (``dispatch_uid``).
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_init, worker_process_shutdown

from keelwatch_workers.metrics import mark_process_dead, serve_metrics
from keelwatch_workers.runtime import preload_libraries, reset_runtime


@worker_init.connect(dispatch_uid="keelwatch-worker-metrics")
def _prepare_main_process(sender: Any = None, **_: Any) -> None:
    settings = getattr(getattr(sender, "app", None), "keelwatch_settings", None)
    port = settings.worker.metrics_port if settings is not None else None
    if port:
        serve_metrics(port)
    preload_libraries()


@worker_process_shutdown.connect(dispatch_uid="keelwatch-worker-process-cleanup")
def _forget_pool_process(pid: int | None = None, **_: Any) -> None:
    mark_process_dead(pid or os.getpid())
    reset_runtime()
