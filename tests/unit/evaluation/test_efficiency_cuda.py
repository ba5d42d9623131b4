"""The timing harness on a real CUDA device: synchronised latency and device peak memory.

Skipped (with the reason) where torch is missing or sees no CUDA device.
On a GPU machine: ``python -m pytest -m gpu tests/unit/evaluation/test_efficiency_cuda.py``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keelwatch.inference.efficiency import measure_efficiency

torch = pytest.importorskip("torch", reason="torch is not installed (extra 'gpu')")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available here"),
]

FRAME = pd.DataFrame({"x": np.arange(64, dtype=np.float64)})


def test_latency_waits_for_the_kernels_and_peak_is_device_memory() -> None:
    a = torch.randn(4096, 4096, device="cuda")
    block_bytes = 256 * 1024 * 1024

    def predict(_batch: pd.DataFrame) -> Any:
        # Queued asynchronously: without a synchronise the call returns in microseconds.
        out = a
        for _ in range(8):
            out = out @ a
        scratch = torch.empty(block_bytes // 4, dtype=torch.float32, device="cuda")
        scratch.fill_(1.0)
        return out

    bare = []
    for _ in range(10):
        start = time.perf_counter()
        predict(FRAME)
        torch.cuda.synchronize()
        bare.append(time.perf_counter() - start)

    got = measure_efficiency(predict, FRAME, batch_sizes=(1,), repeats=10, device="cuda")

    assert got.device == "cuda"
    assert got.timings[0].latency_p50_s >= 0.5 * statistics.median(bare)
    assert got.peak_memory_bytes is not None
    assert got.peak_memory_bytes >= block_bytes
