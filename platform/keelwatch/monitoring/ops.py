"""Operational signal series of the worker fleet, and which anomaly alarms are new.

Pure: tallies (grouped by ``keelwatch.storage.ops``) and queue depths in, signals out; no I/O,
no clock. The scheduled task ``keelwatch.monitoring.ops_signals`` (see
``keelwatch.monitoring.service.ops``) runs these once per tick.

A tick ends at ``T``, the task's time truncated to the tick interval (``ops_interval_s``, 60 s by
default, counted from the Unix epoch), and looks at the trailing window ``[T - window, T)``
(``ops_window_s``, 300 s). Every series is observed at ``T``, so a rerun of the same tick
computes the same points. Series of batch inference, per ``model``, ``version`` and ``queue``
(the job's queue: ``cpu`` or ``gpu``):

``ops.error_rate``
    chunks that finished ``failed`` / chunks that finished (``done`` or ``failed``) in the
    window. Emitted only when at least one chunk finished: no finished chunk is no data, never
    an error rate of 0. A chunk finishes when its row is last updated (``job_chunks.updated_at``).
``ops.rows_per_s``
    rows of the chunks that finished ``done`` in the window, divided by the window's length in
    seconds: the throughput the fleet delivered (a chunk that started before the window counts
    whole when it finishes in it). Emitted with the error rate (0 when only failures finished).
``ops.latency_p50_s`` and ``ops.latency_p95_s``
    the 50th and 95th percentiles, in seconds, of the model's ``predict`` time per row over the
    prediction-log rows written in the window (``prediction_log.latency_ms``). A batch chunk
    logs its ``predict`` wall time divided by its row count on each sampled row, so the
    percentile is over rows, each chunk weighted by how many of its rows were logged; reading,
    writing and queueing time are not in it (the worker's ``keelwatch_inference_chunk_seconds``
    histogram has the whole chunk). Percentiles interpolate linearly between ranks (NumPy's
    default). Rows that no job logged have no ``queue`` label. Emitted only when rows were
    logged.
``ops.queue_depth``
    messages waiting in each queue (label ``queue``) when the tick ran, from the broker. Not
    emitted when the broker could not be asked.

Anomaly alarms: :func:`new_anomaly_signals` charts the recent history of one series with EWMA
and CUSUM (:mod:`keelwatch.monitoring.anomaly`) and keeps only the alarms that are new: at a
point observed in ``(since, until]`` (the tick's lookback, so a point that arrived a little late
is still charted) and strictly after the newest anomaly signal already stored for that series
and detector. A rerun of a tick, or the next tick charting overlapping history, therefore never
writes the same alarm twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from keelwatch.alerting.signals import register_signal_names
from keelwatch.entities.ops import ChunkTally, LatencyTally
from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.anomaly import CusumParams, Detector, EwmaParams, anomaly_signals

OPS_ERROR_RATE = "ops.error_rate"
OPS_ROWS_PER_S = "ops.rows_per_s"
OPS_LATENCY_P50_S = "ops.latency_p50_s"
OPS_LATENCY_P95_S = "ops.latency_p95_s"
OPS_QUEUE_DEPTH = "ops.queue_depth"
#: Every series the ops tick writes (the anomaly detectors' default inputs, too).
OPS_SIGNAL_NAMES = (
    OPS_ERROR_RATE,
    OPS_ROWS_PER_S,
    OPS_LATENCY_P50_S,
    OPS_LATENCY_P95_S,
    OPS_QUEUE_DEPTH,
)

# Importing this module makes rules on ops.* valid (``keelwatch rules apply`` and the API).
register_signal_names(OPS_SIGNAL_NAMES)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tick_end(now: datetime, interval_s: float) -> datetime:
    """``now`` truncated to a multiple of ``interval_s`` since the Unix epoch (UTC)."""
    if now.tzinfo is None:
        raise InvalidInputError("ops tick: now must be timezone-aware")
    if not interval_s > 0:
        raise InvalidInputError(f"ops tick: interval must be positive, got {interval_s}")
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(elapsed / interval_s) * interval_s)


def tick_source(end: datetime) -> str:
    """The ``source`` of every signal a tick writes: ``ops_tick:<end, ISO 8601 UTC>``."""
    return f"ops_tick:{end.astimezone(UTC).isoformat()}"


def _labels(model: str, version: str, queue: str) -> dict[str, str]:
    labels = {"model": model, "version": version, "queue": queue}
    return {k: v for k, v in labels.items() if v}  # an empty value is an absent label


def chunk_signals(
    tallies: Iterable[ChunkTally], *, window_s: float, at: datetime, source: str
) -> list[Signal]:
    """``ops.error_rate`` and ``ops.rows_per_s`` per model, version and queue (see the module
    docstring), summing the tallies of every job of a series."""
    if not window_s > 0:
        raise InvalidInputError(f"ops window must be positive, got {window_s}")
    totals: dict[tuple[str, str, str], list[int]] = {}
    for tally in tallies:
        done_failed_rows = totals.setdefault((tally.model, tally.version, tally.queue), [0, 0, 0])
        done_failed_rows[0] += tally.done
        done_failed_rows[1] += tally.failed
        done_failed_rows[2] += tally.rows
    out: list[Signal] = []
    for (model, version, queue), (done, failed, rows) in sorted(totals.items()):
        finished = done + failed
        if finished == 0:
            continue
        labels = _labels(model, version, queue)
        out.append(Signal(OPS_ERROR_RATE, failed / finished, labels, at, source))
        out.append(Signal(OPS_ROWS_PER_S, rows / window_s, labels, at, source))
    return out


def weighted_quantile(values: Iterable[tuple[float, int]], q: float) -> float:
    """The ``q``-quantile of the multiset holding each ``value`` ``count`` times.

    Linear interpolation between the closest ranks, as ``numpy.quantile``'s default: with the
    ``n`` values sorted, the rank is ``h = (n - 1) * q`` and the result
    ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
    """
    if not 0.0 <= q <= 1.0:
        raise InvalidInputError(f"quantile must be in [0, 1], got {q}")
    pairs = sorted((v, c) for v, c in values if c > 0)
    n = sum(c for _, c in pairs)
    if n == 0:
        raise InvalidInputError("quantile of no values")
    h = (n - 1) * q
    low = math.floor(h)
    x_low = _value_at_rank(pairs, low)
    if low + 1 >= n:
        return x_low
    return x_low + (h - low) * (_value_at_rank(pairs, low + 1) - x_low)


def _value_at_rank(pairs: Sequence[tuple[float, int]], rank: int) -> float:
    """The value at 0-based ``rank`` of the sorted multiset ``pairs`` (value, count)."""
    seen = 0
    for value, count in pairs:
        seen += count
        if rank < seen:
            return value
    return pairs[-1][0]


def latency_signals(tallies: Iterable[LatencyTally], *, at: datetime, source: str) -> list[Signal]:
    """``ops.latency_p50_s`` and ``ops.latency_p95_s`` per model, version and queue."""
    groups: dict[tuple[str, str, str], list[tuple[float, int]]] = {}
    for tally in tallies:
        if tally.count > 0 and math.isfinite(tally.latency_s):
            key = (tally.model, tally.version, tally.queue)
            groups.setdefault(key, []).append((tally.latency_s, tally.count))
    out: list[Signal] = []
    for (model, version, queue), pairs in sorted(groups.items()):
        labels = _labels(model, version, queue)
        out.append(Signal(OPS_LATENCY_P50_S, weighted_quantile(pairs, 0.5), labels, at, source))
        out.append(Signal(OPS_LATENCY_P95_S, weighted_quantile(pairs, 0.95), labels, at, source))
    return out


def queue_depth_signals(
    depths: Mapping[str, int] | None, *, at: datetime, source: str
) -> list[Signal]:
    """``ops.queue_depth{queue}`` for each queue; nothing when the broker gave no reading."""
    if depths is None:
        return []
    return [
        Signal(OPS_QUEUE_DEPTH, float(depth), {"queue": queue}, at, source)
        for queue, depth in sorted(depths.items())
    ]


def new_anomaly_signals(
    series: Sequence[Signal],
    *,
    detectors: Mapping[Detector, EwmaParams | CusumParams | None],
    since: datetime,
    until: datetime,
    last_emitted: Mapping[Detector, datetime | None],
) -> list[Signal]:
    """The alarms of each detector over ``series`` (one series) that are new.

    New means: at a point observed in ``(since, until]`` and strictly after
    ``last_emitted[detector]``, the newest ``anomaly.<detector>`` signal already stored for this
    series (None when there is none). The whole ``series`` is charted, so the warm-up and the
    resets after earlier alarms are the same on every run.
    """
    if not series:
        return []
    if series[0].name.startswith("anomaly."):
        # Charting the detectors' own output would chase its own alarms.
        raise InvalidInputError(f"anomaly detection does not run over {series[0].name}")
    charted = [s for s in series if s.observed_at <= until]
    out: list[Signal] = []
    for detector, params in detectors.items():
        newest = last_emitted.get(detector)
        for alarm in anomaly_signals(charted, detector, params):
            if alarm.observed_at <= since:
                continue
            if newest is not None and alarm.observed_at <= newest:
                continue
            out.append(alarm)
    return out
