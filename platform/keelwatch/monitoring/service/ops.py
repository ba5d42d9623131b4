"""The ops tick on the platform: the fleet's operational series and anomaly alarms, stored and
evaluated in the caller's transaction.

:func:`record_ops_signals` is what the Celery task ``keelwatch.monitoring.ops_signals`` wraps
(the task reads the broker's queue depths first, opens the transaction, commits, then calls
``alerting.service.after_commit_dispatch``). The series and the anomaly choice are described in
:mod:`keelwatch.monitoring.ops`.

Idempotent per tick: every ops signal of tick ``T`` carries the source ``ops_tick:<T>``; a run
that finds signals of that source writes no ops series again, and anomaly alarms are only
written when newer than the newest stored alarm of their series, so a redelivered or repeated
tick writes nothing twice. It still evaluates the rules on the tick's signals, which changes
nothing more when the first run already did.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keelwatch.alerting.service import evaluate_or_defer
from keelwatch.contract import JOB_BATCH_INFERENCE
from keelwatch.entities.signals import Signal, labels_fingerprint
from keelwatch.monitoring.anomaly import CusumParams, Detector, EwmaParams
from keelwatch.monitoring.ops import (
    chunk_signals,
    latency_signals,
    new_anomaly_signals,
    queue_depth_signals,
    tick_end,
    tick_source,
)
from keelwatch.storage import ops as ops_store
from keelwatch.storage import signals as signal_store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.settings import AlertingSettings

logger = logging.getLogger(__name__)

#: The detectors every configured series is charted with, at their documented defaults.
DETECTORS: Mapping[Detector, EwmaParams | CusumParams | None] = {"ewma": None, "cusum": None}


@dataclass(frozen=True)
class OpsTickOutcome:
    """What one run of the ops tick did."""

    tick: datetime
    """``T``: the end of the window, the time every ops signal is observed at."""
    ops_signals: int
    anomaly_signals: int
    already_recorded: bool
    """True when an earlier run had written this tick's ops series (nothing written again)."""
    transitions: list[tuple[str, str | None, str]] = field(default_factory=list)
    """(fingerprint, from state, to state) of the alerts the evaluation changed."""


def record_ops_signals(
    session: Session,
    settings: AlertingSettings,
    now: datetime,
    *,
    queue_depths: Mapping[str, int] | None,
) -> OpsTickOutcome:
    """Write tick ``T``'s ops series and new anomaly alarms, then evaluate the rules on them.

    ``queue_depths`` is the broker's reading (None when it could not be read: no
    ``ops.queue_depth`` point, rather than a made-up 0). ``now`` is the evaluation time of the
    rules; ``T`` is ``now`` truncated to ``settings.ops_interval_s``.
    """
    end = tick_end(now, settings.ops_interval_s)
    source = tick_source(end)
    ops_store.lock_tick(session, _lock_key(source))
    already = ops_store.has_signals_from(session, source)
    if already:
        ops = signal_store.signals_from_source(session, source)
        ops = [s for s in ops if not s.name.startswith("anomaly.")]
    else:
        start = end - timedelta(seconds=settings.ops_window_s)
        ops = [
            *chunk_signals(
                ops_store.finished_chunk_tallies(session, start, end, kind=JOB_BATCH_INFERENCE),
                window_s=settings.ops_window_s,
                at=end,
                source=source,
            ),
            *latency_signals(
                ops_store.logged_latency_tallies(session, start, end), at=end, source=source
            ),
            *queue_depth_signals(queue_depths, at=end, source=source),
        ]
        signal_store.write_signals(session, ops)
    alarms = _new_alarms(session, settings, end)
    signal_store.write_signals(session, alarms)
    outcome = evaluate_or_defer(session, [*ops, *alarms], now, what="ops")
    return OpsTickOutcome(
        tick=end,
        ops_signals=0 if already else len(ops),
        anomaly_signals=len(alarms),
        already_recorded=already,
        transitions=[
            (t.fingerprint, t.from_state.value if t.from_state else None, t.to_state.value)
            for t in (outcome.transitions if outcome is not None else [])
        ],
    )


def _new_alarms(session: Session, settings: AlertingSettings, end: datetime) -> list[Signal]:
    """EWMA and CUSUM over every series of each configured name seen in the lookback."""
    since = end - timedelta(seconds=settings.ops_window_s)
    # The tick's own points are observed at ``end``; ``until`` is exclusive in storage.
    until = end + timedelta(microseconds=1)
    alarms: list[Signal] = []
    for name in settings.anomaly_signals:
        if name.startswith("anomaly."):
            continue  # the detectors' own output is never charted (see monitoring.ops)
        for newest in signal_store.latest_by_series(session, name, since=since):
            history = signal_store.series(
                session,
                name,
                fingerprint=newest.fingerprint,
                until=until,
                limit=settings.anomaly_history_points,
            )
            last = {d: _last_alarm(session, d, newest) for d in DETECTORS}
            alarms.extend(
                new_anomaly_signals(
                    history, detectors=DETECTORS, since=since, until=end, last_emitted=last
                )
            )
    return alarms


def _last_alarm(session: Session, detector: Detector, point: Signal) -> datetime | None:
    """The newest stored ``anomaly.<detector>`` alarm of ``point``'s series, either direction."""
    fingerprints = [
        labels_fingerprint(
            {**point.labels, "detector": detector, "signal": point.name, "direction": direction}
        )
        for direction in ("up", "down")
    ]
    return ops_store.newest_observed_at(session, f"anomaly.{detector}", fingerprints)


def _lock_key(source: str) -> int:
    """A signed 64-bit advisory-lock key derived from the tick's source."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
