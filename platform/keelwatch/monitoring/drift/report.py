"""Result types of the drift engine, with JSON-ready ``to_dict()``.

Kept apart from ``engine.py`` so that consumers that only read reports (API schemas, alert
rules, the CLI's table) need no numpy-heavy imports.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ColumnRole = Literal["feature", "prediction", "target"]
COLUMN_ROLES: tuple[ColumnRole, ...] = ("feature", "prediction", "target")

ColumnStatus = Literal[
    "ok",  # tested
    "insufficient_data",  # too few valid values on either side: never a false alarm
    "missing_in_current",  # reference column absent from the window
    "type_mismatch",  # window column cannot be compared with the reference column's kind
    "invalid_column",  # window column rejected (e.g. mixed value types)
    "not_applicable",  # the requested statistic does not apply to this column's kind
]


#: What each column status says to a person, in every view (CLI tables, HTML report, docs).
STATUS_WORDS: dict[str, str] = {
    "ok": "tested",
    "insufficient_data": "insufficient data",
    "missing_in_current": "missing in current",
    "type_mismatch": "type mismatch",
    "invalid_column": "invalid column",
    "not_applicable": "not applicable",
}
#: The verdict word of a role, a column or a whole check.
DRIFT_WORD = "DRIFT"
NO_DRIFT_WORD = "NO DRIFT"
INSUFFICIENT_WORD = "INSUFFICIENT DATA"


def column_verdict(status: str, drifted: bool | None) -> str:
    """``drift``, ``no drift`` or the untested column's status in words (``insufficient data``)."""
    if status != "ok":
        return STATUS_WORDS.get(status, status.replace("_", " "))
    return "drift" if drifted else "no drift"


def role_verdict(drifted: bool | None) -> str:
    """``DRIFT``, ``NO DRIFT`` or ``INSUFFICIENT DATA`` (``None``: nothing could be tested)."""
    if drifted is None:
        return INSUFFICIENT_WORD
    return DRIFT_WORD if drifted else NO_DRIFT_WORD


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """Drift verdict for one column.

    ``drifted`` needs both ``qvalue <= fdr_alpha`` (for tests with a p-value) and
    ``effect_size >= effect_size_floor``; distances without a p-value need only the floor.
    Missing-rate drift is reported separately (``missing_drifted``) and does not feed the
    dataset verdict. ``extra`` holds the statistics asked for with
    ``DriftConfig.extra_stattests`` (``{name: {"value", "pvalue", "effect_size"}}``); they are
    informative only.
    """

    column: str
    kind: str
    status: ColumnStatus
    statistic: str | None = None
    value: float | None = None
    pvalue: float | None = None
    qvalue: float | None = None
    effect_size: float | None = None
    effect_size_floor: float | None = None
    drifted: bool = False
    n_reference: int = 0
    n_current: int = 0
    missing_rate_reference: float | None = None
    missing_rate_current: float | None = None
    missing_rate_pvalue: float | None = None
    missing_drifted: bool = False
    infinite_current: int = 0
    unseen_categories: tuple[str, ...] = ()
    ks_method: str | None = None
    detail: str | None = None
    role: ColumnRole = "feature"
    extra: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; non-finite floats become ``None``."""
        out: dict[str, Any] = _json_safe(asdict(self))
        return out


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Dataset-level verdict plus one :class:`ColumnDrift` per reference column.

    ``dataset_drifted`` is true when at least ``max(1, ceil(dataset_drift_share · n_tested))``
    columns drifted. With the default share of 0 that is "any column after Benjamini-Hochberg",
    which is Simes' test of the global null, so a drift-free window is flagged with probability
    at most ``fdr_alpha`` (for independent or positively dependent columns).

    Only ``feature`` columns count towards ``dataset_drifted``, ``n_tested`` and ``n_drifted``.
    ``prediction_drifted`` and ``target_drifted`` are the verdicts of the model-output and
    label columns (each role adjusted on its own); ``None`` when the profile has no such
    column or none of them could be tested (e.g. no labels yet).
    """

    columns: tuple[ColumnDrift, ...]
    dataset_drifted: bool
    status: Literal["ok", "insufficient_data"]
    n_tested: int
    n_drifted: int
    fdr_alpha: float
    n_reference_rows: int
    n_current_rows: int
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    type_mismatches: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    prediction_drifted: bool | None = None
    target_drifted: bool | None = None

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """Names of the columns flagged as drifted."""
        return tuple(c.column for c in self.columns if c.drifted)

    def column(self, name: str) -> ColumnDrift:
        """The result for column ``name`` (``KeyError`` if the reference has no such column)."""
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; non-finite floats become ``None``."""
        return {
            "dataset_drifted": self.dataset_drifted,
            "status": self.status,
            "n_tested": self.n_tested,
            "n_drifted": self.n_drifted,
            "share_drifted": (self.n_drifted / self.n_tested) if self.n_tested else 0.0,
            "drifted_columns": list(self.drifted_columns),
            "fdr_alpha": self.fdr_alpha,
            "n_reference_rows": self.n_reference_rows,
            "n_current_rows": self.n_current_rows,
            "missing_columns": list(self.missing_columns),
            "extra_columns": list(self.extra_columns),
            "type_mismatches": list(self.type_mismatches),
            "prediction_drifted": self.prediction_drifted,
            "target_drifted": self.target_drifted,
            "notes": list(self.notes),
            "columns": [c.to_dict() for c in self.columns],
        }
