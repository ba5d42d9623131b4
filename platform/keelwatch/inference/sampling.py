"""Deterministic sampling of scored rows for the prediction log.

Whether row ``i`` of job ``j`` is logged depends only on ``(j, i)`` and the rate: not on how the
rows were chunked, which worker scored them, or how often a chunk was retried. So a retried
chunk picks exactly the same rows, and their request ids (``f"{job_id}:{row_index}"``) collide
with the rows already logged instead of adding new ones.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_GOLDEN = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB


def prediction_request_id(job_id: str, row_index: int) -> str:
    """Request id of a batch-scored row in the prediction log."""
    return f"{job_id}:{row_index}"


def _job_seed(job_id: str) -> int:
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "little")


def sampled_rows(job_id: str, start: int, stop: int, rate: float) -> npt.NDArray[np.int64]:
    """Indices in ``[start, stop)`` picked for the log, each with probability ``rate``.

    A splitmix64 hash of (job seed, row index) gives every row a uniform number in [0, 1); the row
    is picked when that number is below ``rate``. Vectorised: 100,000 rows take about a
    millisecond.
    """
    import numpy as np

    if rate <= 0.0 or stop <= start:
        return np.empty(0, dtype=np.int64)
    rows = np.arange(start, stop, dtype=np.uint64)
    if rate >= 1.0:
        return rows.astype(np.int64)
    # uint64 array arithmetic wraps modulo 2**64, which is exactly what splitmix64 wants.
    z = rows * np.uint64(_GOLDEN) + np.uint64(_job_seed(job_id))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX_1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX_2)
    z = z ^ (z >> np.uint64(31))
    uniform = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return rows[uniform < rate].astype(np.int64)
