"""The efficiency suite's timing harness: run ``predict`` on batches and time each call.

Not pure (it runs the model, reads ``/proc`` and asks torch for CUDA memory), so it lives here
rather than in ``monitoring.evaluation``, whose :mod:`~keelwatch.monitoring.evaluation.efficiency`
turns the timings into percentiles.

What is timed: ``time.perf_counter()`` around each ``predict(batch)`` call and nothing else.
Batches are sliced before the clock starts; on CUDA the call is followed by
``torch.cuda.synchronize()`` inside the timed span, because kernels run asynchronously and the
latency a caller sees includes them. Warm-up calls (first-call compilation, caches) are not
recorded.

Peak memory: on Linux the kernel keeps a process's peak resident set (``VmHWM``); the harness
resets it (``/proc/self/clear_refs``) before timing and reads it after, which costs nothing
per call. Where the reset is refused, a daemon thread samples ``/proc/self/statm`` every
20 ms instead (one small read per sample; well under 1 % of a core). On CUDA the figure is
``torch.cuda.max_memory_allocated`` instead: device memory is what limits a GPU model. The
figure is the whole process's peak while the model ran, not an increment.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.monitoring.evaluation.efficiency import EfficiencyMetrics

DEFAULT_BATCH_SIZES = (1, 32, 256)
_SAMPLE_INTERVAL_S = 0.02
_PROC = Path("/proc/self")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _read_hwm() -> int | None:
    try:
        with (_PROC / "status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _read_rss() -> int | None:
    try:
        with (_PROC / "statm").open(encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


class _PeakRss:
    """Peak resident memory of this process between ``start`` and ``stop``: the kernel's
    high-water mark when ``use_kernel`` and the reset works, else a sampling thread."""

    def __init__(self, *, use_kernel: bool = True) -> None:
        self._use_kernel = use_kernel
        self._peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kernel = False

    def start(self) -> None:
        if self._use_kernel:
            self._reset_kernel_mark()
        if not self._kernel and _read_rss() is not None:
            self._peak = _read_rss()
            self._thread = threading.Thread(target=self._sample, name="keelwatch-rss", daemon=True)
            self._thread.start()

    def _reset_kernel_mark(self) -> None:
        try:
            with (_PROC / "clear_refs").open("w", encoding="ascii") as clear:
                clear.write("5")  # reset VmHWM to the current RSS
            self._kernel = _read_hwm() is not None
        except OSError:
            self._kernel = False

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_INTERVAL_S):
            rss = _read_rss()
            if rss is not None and (self._peak is None or rss > self._peak):
                self._peak = rss

    def stop(self) -> int | None:
        if self._kernel:
            return _read_hwm()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            rss = _read_rss()
            if rss is not None and (self._peak is None or rss > self._peak):
                self._peak = rss
        return self._peak


def _cuda_torch(device: str) -> Any | None:
    """torch when the model runs on CUDA and torch is already loaded (never imported here)."""
    if not device.startswith("cuda"):
        return None
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch


@contextmanager
def _peak_memory(device: str, torch: Any | None) -> Iterator[list[int | None]]:
    result: list[int | None] = [None]
    if torch is not None:
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        result[0] = int(torch.cuda.max_memory_allocated(device))
        return
    probe = _PeakRss()
    probe.start()
    try:
        yield result
    finally:
        result[0] = probe.stop()


def _batches(frame: pd.DataFrame, size: int, count: int) -> list[pd.DataFrame]:
    # Consecutive slices, wrapping around, so repeats see different rows when there are enough.
    rows = len(frame)
    starts = [(i * size) % max(rows - size + 1, 1) for i in range(count)]
    return [frame.iloc[start : start + size] for start in starts]


def measure_efficiency(
    predict: Callable[[pd.DataFrame], object],
    frame: pd.DataFrame,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    repeats: int = 20,
    warmup: int = 2,
    device: str = "cpu",
    model_size_bytes: int | None = None,
) -> EfficiencyMetrics:
    """Time ``predict`` on ``repeats`` batches of each size in ``batch_sizes`` (after ``warmup``
    untimed calls per size) and report latency percentiles, rows/s and peak memory.

    Batch sizes larger than ``frame`` are skipped; when none fits, the whole frame is one batch.
    """
    from keelwatch.monitoring.evaluation.efficiency import EfficiencyMetrics, summarize_timings

    if len(frame) == 0:
        raise InvalidInputError("the evaluation frame is empty: no rows to time")
    if repeats < 1 or warmup < 0:
        raise InvalidInputError("repeats must be at least 1 and warmup at least 0")
    bad = [b for b in batch_sizes if b < 1]
    if bad or not batch_sizes:
        raise InvalidInputError("batch_sizes must be one or more positive integers")
    sizes = sorted({b for b in batch_sizes if b <= len(frame)}) or [len(frame)]
    torch = _cuda_torch(device)
    sync: Callable[[], None] = torch.cuda.synchronize if torch is not None else (lambda: None)
    timings = []
    clock = time.perf_counter
    with _peak_memory(device, torch) as peak:
        for size in sizes:
            batches = _batches(frame, size, warmup + repeats)
            for batch in batches[:warmup]:
                predict(batch)
                sync()
            latencies = []
            for batch in batches[warmup:]:
                start = clock()
                predict(batch)
                sync()
                latencies.append(clock() - start)
            timings.append(summarize_timings(size, latencies))
    return EfficiencyMetrics(
        timings=tuple(timings),
        peak_memory_bytes=peak[0],
        model_size_bytes=model_size_bytes,
        device=device,
    )
