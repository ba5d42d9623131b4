"""Efficiency suite: the timing statistics (pure) and the harness that runs a real predict."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keelwatch.errors import InvalidInputError
from keelwatch.inference.efficiency import measure_efficiency
from keelwatch.monitoring.evaluation.efficiency import (
    EfficiencyMetrics,
    summarize_timings,
)

HAS_PROC = Path("/proc/self/statm").exists()


def test_summarize_timings_percentiles_and_throughput() -> None:
    latencies = [0.010, 0.020, 0.030, 0.040, 0.100]
    got = summarize_timings(32, latencies)
    p50, p95 = np.percentile(latencies, [50, 95])
    assert (got.batch_size, got.batches) == (32, 5)
    assert got.latency_p50_s == pytest.approx(p50)
    assert got.latency_p95_s == pytest.approx(p95)
    assert got.rows_per_s == pytest.approx(32 * 5 / 0.2)
    assert got.latency_p95_s == pytest.approx(0.088)


@pytest.mark.parametrize(
    ("batch", "latencies", "message"),
    [
        (0, [0.1], "batch_size must be at least 1"),
        (1, [], "latencies_s is empty"),
        (1, [0.1, -0.1], "negative, missing or infinite"),
        (1, [float("nan")], "negative, missing or infinite"),
    ],
)
def test_summarize_timings_bad_input(batch: int, latencies: list[float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        summarize_timings(batch, latencies)


def test_as_dict_headlines_the_largest_batch() -> None:
    small = summarize_timings(1, [0.001, 0.002])
    large = summarize_timings(256, [0.010, 0.030])
    metrics = EfficiencyMetrics(
        timings=(large, small), peak_memory_bytes=1024, model_size_bytes=None, device="cpu"
    )
    got = metrics.as_dict()
    assert got["latency_p95_s"] == large.latency_p95_s
    assert got["rows_per_s"] == large.rows_per_s
    assert got["latency_p50_s"] == large.latency_p50_s
    assert got["latency_p95_s@1"] == small.latency_p95_s
    assert got["rows_per_s@256"] == large.rows_per_s
    assert got["peak_memory_bytes"] == 1024.0
    assert "model_size_bytes" not in got


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])


def test_harness_calls_predict_with_each_batch_size() -> None:
    seen: list[int] = []
    frame = _frame(300)

    got = measure_efficiency(
        lambda batch: seen.append(len(batch)),
        frame,
        batch_sizes=(32, 1, 256, 1000),
        repeats=5,
        warmup=2,
        model_size_bytes=12345,
    )

    # 1000 > 300 rows is skipped; sizes run smallest first; warm-up calls are not timed.
    assert seen == [1] * 7 + [32] * 7 + [256] * 7
    assert [t.batch_size for t in got.timings] == [1, 32, 256]
    assert all(t.batches == 5 for t in got.timings)
    assert got.model_size_bytes == 12345
    assert got.device == "cpu"


def test_harness_uses_different_rows_across_repeats() -> None:
    firsts: list[float] = []
    frame = _frame(100)
    measure_efficiency(
        lambda batch: firsts.append(float(batch["a"].iloc[0])),
        frame,
        batch_sizes=(10,),
        repeats=5,
        warmup=0,
    )
    assert len(set(firsts)) == 5


def test_harness_with_a_frame_smaller_than_every_batch_size() -> None:
    got = measure_efficiency(lambda _batch: None, _frame(7), batch_sizes=(32, 256), repeats=3)
    assert [t.batch_size for t in got.timings] == [7]


def test_harness_latency_covers_the_predict_call() -> None:
    got = measure_efficiency(
        lambda _batch: time.sleep(0.003), _frame(50), batch_sizes=(1,), repeats=5, warmup=0
    )
    # sleep sleeps at least as long as asked, so this lower bound cannot flake on a busy machine
    assert got.timings[0].latency_p50_s >= 0.003
    assert got.timings[0].rows_per_s <= 1 / 0.003


def test_harness_times_a_real_sklearn_model() -> None:
    frame = _frame(2_000)
    model = LogisticRegression().fit(frame, frame["a"] > 0)
    got = measure_efficiency(model.predict, frame, repeats=5)
    assert [t.batch_size for t in got.timings] == [1, 32, 256]
    assert all(t.latency_p50_s > 0 for t in got.timings)
    rows_per_s = [t.rows_per_s for t in got.timings]
    assert rows_per_s[2] > rows_per_s[0]  # batching pays for sklearn's per-call overhead


@pytest.mark.skipif(not HAS_PROC or sys.platform != "linux", reason="needs Linux /proc")
def test_peak_memory_sees_an_allocation_made_inside_predict() -> None:
    size = 200 * 1024 * 1024

    def allocate(batch: pd.DataFrame) -> None:
        block = np.ones(size // 8)  # touched, so resident
        del block

    page = os.sysconf("SC_PAGE_SIZE")
    before = int(Path("/proc/self/statm").read_text().split()[1]) * page
    got = measure_efficiency(allocate, _frame(10), batch_sizes=(1,), repeats=2, warmup=0)
    assert got.peak_memory_bytes is not None
    assert got.peak_memory_bytes >= before + size * 0.9


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        (0, {}, "the evaluation frame is empty"),
        (10, {"batch_sizes": (0, 1)}, "batch_sizes must be one or more positive"),
        (10, {"batch_sizes": ()}, "batch_sizes must be one or more positive"),
        (10, {"repeats": 0}, "repeats must be at least 1"),
    ],
)
def test_harness_bad_input(rows: int, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        measure_efficiency(lambda _batch: None, _frame(rows), **kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(not HAS_PROC or sys.platform != "linux", reason="needs Linux /proc")
def test_sampling_fallback_sees_an_allocation_held_for_a_while() -> None:
    # The fallback for kernels that refuse the VmHWM reset: a thread sampling /proc/self/statm.
    from keelwatch.inference.efficiency import _PeakRss

    size = 200 * 1024 * 1024
    page = os.sysconf("SC_PAGE_SIZE")
    before = int(Path("/proc/self/statm").read_text().split()[1]) * page
    probe = _PeakRss(use_kernel=False)
    probe.start()
    block = np.ones(size // 8)
    time.sleep(0.3)  # several sampling intervals; sleeping releases the GIL to the sampler
    del block
    peak = probe.stop()
    assert peak is not None
    assert peak >= before + size * 0.9
