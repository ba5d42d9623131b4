"""The environment a worker process sets for its libraries, once, at its entry point.

Nothing changes the environment at import time; :func:`prepare_worker_environment` runs when a
role app is built (``keelwatch_workers.roles``), before prometheus_client and Evidently are
imported, and pool processes inherit the result through fork.

* ``DO_NOT_TRACK=1`` keeps Evidently from sending usage telemetry unless
  ``worker.evidently_telemetry`` is true.
* ``PROMETHEUS_MULTIPROC_DIR`` is how prometheus_client learns where pool processes share their
  series; it is exported from ``worker.metrics_multiproc_dir``. A value already in the
  environment (prometheus_client's own variable, as older deployments set it) is kept when the
  setting is empty.
"""

from __future__ import annotations

import logging
import os
import sys

from keelwatch.settings import Settings

logger = logging.getLogger(__name__)

PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DO_NOT_TRACK_ENV = "DO_NOT_TRACK"

_multiproc_dir: str | None = None


def prepare_worker_environment(settings: Settings) -> None:
    """Export the variables that libraries read at import; call before importing them."""
    global _multiproc_dir
    if not settings.worker.evidently_telemetry:
        os.environ.setdefault(DO_NOT_TRACK_ENV, "1")
    folder = settings.worker.metrics_multiproc_dir
    if folder:
        if (
            "prometheus_client" in sys.modules
            and os.environ.get(PROMETHEUS_MULTIPROC_ENV) != folder
        ):
            # prometheus_client picks its value class at import: too late for this process.
            logger.warning(
                "prometheus_client was imported before the worker set %s; pool metrics may "
                "not be shared",
                PROMETHEUS_MULTIPROC_ENV,
            )
        os.environ[PROMETHEUS_MULTIPROC_ENV] = folder
    _multiproc_dir = os.environ.get(PROMETHEUS_MULTIPROC_ENV) or None


def multiprocess_dir() -> str | None:
    """The folder pool processes share their metrics in, or None (main process only)."""
    return _multiproc_dir
