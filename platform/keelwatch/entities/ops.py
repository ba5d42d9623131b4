"""What the fleet did in a time window, as storage reads it for the operational signal series.

``storage.ops`` returns these (counts already grouped in SQL); ``monitoring.ops`` turns them
into :class:`~keelwatch.entities.signals.Signal` values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkTally:
    """Chunks of one batch-inference job that finished (done or failed) inside a window.

    ``model``, ``version`` and ``queue`` come from the job's parameters; ``rows`` is the sum of
    ``rows_done`` of the chunks that finished ``done`` (a failed chunk scored nothing).
    """

    model: str
    version: str
    queue: str
    done: int
    failed: int
    rows: int


@dataclass(frozen=True)
class LatencyTally:
    """``count`` prediction-log rows of one model version (and queue) logged inside a window
    with the same ``latency_s``.

    For batch inference every logged row of a chunk carries the chunk's model ``predict`` time
    divided by its rows, so equal values are grouped in SQL instead of loading every row.
    ``queue`` is the job's queue, or ``""`` for rows that no job logged.
    """

    model: str
    version: str
    queue: str
    latency_s: float
    count: int
