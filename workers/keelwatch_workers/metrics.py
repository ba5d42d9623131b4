"""Prometheus collectors of the worker fleet, and their HTTP endpoint.

A prefork worker scores in child processes, so their counters must be shared with whatever
serves ``/metrics``: set ``worker.metrics_multiproc_dir`` (an empty folder; the worker exports
it as ``PROMETHEUS_MULTIPROC_DIR`` before importing this module, see
:mod:`keelwatch_workers.environment`) and prometheus_client keeps values in files there, which
the endpoint aggregates.
Without it the endpoint shows only the main process (fine for ``--pool solo``/threads).
The endpoint listens on ``settings.worker.metrics_port`` when that is set.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from keelwatch_workers.environment import multiprocess_dir

logger = logging.getLogger(__name__)

ROWS_SCORED = Counter(
    "keelwatch_inference_rows_scored",
    "Rows scored by batch-inference chunks.",
    ["model", "device"],
)
CHUNK_SECONDS = Histogram(
    "keelwatch_inference_chunk_seconds",
    "Wall time of one batch-inference chunk (read, predict, write, log).",
    ["device"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
TASK_ERRORS = Counter(
    "keelwatch_worker_task_errors",
    "Task failures by task name and kind (transient: retried; permanent: failed the job).",
    ["task", "kind"],
)


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Expose the fleet's metrics on ``port`` (aggregating pool processes in multiprocess mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=addr, registry=registry)
    else:
        start_http_server(port, addr=addr)
    logger.info("worker metrics on http://%s:%d/metrics", addr, port)


def mark_process_dead(pid: int) -> None:
    """Drop a finished pool process's live gauges (multiprocess mode only)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
