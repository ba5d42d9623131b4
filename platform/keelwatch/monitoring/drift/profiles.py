"""Reference profiles: mergeable per-column summaries, computed once and stored as one file.

A :class:`ReferenceProfile` holds, per column: its kind, row/missing/inf counts and

* numeric: exact moments (count, mean, M2, min, max), a fixed-edge histogram (interior edges
  at reference quantiles, open outer bins), the sorted values — run-length encoded, exact while
  the column has at most ``max_sorted_values`` distinct values, else a uniform random sample of
  that many values — and a :class:`~keelwatch.monitoring.drift.sketch.QuantileSketch`;
* categorical and binary: category counts.

**Merging** (:func:`merge_profiles`) is exact for counts, moments, histograms, category counts
and exact sorted values: ``merge(profile(A), profile(B)) == profile(A union B)`` when both sides
were built with the same bin edges (pass ``like=`` to :func:`build_profile`). Sketches merge
within their certified bound. Samples merge as bottom-k samples under i.i.d. uniform priorities,
so a merged sample is a uniform sample of ``A union B`` — use different ``seed`` values for
different partitions.

Profiles are saved with :func:`save_profile` to a single ``.npz`` file (no pickles) whose
``meta`` entry is JSON carrying :data:`PROFILE_FORMAT_VERSION`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from keelwatch.monitoring.drift.columns import (
    COLUMN_KINDS,
    ColumnData,
    ColumnKind,
    DriftInputError,
    as_columns,
    category_labels,
    infer_column_kind,
    numeric_values,
)
from keelwatch.monitoring.drift.ks import SortedSample
from keelwatch.monitoring.drift.report import COLUMN_ROLES, ColumnRole
from keelwatch.monitoring.drift.sketch import DEFAULT_SKETCH_K, QuantileSketch
from keelwatch.monitoring.drift.statistics import histogram_counts_sorted

if TYPE_CHECKING:
    import pandas as pd

PROFILE_FORMAT_VERSION = 1
DEFAULT_BINS = 10
DEFAULT_MAX_SORTED_VALUES = 1_000_000


@dataclass(slots=True)
class NumericSummary:
    """Finite values of a numeric column (NaN and ±inf are counted on the column instead)."""

    count: int
    mean: float
    m2: float
    minimum: float
    maximum: float
    bin_edges: NDArray[np.float64]
    bin_counts: NDArray[np.int64]
    support: SortedSample
    sample_priorities: NDArray[np.float64] | None
    sketch: QuantileSketch

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    @property
    def is_sample(self) -> bool:
        """True when ``support`` is a random sample rather than every value."""
        return self.sample_priorities is not None


@dataclass(slots=True)
class ColumnProfile:
    """One column's summary. ``numeric`` is set for numeric columns, ``categories`` otherwise.

    ``role`` says what the column is to the model: an input ``feature``, a ``prediction``
    (model output) or the ``target`` (ground truth); the engine reports each role apart.
    """

    name: str
    kind: ColumnKind
    rows: int
    missing: int
    infinite: int
    numeric: NumericSummary | None = None
    categories: dict[str, int] | None = None
    role: ColumnRole = "feature"

    @property
    def valid(self) -> int:
        """Rows that are neither missing nor infinite."""
        return self.rows - self.missing - self.infinite


@dataclass(slots=True)
class ReferenceProfile:
    """Per-column summaries of a data set, keyed by column name in the data's order."""

    columns: dict[str, ColumnProfile]
    rows: int
    metadata: dict[str, str] = field(default_factory=dict)
    format_version: int = PROFILE_FORMAT_VERSION


def _binary_label(value: float) -> str:
    return format(value, ".17g")


def _quantile_edges(sorted_values: NDArray[np.float64], n_bins: int) -> NDArray[np.float64]:
    if sorted_values.size == 0 or n_bins < 2:
        return np.empty(0, dtype=np.float64)
    qs = np.arange(1, n_bins, dtype=np.float64) / n_bins
    return np.unique(np.quantile(sorted_values, qs))


def _run_lengths(
    sorted_values: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    if sorted_values.size == 0:
        return sorted_values, np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.concatenate((starts, [sorted_values.size]))).astype(np.int64)
    return sorted_values[starts], counts


def _bottom_k_from_multiset(
    values: NDArray[np.float64], counts: NDArray[np.int64], k: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The ``k`` items with the smallest of ``N`` i.i.d. U(0,1) priorities, without drawing N.

    The chosen items are a uniform k-subset (multivariate hypergeometric over the counts); their
    priorities are the k smallest order statistics of N uniforms, ``S_i / (S_k + G)`` with
    ``S`` cumulative Exp(1) sums and ``G ~ Gamma(N + 1 - k)``, in random order.
    """
    total = int(counts.sum())
    k = min(k, total)
    chosen = rng.multivariate_hypergeometric(counts, k)
    items = np.repeat(values, chosen)
    sums = np.cumsum(rng.exponential(size=k))
    priorities = sums / (sums[-1] + rng.gamma(total + 1 - k)) if k else sums
    return items, rng.permutation(priorities)


def _support_from_sorted(
    sorted_values: NDArray[np.float64], cap: int, rng: np.random.Generator
) -> tuple[SortedSample, NDArray[np.float64] | None]:
    uniq, counts = _run_lengths(sorted_values)
    if uniq.size <= cap:
        exact_counts = None if uniq.size == sorted_values.size else counts
        return SortedSample(uniq, exact_counts), None
    items, priorities = _bottom_k_from_multiset(uniq, counts, cap, rng)
    order = np.argsort(items, kind="mergesort")
    return SortedSample(items[order]), priorities[order]


def _numeric_summary(
    finite: NDArray[np.float64],
    edges: NDArray[np.float64] | None,
    n_bins: int,
    cap: int,
    sketch_k: int,
    rng: np.random.Generator,
) -> NumericSummary:
    values = np.sort(finite)
    count = int(values.size)
    mean = float(values.mean()) if count else 0.0
    m2 = float(np.sum((values - mean) ** 2)) if count else 0.0
    bin_edges = _quantile_edges(values, n_bins) if edges is None else edges
    support, priorities = _support_from_sorted(values, cap, rng)
    return NumericSummary(
        count=count,
        mean=mean,
        m2=m2,
        minimum=float(values[0]) if count else math.nan,
        maximum=float(values[-1]) if count else math.nan,
        bin_edges=bin_edges,
        bin_counts=histogram_counts_sorted(values, bin_edges),
        support=support,
        sample_priorities=priorities,
        sketch=QuantileSketch.from_values(values, sketch_k),
    )


def profile_column(
    series: ColumnData,
    *,
    name: str | None = None,
    role: ColumnRole = "feature",
    kind: ColumnKind | None = None,
    bin_edges: NDArray[np.float64] | None = None,
    n_bins: int = DEFAULT_BINS,
    max_sorted_values: int = DEFAULT_MAX_SORTED_VALUES,
    sketch_k: int = DEFAULT_SKETCH_K,
    rng: np.random.Generator | None = None,
) -> ColumnProfile:
    """Profile one column; ``kind`` and ``bin_edges`` default to inference from the data.

    ``name`` defaults to the Series' name (required for a numpy array).
    """
    if name is None:
        if isinstance(series, np.ndarray):
            raise DriftInputError("profiling a numpy array needs name=")
        name = str(series.name)
    if role not in COLUMN_ROLES:
        raise DriftInputError(f"unknown column role {role!r}; use one of {COLUMN_ROLES}")
    rng = rng if rng is not None else np.random.default_rng(0)
    kind = kind if kind is not None else infer_column_kind(series, name)
    rows = int(series.shape[0])
    if kind == "categorical":
        labels, missing = category_labels(series)
        uniq, counts = np.unique(labels.astype(str), return_counts=True)
        categories = {str(u): int(c) for u, c in zip(uniq, counts, strict=True)}
        return ColumnProfile(name, kind, rows, missing, 0, categories=categories, role=role)
    values = numeric_values(series)
    nan_mask = np.isnan(values)
    inf_mask = np.isinf(values)
    finite = values[~(nan_mask | inf_mask)]
    missing, infinite = int(nan_mask.sum()), int(inf_mask.sum())
    if kind == "binary":
        uniq, counts = np.unique(finite, return_counts=True)
        categories = {_binary_label(float(u)): int(c) for u, c in zip(uniq, counts, strict=True)}
        return ColumnProfile(name, kind, rows, missing, infinite, categories=categories, role=role)
    summary = _numeric_summary(finite, bin_edges, n_bins, max_sorted_values, sketch_k, rng)
    return ColumnProfile(name, kind, rows, missing, infinite, numeric=summary, role=role)


def build_profile(
    frame: pd.DataFrame | Mapping[str, NDArray[Any]],
    *,
    like: ReferenceProfile | None = None,
    kinds: Mapping[str, ColumnKind] | None = None,
    roles: Mapping[str, ColumnRole] | None = None,
    n_bins: int = DEFAULT_BINS,
    max_sorted_values: int = DEFAULT_MAX_SORTED_VALUES,
    sketch_k: int = DEFAULT_SKETCH_K,
    seed: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> ReferenceProfile:
    """Profile every column of ``frame`` (a data frame or a mapping of name to 1-D array).

    ``like`` reuses another profile's column kinds, roles and bin edges (do this for partitions
    you will merge, and for windows you compare histogram-wise); ``kinds`` overrides inference
    per column; ``roles`` marks ``prediction`` and ``target`` columns (the rest are features).
    Raises :class:`~keelwatch.monitoring.drift.columns.MixedTypeColumnError` for object
    columns that mix types.
    """
    if n_bins < 2:
        raise DriftInputError("n_bins must be at least 2")
    if max_sorted_values < 1:
        raise DriftInputError("max_sorted_values must be at least 1")
    if isinstance(frame, Mapping):
        frame, rows = as_columns(frame)
        raw_names: list[Any] = list(frame)
    else:
        rows, raw_names = int(frame.shape[0]), list(frame.columns)
    unknown_roles = set(roles or {}) - {str(n) for n in raw_names}
    if unknown_roles:
        raise DriftInputError(f"role given for unknown column(s): {sorted(unknown_roles)}")
    rng = np.random.default_rng(seed)
    columns: dict[str, ColumnProfile] = {}
    for raw_name in raw_names:
        name = str(raw_name)
        if name in columns:
            raise DriftInputError(f"duplicate column name {name!r}")
        template = like.columns.get(name) if like is not None else None
        kind = (kinds or {}).get(name) or (template.kind if template else None)
        role = (roles or {}).get(name) or (template.role if template else "feature")
        edges = template.numeric.bin_edges if template and template.numeric else None
        columns[name] = profile_column(
            frame[raw_name],
            name=name,
            role=role,
            kind=kind,
            bin_edges=edges,
            n_bins=n_bins,
            max_sorted_values=max_sorted_values,
            sketch_k=sketch_k,
            rng=rng,
        )
    return ReferenceProfile(columns, rows, dict(metadata or {}))


def _merge_support(
    a: NumericSummary, b: NumericSummary, cap: int, rng: np.random.Generator
) -> tuple[SortedSample, NDArray[np.float64] | None]:
    if not a.is_sample and not b.is_sample:
        values = np.concatenate((a.support.values, b.support.values))
        counts = np.concatenate(
            [
                s.counts if s.counts is not None else np.ones(s.values.size, dtype=np.int64)
                for s in (a.support, b.support)
            ]
        )
        order = np.argsort(values, kind="mergesort")
        values, counts = values[order], counts[order]
        uniq, first = np.unique(values, return_index=True)
        summed = np.add.reduceat(counts, first) if values.size else counts
        if uniq.size <= cap:
            exact = None if bool(np.all(summed == 1)) else summed.astype(np.int64)
            return SortedSample(uniq, exact), None
        items, priorities = _bottom_k_from_multiset(uniq, summed.astype(np.int64), cap, rng)
    else:
        parts: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
        for s in (a, b):
            if s.sample_priorities is not None:
                parts.append((s.support.values, s.sample_priorities))
            elif s.count:
                uniq, counts = _run_lengths(s.support.expanded())
                parts.append(_bottom_k_from_multiset(uniq, counts, cap, rng))
        items = np.concatenate([p[0] for p in parts])
        priorities = np.concatenate([p[1] for p in parts])
        keep = np.argsort(priorities, kind="mergesort")[:cap]
        items, priorities = items[keep], priorities[keep]
    order = np.argsort(items, kind="mergesort")
    return SortedSample(items[order]), priorities[order]


def _merge_numeric(
    a: NumericSummary, b: NumericSummary, cap: int, rng: np.random.Generator
) -> NumericSummary:
    if not np.array_equal(a.bin_edges, b.bin_edges):
        raise DriftInputError(
            "cannot merge histograms with different bin edges; build partitions with like="
        )
    count = a.count + b.count
    delta = b.mean - a.mean
    # Chan et al.'s pairwise update: exact in exact arithmetic, stable in floating point.
    mean = a.mean + delta * b.count / count if count else 0.0
    m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / count if count else 0.0
    support, priorities = _merge_support(a, b, cap, rng)
    return NumericSummary(
        count=count,
        mean=mean,
        m2=m2,
        minimum=float(np.fmin(a.minimum, b.minimum)),
        maximum=float(np.fmax(a.maximum, b.maximum)),
        bin_edges=a.bin_edges,
        bin_counts=a.bin_counts + b.bin_counts,
        support=support,
        sample_priorities=priorities,
        sketch=a.sketch.merge(b.sketch),
    )


def merge_profiles(
    a: ReferenceProfile,
    b: ReferenceProfile,
    *,
    max_sorted_values: int = DEFAULT_MAX_SORTED_VALUES,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile of the union of the rows ``a`` and ``b`` summarise (same columns and kinds)."""
    if list(a.columns) != list(b.columns):
        raise DriftInputError(
            f"cannot merge profiles with different columns: {sorted(a.columns)} vs "
            f"{sorted(b.columns)}"
        )
    rng = np.random.default_rng(seed)
    merged: dict[str, ColumnProfile] = {}
    for name, ca in a.columns.items():
        cb = b.columns[name]
        if ca.kind != cb.kind:
            raise DriftInputError(
                f"column {name!r} is {ca.kind} in one profile, {cb.kind} in other"
            )
        if ca.role != cb.role:
            raise DriftInputError(
                f"column {name!r} is a {ca.role} in one profile, a {cb.role} in the other"
            )
        out = replace(
            ca,
            rows=ca.rows + cb.rows,
            missing=ca.missing + cb.missing,
            infinite=ca.infinite + cb.infinite,
        )
        if ca.numeric is not None and cb.numeric is not None:
            out.numeric = _merge_numeric(ca.numeric, cb.numeric, max_sorted_values, rng)
        if ca.categories is not None and cb.categories is not None:
            cats = dict(ca.categories)
            for label, c in cb.categories.items():
                cats[label] = cats.get(label, 0) + c
            out.categories = dict(sorted(cats.items()))
        merged[name] = out
    return ReferenceProfile(merged, a.rows + b.rows, {**a.metadata, **b.metadata})


def _column_meta(col: ColumnProfile) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": col.name,
        "kind": col.kind,
        "role": col.role,
        "rows": col.rows,
        "missing": col.missing,
        "infinite": col.infinite,
        "categories": col.categories,
    }
    if col.numeric is not None:
        s = col.numeric
        meta["numeric"] = {
            "count": s.count,
            "mean": s.mean,
            "m2": s.m2,
            "minimum": s.minimum,
            "maximum": s.maximum,
            "sketch_k": s.sketch.k,
            "sketch_count": s.sketch.count,
            "sketch_rank_error_bound": s.sketch.rank_error_bound,
            "sketch_parities": s.sketch.parities,
        }
    return meta


def save_profile(profile: ReferenceProfile, path: str | Path) -> Path:
    """Write ``profile`` to one ``.npz`` file (uncompressed: sorted floats barely compress)."""
    arrays: dict[str, NDArray[Any]] = {}
    columns_meta = []
    for i, col in enumerate(profile.columns.values()):
        columns_meta.append(_column_meta(col))
        if col.numeric is not None:
            s = col.numeric
            arrays[f"c{i}.edges"] = s.bin_edges
            arrays[f"c{i}.hist"] = s.bin_counts
            arrays[f"c{i}.values"] = s.support.values
            if s.support.counts is not None:
                arrays[f"c{i}.counts"] = s.support.counts
            if s.sample_priorities is not None:
                arrays[f"c{i}.priorities"] = s.sample_priorities
            for h, level in enumerate(s.sketch.levels):
                arrays[f"c{i}.sketch{h}"] = level
    meta = {
        "format": "keelwatch-drift-profile",
        "format_version": profile.format_version,
        "rows": profile.rows,
        "metadata": profile.metadata,
        "columns": columns_meta,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    target = Path(path)
    with target.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)
    return target


def load_profile(path: str | Path) -> ReferenceProfile:
    """Read a profile written by :func:`save_profile`; rejects unknown formats and versions."""
    try:
        npz = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DriftInputError(f"{path}: not a readable profile file ({exc})") from exc
    with npz:
        if "meta" not in npz.files:
            raise DriftInputError(f"{path}: not a Keelwatch drift profile (no meta entry)")
        meta = json.loads(npz["meta"].tobytes().decode())
        if meta.get("format") != "keelwatch-drift-profile":
            raise DriftInputError(f"{path}: not a Keelwatch drift profile")
        version = meta.get("format_version")
        if version != PROFILE_FORMAT_VERSION:
            raise DriftInputError(
                f"{path}: profile format version {version} is not supported "
                f"(this Keelwatch reads version {PROFILE_FORMAT_VERSION}); rebuild the profile"
            )
        columns: dict[str, ColumnProfile] = {}
        for i, cm in enumerate(meta["columns"]):
            if cm["kind"] not in COLUMN_KINDS:
                raise DriftInputError(f"{path}: unknown column kind {cm['kind']!r}")
            # Profiles written before roles existed hold features only.
            role = cm.get("role", "feature")
            if role not in COLUMN_ROLES:
                raise DriftInputError(f"{path}: unknown column role {role!r}")
            col = ColumnProfile(
                cm["name"], cm["kind"], cm["rows"], cm["missing"], cm["infinite"],
                categories=cm["categories"], role=role,
            )  # fmt: skip
            nm = cm.get("numeric")
            if nm is not None:
                levels = []
                h = 0
                while f"c{i}.sketch{h}" in npz.files:
                    levels.append(npz[f"c{i}.sketch{h}"])
                    h += 1
                sketch = QuantileSketch(
                    k=nm["sketch_k"],
                    levels=levels,
                    parities=list(nm["sketch_parities"]),
                    count=nm["sketch_count"],
                    rank_error_bound=nm["sketch_rank_error_bound"],
                )
                counts = npz[f"c{i}.counts"] if f"c{i}.counts" in npz.files else None
                priorities = npz[f"c{i}.priorities"] if f"c{i}.priorities" in npz.files else None
                col.numeric = NumericSummary(
                    count=nm["count"],
                    mean=nm["mean"],
                    m2=nm["m2"],
                    minimum=nm["minimum"],
                    maximum=nm["maximum"],
                    bin_edges=npz[f"c{i}.edges"],
                    bin_counts=npz[f"c{i}.hist"],
                    support=SortedSample(npz[f"c{i}.values"], counts),
                    sample_priorities=priorities,
                    sketch=sketch,
                )
            columns[col.name] = col
    return ReferenceProfile(columns, meta["rows"], dict(meta["metadata"]), version)
