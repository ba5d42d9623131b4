"""A deterministic, mergeable quantile sketch with a certified rank-error bound.

Structure (a deterministic KLL/MRL compactor stack): level ``h`` holds fewer than ``k`` items,
each standing for ``2**h`` observations. When a level reaches ``k`` items they are sorted and
every other one (alternating the offset between compactions) moves up a level with twice the
weight. A compaction of items of weight ``w`` changes the estimated count of observations
``<= x`` by at most ``w`` for every ``x``, so the sketch keeps the running sum of those weights
as :attr:`QuantileSketch.rank_error_bound`; merging concatenates levels and adds the bounds.

**The bound.** For every ``x``: ``|rank_estimate(x) - true_rank(x)| <= rank_error_bound``, and
``rank_error_bound <= N · ceil(log2(N / k)) / k`` for a sketch of ``N`` observations, however it
was split and merged (each level compacts at most ``N / (k · 2**h)`` times). With the default
``k = 4096`` and ``N = 20 000 000`` that is at most 0.32 % of ``N``; the tracked value is what
reports quote. A KS statistic computed from two sketches is within
``bound_a / N_a + bound_b / N_b`` of the exact one. Sketches cost more than a sort and give no
p-value: use them for memory and mergeability, not for speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

DEFAULT_SKETCH_K = 4096


@dataclass(slots=True)
class QuantileSketch:
    """Compactor stack; build with :meth:`from_values`, combine with :meth:`merge`."""

    k: int = DEFAULT_SKETCH_K
    levels: list[NDArray[np.float64]] = field(default_factory=list)
    parities: list[int] = field(default_factory=list)
    count: int = 0
    rank_error_bound: int = 0

    def __post_init__(self) -> None:
        if self.k < 2 or self.k % 2:
            raise ValueError("sketch size k must be an even number >= 2")

    @classmethod
    def from_values(cls, values: NDArray[np.float64], k: int = DEFAULT_SKETCH_K) -> QuantileSketch:
        """Sketch of finite values (any order)."""
        sketch = cls(k=k)
        sketch._add_level_items(0, np.asarray(values, dtype=np.float64))
        sketch.count = int(values.shape[0])
        sketch._compact()
        return sketch

    def _add_level_items(self, level: int, items: NDArray[np.float64]) -> None:
        while len(self.levels) <= level:
            self.levels.append(np.empty(0, dtype=np.float64))
            self.parities.append(0)
        self.levels[level] = np.concatenate((self.levels[level], items))

    def _compact(self) -> None:
        h = 0
        while h < len(self.levels):
            items = self.levels[h]
            chunks = items.shape[0] // self.k
            if chunks:
                block = np.sort(items[: chunks * self.k].reshape(chunks, self.k), axis=1)
                # Alternate the kept offset so rounding errors tend to cancel; the bound
                # below does not rely on it.
                odd = (self.parities[h] + np.arange(chunks)) % 2 == 1
                promoted = np.where(odd[:, None], block[:, 1::2], block[:, 0::2]).ravel()
                self.parities[h] = (self.parities[h] + chunks) % 2
                self.levels[h] = items[chunks * self.k :].copy()
                self.rank_error_bound += chunks * (1 << h)
                self._add_level_items(h + 1, promoted)
            h += 1
        self.levels = [np.sort(level) for level in self.levels]

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A new sketch of both inputs' observations; bounds add, then compaction may add more."""
        if other.k != self.k:
            raise ValueError(f"cannot merge sketches of different sizes ({self.k} vs {other.k})")
        out = QuantileSketch(k=self.k)
        for h in range(max(len(self.levels), len(other.levels))):
            parts = [s.levels[h] for s in (self, other) if h < len(s.levels)]
            out._add_level_items(h, np.concatenate(parts))
            out.parities[h] = (self.parities[h] if h < len(self.parities) else 0) ^ (
                other.parities[h] if h < len(other.parities) else 0
            )
        out.count = self.count + other.count
        out.rank_error_bound = self.rank_error_bound + other.rank_error_bound
        out._compact()
        return out

    def weighted_items(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """All retained items sorted, with the number of observations each stands for."""
        if not self.levels:
            return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
        values = np.concatenate(self.levels)
        weights = np.concatenate(
            [np.full(level.shape[0], 1 << h, dtype=np.int64) for h, level in enumerate(self.levels)]
        )
        order = np.argsort(values, kind="mergesort")
        return values[order], weights[order]

    def rank(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        """Estimated number of observations ``<= x``; off by at most ``rank_error_bound``."""
        total = np.zeros(np.shape(x), dtype=np.int64)
        for h, level in enumerate(self.levels):
            total += np.searchsorted(level, x, side="right").astype(np.int64) << h
        return total

    def quantiles(self, q: NDArray[np.float64]) -> NDArray[np.float64]:
        """Values whose estimated rank is the first to reach ``q · count``."""
        values, weights = self.weighted_items()
        if values.shape[0] == 0:
            return np.full(np.shape(q), np.nan)
        cumulative = np.cumsum(weights)
        target = np.asarray(q, dtype=np.float64) * cumulative[-1]
        idx = np.minimum(np.searchsorted(cumulative, target, side="left"), values.shape[0] - 1)
        return np.asarray(values[idx], dtype=np.float64)


def ks_statistic_from_sketches(
    reference: QuantileSketch, current: QuantileSketch
) -> tuple[float, float]:
    """Approximate KS ``D`` between two sketches and the bound on its error.

    Returns ``(d, bound)`` with ``|d - D_exact| <= bound``. No p-value: the sketch's items are
    not a sample, so a KS p-value computed from them would be meaningless.
    """
    if reference.count == 0 or current.count == 0:
        raise ValueError("KS statistic needs two non-empty sketches")
    points = np.union1d(*(np.concatenate(s.levels) for s in (reference, current)))
    diff = reference.rank(points) / reference.count - current.rank(points) / current.count
    d = float(np.max(np.abs(diff)))
    bound = reference.rank_error_bound / reference.count + current.rank_error_bound / current.count
    return d, bound
