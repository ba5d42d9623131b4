"""Rows reduced to sufficient statistics at the finest intersection, slices as sums of those
cells, and the bootstrap as draws over cells.

**Cells.** Every row falls in one *finest group* (its values of all the sensitive attributes
together) and, in a binary audit, one outcome *cell* of that group: (label, prediction), four
cells per group with labels, two without. A regression audit has one cell per group. Per cell
we keep the row count and, for each continuous per-row quantity (the score; a regression's
prediction, label and absolute error), its sum and its population standard deviation. Every
metric of every slice is a function of cell counts and sums, and the groups of a coarser slice
(``gender`` alone) are sums of finest groups, so every slice is computed from the same cells
and the slices agree with each other in every resample.

**Bootstrap.** Resampling ``n`` rows with replacement puts a multinomial number of rows in
each cell: ``counts ~ Multinomial(n, cell_counts / n)``. That is *exactly* the row bootstrap
for every count-based metric (selection rate, TPR, FPR, precision, accuracy, base rate, the
parity gaps), with no approximation and at a cost independent of ``n``. For a continuous
quantity the resampled cell sum given its resampled count ``k`` is the sum of ``k`` draws from
the cell's values; we draw it from its normal limit ``k * mean + sqrt(k) * sd * z`` (the
central limit theorem for a sum of ``k`` i.i.d. draws, exact in mean and variance). The
approximation is good once cells hold more than a handful of rows, which the
``min_group_size`` floor on judged groups already asks for; the tests compare the intervals
with a brute-force row bootstrap. Different continuous quantities get independent normals:
each gap involves one metric, so only each quantity's own distribution matters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from keelwatch.monitoring.fairness._inputs import EncodedAttribute, EncodedOutcomes

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# A lookup table over every combination of attribute codes is used while it is this small (no
# sort of the rows); beyond it the combined codes are compacted with np.unique.
_LOOKUP_LIMIT = 1 << 24
# Resampled cell arrays are built this many values at a time (bounds memory with many cells).
_CHUNK_VALUES = 4_000_000

#: Cell layout of a binary audit with labels: index = 2 * label + prediction.
TN, FP, FN, TP = 0, 1, 2, 3


@dataclass(frozen=True)
class Cells:
    """Sufficient statistics of the rows at the finest intersection."""

    group_codes: IntArray
    """(groups, attributes): each finest group's code of each attribute."""
    counts: IntArray
    """(groups, cells per group): rows per cell."""
    sums: dict[str, FloatArray]
    """quantity → (groups, cells) sums of a continuous per-row quantity."""
    sds: dict[str, FloatArray]
    """quantity → (groups, cells) population standard deviations within each cell."""

    @property
    def rows(self) -> int:
        return int(self.counts.sum())


def finest_groups(attributes: Sequence[EncodedAttribute]) -> tuple[IntArray, IntArray]:
    """The finest group of each row and the attribute codes of each finest group.

    Groups are numbered in lexicographic order of their codes (the attributes' order), and
    only combinations that occur are groups."""
    sizes = [len(a.levels) for a in attributes]
    radix = 1
    for size in sizes:
        radix *= size
    if radix <= _LOOKUP_LIMIT:
        combined = np.zeros(len(attributes[0].codes), dtype=np.int64)
        for attribute, size in zip(attributes, sizes, strict=True):
            combined *= size
            combined += attribute.codes
        present = np.bincount(combined, minlength=radix) > 0
        position = np.cumsum(present) - 1
        row_group = position[combined]
        combos = np.flatnonzero(present)
    else:
        combined = attributes[0].codes
        for attribute, size in zip(attributes[1:], sizes[1:], strict=True):
            _, inverse = np.unique(combined * size + attribute.codes, return_inverse=True)
            combined = inverse.astype(np.int64).reshape(-1)
        _, first, row_group = np.unique(combined, return_index=True, return_inverse=True)
        row_group = row_group.astype(np.int64).reshape(-1)
        codes = np.stack([a.codes[first] for a in attributes], axis=1)
        return row_group, codes.astype(np.int64)
    codes = np.empty((len(combos), len(attributes)), dtype=np.int64)
    rest = combos.copy()
    for index in range(len(attributes) - 1, -1, -1):
        codes[:, index] = rest % sizes[index]
        rest //= sizes[index]
    return row_group.astype(np.int64), codes


def reduce_rows(attributes: Sequence[EncodedAttribute], outcomes: EncodedOutcomes) -> Cells:
    """Count rows (and sum the continuous quantities) per finest group and outcome cell."""
    row_group, group_codes = finest_groups(attributes)
    groups = len(group_codes)
    quantities: dict[str, npt.NDArray[np.float64]] = {}
    if outcomes.task == "binary":
        sub = outcomes.pred.astype(np.int64)
        per_group = 2
        if outcomes.label is not None:
            sub = sub + 2 * outcomes.label.astype(np.int64)
            per_group = 4
        if outcomes.score is not None:
            quantities["score"] = np.asarray(outcomes.score, dtype=np.float64)
        cell = row_group * per_group + sub
    else:
        per_group = 1
        cell = row_group
        pred = np.asarray(outcomes.pred, dtype=np.float64)
        quantities["pred"] = pred
        if outcomes.label is not None:
            label = np.asarray(outcomes.label, dtype=np.float64)
            quantities["label"] = label
            quantities["abs_error"] = np.abs(label - pred)
    size = groups * per_group
    counts = np.bincount(cell, minlength=size)
    safe = np.maximum(counts, 1)
    sums: dict[str, FloatArray] = {}
    sds: dict[str, FloatArray] = {}
    for name, values in quantities.items():
        total = np.asarray(np.bincount(cell, weights=values, minlength=size), dtype=np.float64)
        mean = total / safe
        # Centred second pass: the variance of values near 1 (scores) stays accurate.
        squares = np.bincount(cell, weights=(values - mean[cell]) ** 2, minlength=size)
        squares = np.asarray(squares, dtype=np.float64)
        sums[name] = total.reshape(groups, per_group)
        sds[name] = np.sqrt(squares / safe).reshape(groups, per_group)
    return Cells(
        group_codes=group_codes,
        counts=counts.astype(np.int64).reshape(groups, per_group),
        sums=sums,
        sds=sds,
    )


@dataclass(frozen=True)
class SliceIndex:
    """How the finest groups add up to the groups of one slice."""

    attributes: tuple[int, ...]
    """Positions of the slice's attributes among all attributes."""
    keys: IntArray
    """(slice groups, len(attributes)): attribute codes of each slice group (sorted)."""
    order: IntArray
    """Finest groups sorted by slice group, so each slice group is one contiguous run."""
    starts: IntArray
    """Where each slice group's run starts in ``order``."""

    def aggregate(self, values: FloatArray) -> FloatArray:
        """Sum ``(..., finest groups, cells)`` to ``(..., slice groups, cells)``."""
        return np.add.reduceat(np.take(values, self.order, axis=-2), self.starts, axis=-2)


def slice_index(group_codes: IntArray, attributes: tuple[int, ...]) -> SliceIndex:
    """The slice of the given attribute positions over the finest groups."""
    keys, inverse = np.unique(group_codes[:, list(attributes)], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(keys)))
    return SliceIndex(attributes, keys.astype(np.int64), order.astype(np.int64), starts)


@dataclass(frozen=True)
class Resample:
    """A block of bootstrap resamples: cell counts and continuous sums per finest group."""

    counts: FloatArray
    """(resamples, finest groups, cells) as floats (exact integers)."""
    sums: dict[str, FloatArray]


def resamples(cells: Cells, total: int, rng: np.random.Generator) -> Iterator[Resample]:
    """``total`` bootstrap resamples of the rows, in blocks, drawn over cells (see the module
    docstring): multinomial cell counts, then each continuous sum from its normal limit."""
    groups, per_group = cells.counts.shape
    flat = cells.counts.reshape(-1)
    rows = int(flat.sum())
    probabilities = flat / rows
    means = {name: (s / np.maximum(cells.counts, 1)).reshape(-1) for name, s in cells.sums.items()}
    block = max(1, min(total, _CHUNK_VALUES // max(1, flat.size * (1 + len(means)))))
    done = 0
    while done < total:
        size = min(block, total - done)
        counts = rng.multinomial(rows, probabilities, size=size).astype(np.float64)
        sums: dict[str, FloatArray] = {}
        for name, mean in means.items():
            spread = cells.sds[name].reshape(-1)
            noise = rng.standard_normal(counts.shape)
            draws = counts * mean + np.sqrt(counts) * spread * noise
            sums[name] = draws.reshape(size, groups, per_group)
        yield Resample(counts.reshape(size, groups, per_group), sums)
        done += size
