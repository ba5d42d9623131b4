"""Efficiency suite statistics: latency percentiles and throughput per batch size.

Pure: the timings come from :func:`keelwatch.inference.efficiency.measure_efficiency`, which
runs the model; this module only summarises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keelwatch.errors import InvalidInputError


@dataclass(frozen=True)
class BatchTiming:
    """Latency of ``predict`` on batches of ``batch_size`` rows, over ``batches`` calls."""

    batch_size: int
    latency_p50_s: float
    latency_p95_s: float
    rows_per_s: float
    batches: int


@dataclass(frozen=True)
class EfficiencyMetrics:
    """Timings per batch size plus memory, size on disk and the device that ran the model."""

    timings: tuple[BatchTiming, ...]
    peak_memory_bytes: int | None
    model_size_bytes: int | None
    device: str

    def as_dict(self) -> dict[str, float]:
        """``latency_p50_s``/``latency_p95_s``/``rows_per_s`` of the largest batch size, the
        same per batch size as ``<name>@<batch>``, then memory and model size when known."""
        out: dict[str, float] = {}
        if self.timings:
            largest = max(self.timings, key=lambda t: t.batch_size)
            out["latency_p50_s"] = largest.latency_p50_s
            out["latency_p95_s"] = largest.latency_p95_s
            out["rows_per_s"] = largest.rows_per_s
        for timing in sorted(self.timings, key=lambda t: t.batch_size):
            out[f"latency_p50_s@{timing.batch_size}"] = timing.latency_p50_s
            out[f"latency_p95_s@{timing.batch_size}"] = timing.latency_p95_s
            out[f"rows_per_s@{timing.batch_size}"] = timing.rows_per_s
        if self.peak_memory_bytes is not None:
            out["peak_memory_bytes"] = float(self.peak_memory_bytes)
        if self.model_size_bytes is not None:
            out["model_size_bytes"] = float(self.model_size_bytes)
        return out


def summarize_timings(batch_size: int, latencies_s: Sequence[float]) -> BatchTiming:
    """p50/p95 (linear interpolation) of the per-call latencies and rows/s over all calls."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
    samples = np.asarray(latencies_s, dtype=np.float64)
    if samples.ndim != 1 or samples.size == 0:
        raise InvalidInputError("latencies_s is empty: time at least one batch")
    if not np.isfinite(samples).all() or (samples < 0).any():
        raise InvalidInputError("latencies_s has negative, missing or infinite values")
    total = float(samples.sum())
    p50, p95 = np.percentile(samples, [50, 95])
    return BatchTiming(
        batch_size=batch_size,
        latency_p50_s=float(p50),
        latency_p95_s=float(p95),
        rows_per_s=batch_size * samples.size / total if total > 0 else float("inf"),
        batches=int(samples.size),
    )
