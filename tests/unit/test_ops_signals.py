"""The fleet's operational series and the anomaly-novelty filter, against hand-computed values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities.ops import ChunkTally, LatencyTally
from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.anomaly import CusumParams, Detector, EwmaParams
from keelwatch.monitoring.ops import (
    OPS_SIGNAL_NAMES,
    chunk_signals,
    latency_signals,
    new_anomaly_signals,
    queue_depth_signals,
    tick_end,
    tick_source,
    weighted_quantile,
)

T = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
SOURCE = tick_source(T)


def by_key(signals: list[Signal]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in signals}


def test_the_ops_names_are_in_the_signal_catalogue() -> None:
    assert set(OPS_SIGNAL_NAMES) == {
        "ops.error_rate",
        "ops.rows_per_s",
        "ops.latency_p50_s",
        "ops.latency_p95_s",
        "ops.queue_depth",
    }
    assert set(OPS_SIGNAL_NAMES) <= known_signal_names()


def test_tick_end_truncates_to_the_interval_since_the_epoch() -> None:
    now = datetime(2024, 5, 1, 12, 3, 41, 500_000, tzinfo=UTC)
    assert tick_end(now, 60) == datetime(2024, 5, 1, 12, 3, tzinfo=UTC)
    assert tick_end(now, 300) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert tick_end(datetime(2024, 5, 1, 12, 3, tzinfo=UTC), 60) == now.replace(
        second=0, microsecond=0
    )
    assert tick_source(T) == "ops_tick:2024-05-01T12:05:00+00:00"
    with pytest.raises(InvalidInputError, match="timezone"):
        tick_end(datetime(2024, 5, 1), 60)  # noqa: DTZ001 - the naive time is the point


def test_error_rate_and_rows_per_s_sum_the_jobs_of_a_series() -> None:
    tallies = [
        ChunkTally("churn", "1", "cpu", done=3, failed=1, rows=3000),
        ChunkTally("churn", "1", "cpu", done=1, failed=0, rows=500),
        ChunkTally("churn", "2", "gpu", done=0, failed=2, rows=0),
        ChunkTally("idle", "1", "cpu", done=0, failed=0, rows=0),  # nothing finished: no data
    ]
    signals = chunk_signals(tallies, window_s=300.0, at=T, source=SOURCE)
    v1 = (("model", "churn"), ("queue", "cpu"), ("version", "1"))
    v2 = (("model", "churn"), ("queue", "gpu"), ("version", "2"))
    assert by_key(signals) == {
        ("ops.error_rate", v1): 1 / 5,  # 1 failed of 3 + 1 + 1 finished
        ("ops.rows_per_s", v1): 3500 / 300,
        ("ops.error_rate", v2): 1.0,
        ("ops.rows_per_s", v2): 0.0,
    }
    assert {(s.observed_at, s.source) for s in signals} == {(T, SOURCE)}


def test_no_finished_chunk_is_no_signal() -> None:
    assert chunk_signals([], window_s=300.0, at=T, source=SOURCE) == []
    with pytest.raises(InvalidInputError, match="window"):
        chunk_signals([], window_s=0.0, at=T, source=SOURCE)


def test_weighted_quantile_interpolates_between_ranks() -> None:
    # The multiset 0.1, 0.1, 0.1, 0.4: ranks h = 3q.
    pairs = [(0.4, 1), (0.1, 3)]
    assert weighted_quantile(pairs, 0.5) == pytest.approx(0.1)  # h = 1.5: between two 0.1
    assert weighted_quantile(pairs, 0.95) == pytest.approx(0.1 + 0.85 * 0.3)  # h = 2.85
    assert weighted_quantile(pairs, 1.0) == pytest.approx(0.4)
    assert weighted_quantile(pairs, 0.0) == pytest.approx(0.1)
    assert weighted_quantile([(2.0, 1)], 0.95) == 2.0
    # The reference: NumPy's default (linear) quantile over the expanded values.
    rng = np.random.default_rng(3)
    values = rng.exponential(size=40).round(2)
    counts = rng.integers(1, 6, size=40)
    expanded = np.repeat(values, counts)
    for q in (0.05, 0.5, 0.9, 0.95, 0.99):
        expected = float(np.quantile(expanded, q))
        got = weighted_quantile(zip(values.tolist(), counts.tolist(), strict=True), q)
        assert got == pytest.approx(expected)
    with pytest.raises(InvalidInputError, match="no values"):
        weighted_quantile([(1.0, 0)], 0.5)


def test_latency_percentiles_per_series_in_seconds() -> None:
    tallies = [
        LatencyTally("churn", "1", "cpu", latency_s=0.020, count=3),
        LatencyTally("churn", "1", "cpu", latency_s=0.100, count=1),
        LatencyTally("churn", "1", "", latency_s=0.005, count=2),  # logged by no job
    ]
    signals = by_key(latency_signals(tallies, at=T, source=SOURCE))
    cpu = (("model", "churn"), ("queue", "cpu"), ("version", "1"))
    bare = (("model", "churn"), ("version", "1"))
    assert signals[("ops.latency_p50_s", cpu)] == pytest.approx(0.020)
    assert signals[("ops.latency_p95_s", cpu)] == pytest.approx(0.020 + 0.85 * 0.080)
    assert signals[("ops.latency_p50_s", bare)] == pytest.approx(0.005)
    assert signals[("ops.latency_p95_s", bare)] == pytest.approx(0.005)
    assert len(signals) == 4
    assert latency_signals([], at=T, source=SOURCE) == []


def test_queue_depth_per_queue_and_nothing_without_a_reading() -> None:
    signals = queue_depth_signals({"gpu": 0, "cpu": 7}, at=T, source=SOURCE)
    assert by_key(signals) == {
        ("ops.queue_depth", (("queue", "cpu"),)): 7.0,
        ("ops.queue_depth", (("queue", "gpu"),)): 0.0,
    }
    assert queue_depth_signals(None, at=T, source=SOURCE) == []


def stepped_series(step_at: int = 10, points: int = 12) -> list[Signal]:
    """10, 12, 10, 12, ... (mean 11, sd sqrt(10/9)) then 30 from position ``step_at``, one
    point a minute ending at T."""
    start = T - timedelta(minutes=points - 1)
    return [
        Signal(
            "ops.queue_depth",
            30.0 if i >= step_at else (10.0 if i % 2 == 0 else 12.0),
            {"queue": "cpu"},
            start + timedelta(minutes=i),
            f"ops_tick:{i}",
        )
        for i in range(points)
    ]


def test_a_step_alarms_both_detectors_once_at_the_step() -> None:
    series = stepped_series()
    step_time = series[10].observed_at
    alarms = new_anomaly_signals(
        series,
        detectors={"ewma": None, "cusum": None},
        since=T - timedelta(minutes=5),
        until=T,
        last_emitted={},
    )
    assert [(a.name, a.observed_at, a.labels["direction"]) for a in alarms] == [
        ("anomaly.ewma", step_time, "up"),
        ("anomaly.cusum", step_time, "up"),
    ]
    sd = math.sqrt(10 / 9)
    # EWMA: z = 0.2 * 30 + 0.8 * 11; its sd after one point is sd * sqrt(0.2 / 1.8 * 0.36).
    assert alarms[0].value == pytest.approx((0.2 * 30 + 0.8 * 11 - 11) / (sd * 0.2))
    # CUSUM: C+ = (30 - 11) / sd - 0.5.
    assert alarms[1].value == pytest.approx((30 - 11) / sd - 0.5)
    assert alarms[0].labels == {
        "queue": "cpu",
        "detector": "ewma",
        "signal": "ops.queue_depth",
        "direction": "up",
    }


def test_only_alarms_newer_than_the_last_one_and_inside_the_lookback_are_new() -> None:
    series = stepped_series()
    step_time = series[10].observed_at
    detectors: dict[Detector, EwmaParams | CusumParams | None] = {"ewma": None, "cusum": None}
    lookback = T - timedelta(minutes=5)
    # The last run stored them: nothing new.
    stored: dict[Detector, datetime | None] = {"ewma": step_time, "cusum": step_time}
    assert (
        new_anomaly_signals(
            series, detectors=detectors, since=lookback, until=T, last_emitted=stored
        )
        == []
    )
    # Only one detector's alarm was stored: the other is still new.
    [cusum] = new_anomaly_signals(
        series, detectors=detectors, since=lookback, until=T, last_emitted={"ewma": step_time}
    )
    assert cusum.name == "anomaly.cusum"
    # The step is before the lookback (exclusive): an old alarm is not raised again.
    assert (
        new_anomaly_signals(series, detectors=detectors, since=step_time, until=T, last_emitted={})
        == []
    )
    # Points after ``until`` are not charted.
    assert (
        new_anomaly_signals(
            series,
            detectors=detectors,
            since=lookback,
            until=series[9].observed_at,
            last_emitted={},
        )
        == []
    )


def test_anomaly_signals_are_never_charted_again() -> None:
    alarm = Signal("anomaly.ewma", 4.0, {"signal": "ops.error_rate"}, T)
    with pytest.raises(InvalidInputError, match=r"anomaly\.ewma"):
        new_anomaly_signals(
            [alarm], detectors={"ewma": None}, since=T - timedelta(1), until=T, last_emitted={}
        )
