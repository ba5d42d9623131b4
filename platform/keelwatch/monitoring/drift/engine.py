"""The drift engine: reference profile + window → :class:`DriftReport`.

Automatic test choice (override per column with ``DriftConfig.column_stattests`` or for every
column with ``DriftConfig.stattest``):

===============  ===========  =====================================  ==================
column kind      default      also applicable                        effect size
===============  ===========  =====================================  ==================
numeric          ``ks``       psi, kl, kl_symmetric, js,             KS ``D``
                              wasserstein, chi2 (on histogram bins)
categorical      ``chi2``     psi, kl, kl_symmetric, js              Cramér's V
binary           ``z``        chi2, psi, kl, kl_symmetric, js        Cohen's h
===============  ===========  =====================================  ==================

Tests with a p-value (ks, chi2, z) are adjusted together with Benjamini-Hochberg; a column
drifts when ``q <= fdr_alpha`` **and** its effect size reaches the statistic's floor, so a
million-row window does not flag a trivial shift. Distances (psi, kl, js, wasserstein) have no
p-value and drift when they reach their floor. Columns with fewer than ``min_samples`` valid
values on either side get ``insufficient_data`` and never alarm. Missing-rate changes are
tested separately (two-proportion z-test plus an absolute floor) and do not feed the verdict.

``DriftConfig.extra_stattests`` adds statistics reported next to the deciding one (say PSI
and KL together): they are computed in the same pass over the window, sharing its histogram and
sort, and never change a verdict.

Column roles (set when the profile is built): ``feature`` columns decide ``dataset_drifted``;
``prediction`` columns (model outputs) and ``target`` columns (ground-truth labels) are tested
the same way but adjusted and reported on their own, as ``prediction_drifted`` and
``target_drifted``. A target or prediction column absent from a window (no labels yet, or a
dataset window of inputs only) is ``insufficient_data``, not a missing column; unlabelled rows
never count as missing-rate drift.

The window is a pandas DataFrame, a mapping of column name to 1-D numpy array (no pandas
import at all), or a profile built with ``like=`` the reference.

Numeric columns are processed in a thread pool: numpy's sort and binary search release the
GIL, so on ``k`` cores the engine runs close to ``k`` times faster than a column loop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from keelwatch.monitoring.drift import statistics as st
from keelwatch.monitoring.drift.columns import (
    ColumnData,
    ColumnKind,
    DriftInputError,
    as_columns,
    category_labels,
    numeric_values,
    storage_matches,
)
from keelwatch.monitoring.drift.ks import KsMethod, SortedSample, ks_two_sample
from keelwatch.monitoring.drift.profiles import ColumnProfile, ReferenceProfile, _binary_label
from keelwatch.monitoring.drift.report import ColumnDrift, DriftReport

if TYPE_CHECKING:
    import pandas as pd

STATTESTS: tuple[str, ...] = ("ks", "psi", "kl", "kl_symmetric", "js", "wasserstein", "chi2", "z")
PVALUE_STATTESTS = frozenset({"ks", "chi2", "z"})
AUTO_STATTEST: dict[ColumnKind, str] = {"numeric": "ks", "categorical": "chi2", "binary": "z"}
APPLICABLE_STATTESTS: dict[ColumnKind, frozenset[str]] = {
    "numeric": frozenset({"ks", "psi", "kl", "kl_symmetric", "js", "wasserstein", "chi2"}),
    "categorical": frozenset({"chi2", "psi", "kl", "kl_symmetric", "js"}),
    "binary": frozenset({"z", "chi2", "psi", "kl", "kl_symmetric", "js"}),
}
#: Minimum effect size for a column to count as drifted, per statistic (see module docstring).
DEFAULT_EFFECT_SIZE_FLOORS: dict[str, float] = {
    "ks": 0.05,
    "chi2": 0.1,
    "z": 0.1,
    "psi": 0.1,
    "kl": 0.1,
    "kl_symmetric": 0.2,
    "js": 0.1,
    "wasserstein": 0.1,
}


_ABSENT_ROLE_DETAIL = {
    "target": "no labels in this window yet",
    "prediction": "no model outputs in this window (a dataset window holds inputs only)",
}


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Knobs of :func:`compute_drift`; the defaults are the documented behaviour."""

    stattest: str | None = None
    column_stattests: Mapping[str, str] = field(default_factory=dict)
    ks_method: KsMethod = "auto"
    fdr_alpha: float = 0.05
    effect_size_floors: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_EFFECT_SIZE_FLOORS)
    )
    min_samples: int = 30
    missing_rate_floor: float = 0.05
    epsilon: float = st.DEFAULT_EPSILON
    dataset_drift_share: float = 0.0
    threads: int | None = None
    extra_stattests: tuple[str, ...] = ()
    column_effect_size_floors: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [self.stattest, *self.column_stattests.values(), *self.extra_stattests]
        for name in names:
            if name is not None and name not in STATTESTS:
                raise DriftInputError(
                    f"unknown statistic {name!r}; choose one of {', '.join(STATTESTS)}"
                )
        if self.ks_method not in ("auto", "exact", "asymp"):
            raise DriftInputError(f"unknown KS method {self.ks_method!r}")
        if not 0 < self.fdr_alpha < 1:
            raise DriftInputError("fdr_alpha must lie strictly between 0 and 1")
        if self.min_samples < 1:
            raise DriftInputError("min_samples must be at least 1")
        if not 0 <= self.dataset_drift_share <= 1:
            raise DriftInputError("dataset_drift_share must lie between 0 and 1")

        for column, floor in self.column_effect_size_floors.items():
            if not (math.isfinite(floor) and floor >= 0):
                raise DriftInputError(f"effect-size floor for {column!r} must be finite and >= 0")

    def floor(self, stattest: str, column: str | None = None) -> float:
        """Effect-size floor for ``stattest`` (a per-column floor wins for its column)."""
        if column is not None and column in self.column_effect_size_floors:
            return float(self.column_effect_size_floors[column])
        return float(
            self.effect_size_floors.get(stattest, DEFAULT_EFFECT_SIZE_FLOORS.get(stattest, 0.0))
        )


@dataclass(slots=True)
class _Window:
    """What the engine needs of one window column, from a data frame or a profile."""

    rows: int
    missing: int
    infinite: int = 0
    sorted_values: SortedSample | None = None
    histogram: NDArray[np.int64] | None = None
    categories: dict[str, int] | None = None
    is_sample: bool = False

    @property
    def valid(self) -> int:
        return self.rows - self.missing - self.infinite


def _window_from_series(series: ColumnData, ref: ColumnProfile, needs_sorted: bool) -> _Window:
    rows = int(series.shape[0])
    if ref.kind == "categorical":
        labels, missing = category_labels(series)
        uniq, counts = np.unique(labels.astype(str), return_counts=True)
        cats = {str(u): int(c) for u, c in zip(uniq, counts, strict=True)}
        return _Window(rows, missing, categories=cats)
    values = numeric_values(series)
    if ref.kind == "numeric" and needs_sorted:
        # Sort first (numpy puts NaN last, -inf first, +inf just before NaN): the finite values
        # are then a slice, found by three binary searches instead of mask passes and copies.
        assert ref.numeric is not None
        ordered = np.sort(values)
        first_nan = int(np.searchsorted(ordered, np.nan, side="left"))
        lo = int(np.searchsorted(ordered, -np.inf, side="right"))
        hi = int(np.searchsorted(ordered[:first_nan], np.inf, side="left"))
        finite_sorted = ordered[lo:hi]
        hist = st.histogram_counts_sorted(finite_sorted, ref.numeric.bin_edges)
        missing, infinite = rows - first_nan, lo + first_nan - hi
        return _Window(rows, missing, infinite, SortedSample(finite_sorted), hist)
    # A column of a 2-D block is a strided view: one contiguous copy makes each later pass
    # read 8 bytes per value instead of a cache line.
    values = np.ascontiguousarray(values)
    finite_mask = np.isfinite(values)
    if finite_mask.all():
        finite, missing, infinite = values, 0, 0
    else:
        missing = int(np.isnan(values).sum())
        infinite = rows - missing - int(finite_mask.sum())
        finite = values[finite_mask]
    if ref.kind == "binary":
        uniq, counts = np.unique(finite, return_counts=True)
        cats = {_binary_label(float(u)): int(c) for u, c in zip(uniq, counts, strict=True)}
        return _Window(rows, missing, infinite, categories=cats)
    assert ref.numeric is not None
    # Binned statistics only: skip the sort, the dominant cost of a numeric column.
    hist = st.histogram_counts(finite, ref.numeric.bin_edges)
    return _Window(rows, missing, infinite, None, hist)


def _window_from_profile(col: ColumnProfile, ref: ColumnProfile) -> _Window:
    if col.kind != ref.kind:
        raise DriftInputError(f"column {col.name!r}: {col.kind} in window, {ref.kind} in reference")
    if col.numeric is None:
        return _Window(col.rows, col.missing, col.infinite, categories=col.categories or {})
    assert ref.numeric is not None
    if not np.array_equal(col.numeric.bin_edges, ref.numeric.bin_edges):
        raise DriftInputError(
            f"column {col.name!r}: window profile has other bin edges; build it with like="
        )
    return _Window(
        col.rows,
        col.missing,
        col.infinite,
        col.numeric.support,
        col.numeric.bin_counts,
        is_sample=col.numeric.is_sample,
    )


def _aligned_counts(
    ref: dict[str, int], cur: dict[str, int]
) -> tuple[NDArray[np.int64], NDArray[np.int64], tuple[str, ...]]:
    labels = sorted(set(ref) | set(cur))
    r = np.array([ref.get(k, 0) for k in labels], dtype=np.int64)
    c = np.array([cur.get(k, 0) for k in labels], dtype=np.int64)
    unseen = tuple(k for k in labels if k not in ref and cur.get(k, 0) > 0)
    return r, c, unseen


def _run_statistic(
    name: str, ref: ColumnProfile, win: _Window, config: DriftConfig
) -> tuple[st.StatResult, str | None, tuple[str, ...], str | None]:
    """(result, ks method used, unseen categories, note)."""
    unseen: tuple[str, ...] = ()
    note = None
    if ref.numeric is not None:
        assert win.histogram is not None
        if name in ("ks", "wasserstein") and (ref.numeric.is_sample or win.is_sample):
            note = "computed on random samples of the data (a profile was capped)"
        if name == "ks":
            assert win.sorted_values is not None
            ks = ks_two_sample(ref.numeric.support, win.sorted_values.expanded(), config.ks_method)
            res = st.StatResult("ks", ks.statistic, ks.pvalue, ks.statistic)
            return res, ks.method, unseen, note
        if name == "wasserstein":
            assert win.sorted_values is not None
            res = st.wasserstein(ref.numeric.support, win.sorted_values.expanded(), ref.numeric.std)
            return res, None, unseen, note
        r_counts, c_counts = ref.numeric.bin_counts, win.histogram
    else:
        assert ref.categories is not None and win.categories is not None
        r_counts, c_counts, unseen = _aligned_counts(ref.categories, win.categories)
        if name == "z":
            if unseen or len(r_counts) != 2:
                name, note = "chi2", "window has values outside the reference's two; used chi2"
            else:
                res = st.two_proportion_z_test(
                    int(r_counts[1]), int(r_counts.sum()), int(c_counts[1]), int(c_counts.sum())
                )
                return res, None, unseen, note
    if name == "chi2":
        return st.chi2_homogeneity(r_counts, c_counts), None, unseen, note
    if name == "js":
        return st.jensen_shannon_distance(c_counts, r_counts), None, unseen, note
    functions = {
        "psi": st.population_stability_index,
        "kl": st.kl_divergence,
        "kl_symmetric": st.symmetric_kl_divergence,
    }
    return functions[name](c_counts, r_counts, config.epsilon), None, unseen, note


def _missing_rate(ref: ColumnProfile, win: _Window, config: DriftConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "missing_rate_reference": ref.missing / ref.rows if ref.rows else None,
        "missing_rate_current": win.missing / win.rows if win.rows else None,
        "infinite_current": win.infinite,
    }
    if ref.rows and win.rows:
        z = st.two_proportion_z_test(ref.missing, ref.rows, win.missing, win.rows)
        gap = abs(out["missing_rate_current"] - out["missing_rate_reference"])
        out["missing_rate_pvalue"] = z.pvalue
        out["missing_drifted"] = bool(
            z.pvalue is not None
            and z.pvalue <= config.fdr_alpha
            and gap >= config.missing_rate_floor
        )
    return out


def _check_column(
    ref: ColumnProfile, win: _Window | ColumnDrift, config: DriftConfig
) -> ColumnDrift:
    if isinstance(win, ColumnDrift):
        return win
    name = _stattest_for(ref, config)
    base: dict[str, Any] = {
        "column": ref.name,
        "kind": ref.kind,
        "role": ref.role,
        "n_reference": ref.valid,
        "n_current": win.valid,
        **_missing_rate(ref, win, config),
    }
    if ref.role == "target":
        # Unlabelled rows are the normal state of a recent window, not a data-quality change.
        base["missing_drifted"] = False
    if name not in APPLICABLE_STATTESTS[ref.kind]:
        return ColumnDrift(
            status="not_applicable",
            statistic=name,
            detail=f"{name} does not apply to {ref.kind} columns",
            **base,
        )
    if ref.valid < config.min_samples or win.valid < config.min_samples:
        return ColumnDrift(
            status="insufficient_data",
            statistic=name,
            detail=f"needs at least {config.min_samples} valid values on each side "
            f"(reference {ref.valid}, current {win.valid})",
            **base,
        )
    res, ks_method, unseen, note = _run_statistic(name, ref, win, config)
    extra: dict[str, dict[str, float | None]] = {}
    for other in config.extra_stattests:
        if other != name and other in APPLICABLE_STATTESTS[ref.kind]:
            more = _run_statistic(other, ref, win, config)[0]
            extra[more.statistic] = {
                "value": more.value,
                "pvalue": more.pvalue,
                "effect_size": more.effect_size,
            }
    return ColumnDrift(
        status="ok",
        statistic=res.statistic,
        value=res.value,
        pvalue=res.pvalue,
        effect_size=res.effect_size,
        effect_size_floor=config.floor(res.statistic, ref.name),
        unseen_categories=unseen,
        ks_method=ks_method,
        detail=note,
        extra=extra,
        **base,
    )


def _stattest_for(ref: ColumnProfile, config: DriftConfig) -> str:
    name = config.column_stattests.get(ref.name) or config.stattest
    return name or AUTO_STATTEST[ref.kind]


def _needs_sorted(ref: ColumnProfile, config: DriftConfig) -> bool:
    wanted = {_stattest_for(ref, config), *config.extra_stattests}
    return bool(wanted & {"ks", "wasserstein"})


def _prepare(
    ref: ColumnProfile,
    window: pd.DataFrame | Mapping[str, NDArray[Any]] | ReferenceProfile,
    config: DriftConfig,
) -> _Window | ColumnDrift:
    from keelwatch.monitoring.drift.columns import MixedTypeColumnError

    if isinstance(window, ReferenceProfile):
        return _window_from_profile(window.columns[ref.name], ref)
    column = window[ref.name]
    role = ref.role
    try:
        matches = storage_matches(ref.kind, column, ref.name)
    except MixedTypeColumnError as exc:
        return ColumnDrift(ref.name, ref.kind, "invalid_column", role=role, detail=str(exc))
    except DriftInputError as exc:
        return ColumnDrift(ref.name, ref.kind, "type_mismatch", role=role, detail=str(exc))
    if not matches:
        return ColumnDrift(
            ref.name,
            ref.kind,
            "type_mismatch",
            role=role,
            detail=f"reference column is {ref.kind}, window column has dtype {column.dtype}",
        )
    return _window_from_series(column, ref, _needs_sorted(ref, config))


def compute_drift(
    reference_profile: ReferenceProfile,
    window: pd.DataFrame | Mapping[str, NDArray[Any]] | ReferenceProfile,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Compare a window with a reference profile.

    ``window`` is a data frame, a mapping of column names to 1-D numpy arrays, or a profile
    built with ``like=reference_profile``.

    Pure: no I/O, no environment. Raises
    :class:`~keelwatch.monitoring.drift.columns.DriftInputError` only for unusable
    configuration or incompatible profiles; per-column problems are reported in the result.
    """
    config = config or DriftConfig()
    if isinstance(window, ReferenceProfile):
        window_names: Sequence[str] = list(window.columns)
        window_rows = window.rows
    elif isinstance(window, Mapping):
        # Lists and other sequences become arrays here, once, so every later step sees numpy.
        window, window_rows = as_columns(window)
        window_names = list(window)
    else:
        window_names, window_rows = [str(c) for c in window.columns], int(window.shape[0])
        if len(set(window_names)) != len(window_names):
            raise DriftInputError("window has duplicate column names")
    for label, overrides in (
        ("stattest override", config.column_stattests),
        ("effect-size floor", config.column_effect_size_floors),
    ):
        unknown = set(overrides) - set(reference_profile.columns)
        if unknown:
            raise DriftInputError(f"{label} for unknown column(s): {sorted(unknown)}")
    present = [c for c in reference_profile.columns.values() if c.name in set(window_names)]
    missing_columns = tuple(c for c in reference_profile.columns if c not in set(window_names))
    extra_columns = tuple(c for c in window_names if c not in reference_profile.columns)

    def work(ref: ColumnProfile) -> ColumnDrift:
        return _check_column(ref, _prepare(ref, window, config), config)

    threads = config.threads or min(os.cpu_count() or 1, max(len(present), 1))
    if threads > 1 and len(present) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(work, present))
    else:
        results = [work(ref) for ref in present]
    by_name = {r.column: r for r in results}
    for name in missing_columns:
        ref = reference_profile.columns[name]
        if ref.role in _ABSENT_ROLE_DETAIL:
            # Labels arrive late and dataset windows hold inputs only: not testable, not broken.
            by_name[name] = ColumnDrift(
                name,
                ref.kind,
                "insufficient_data",
                role=ref.role,
                detail=_ABSENT_ROLE_DETAIL[ref.role],
            )
        else:
            by_name[name] = ColumnDrift(
                name, ref.kind, "missing_in_current", role=ref.role, detail="not in window"
            )
    ordered = [by_name[name] for name in reference_profile.columns]
    return _verdict(ordered, config, reference_profile.rows, window_rows, extra_columns)


def _adjust(columns: list[ColumnDrift], indices: list[int], config: DriftConfig) -> int:
    """BH-adjust one role group in place; returns how many of its columns drifted."""
    from dataclasses import replace

    with_p = [i for i in indices if columns[i].pvalue is not None]
    qvalues = st.benjamini_hochberg(np.array([columns[i].pvalue for i in with_p], dtype=float))
    q_by_index = dict(zip(with_p, qvalues.tolist(), strict=True))
    drifted = 0
    for i in indices:
        c = columns[i]
        q = q_by_index.get(i)
        effect_ok = c.effect_size is not None and c.effect_size >= (c.effect_size_floor or 0.0)
        significant = q is None or q <= config.fdr_alpha
        columns[i] = replace(c, qvalue=q, drifted=bool(effect_ok and significant))
        drifted += columns[i].drifted
    return drifted


def _verdict(
    columns: list[ColumnDrift],
    config: DriftConfig,
    reference_rows: int,
    window_rows: int,
    extra_columns: tuple[str, ...],
) -> DriftReport:
    tested_by_role: dict[str, list[int]] = {"feature": [], "prediction": [], "target": []}
    for i, c in enumerate(columns):
        if c.status == "ok":
            tested_by_role[c.role].append(i)
    drifted_by_role = {
        role: _adjust(columns, indices, config) for role, indices in tested_by_role.items()
    }
    has_role = {c.role for c in columns}
    n_tested = len(tested_by_role["feature"])
    n_drifted = drifted_by_role["feature"]
    needed = max(1, math.ceil(config.dataset_drift_share * n_tested))

    def role_verdict(role: str) -> bool | None:
        if role not in has_role or not tested_by_role[role]:
            return None
        return drifted_by_role[role] > 0

    any_tested = any(tested_by_role.values())
    report_status: Literal["ok", "insufficient_data"] = "ok" if any_tested else "insufficient_data"
    mismatches = tuple(c.column for c in columns if c.status in ("type_mismatch", "invalid_column"))
    return DriftReport(
        columns=tuple(columns),
        dataset_drifted=bool(n_tested and n_drifted >= needed),
        status=report_status,
        n_tested=n_tested,
        n_drifted=n_drifted,
        fdr_alpha=config.fdr_alpha,
        n_reference_rows=reference_rows,
        n_current_rows=window_rows,
        missing_columns=tuple(c.column for c in columns if c.status == "missing_in_current"),
        extra_columns=extra_columns,
        type_mismatches=mismatches,
        prediction_drifted=role_verdict("prediction"),
        target_drifted=role_verdict("target"),
    )
