"""The one place where a result becomes signals.

Every kind of result a monitor produces has one converter registered here, keyed by the
result's type: drift results today; bias audits, moderation rates and evaluations register
theirs with :func:`register_converter` when they land, and the rule engine never changes,
because it only ever sees :class:`~keelwatch.entities.signals.Signal` values.

Pure: entities in, signals out; no I/O. Storage writes what :func:`signals_for` returns in the
transaction that stores the result (see ``keelwatch.monitoring.service.checks``).

Drift signals (``source`` = ``drift_result:<id>``, ``observed_at`` = the check's finish time;
every signal carries ``model``, ``version``, ``monitor`` and, when the monitor follows an alias,
``alias``):

Per check: ``drift.check.window_rows`` (rows in the tested window) and ``drift.check.error``
(1 when the check failed, else 0). Per verdict (0/1): ``drift.dataset.drifted`` (feature
columns), ``drift.prediction.drifted``, ``drift.target.drifted``, and
``drift.dataset.share_drifted`` (share of tested feature columns that drifted). Per tested
column, with the labels ``column``, ``role`` (feature, prediction, target) and ``statistic``
(psi, ks, chisquare, ...): ``drift.column.statistic`` (the test's value),
``drift.column.p_value``, ``drift.column.q_value`` (Benjamini-Hochberg),
``drift.column.effect_size``, ``drift.column.drifted`` (0/1) and ``drift.column.missing_rate``
(share of missing values in the window).

A verdict that could not be reached (too few rows, no labels yet) emits no signal rather than
a 0, so "not drifted" is never claimed for a column that was not tested.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from keelwatch.entities.monitors import DriftResult, DriftStatus
from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError

ResultT = TypeVar("ResultT")
#: A converter: one result in, its signals out (without the caller's extra labels).
Converter = Callable[[Any], Sequence[Signal]]

_CONVERTERS: dict[type, Converter] = {}

#: Column statuses whose statistics were computed (see ``drift.report.ColumnStatus``).
_TESTED = "ok"


#: Signal names drift results emit (see the module docstring).
DRIFT_SIGNAL_NAMES = frozenset(
    {
        "drift.check.window_rows",
        "drift.check.error",
        "drift.dataset.drifted",
        "drift.dataset.share_drifted",
        "drift.prediction.drifted",
        "drift.target.drifted",
        "drift.column.statistic",
        "drift.column.p_value",
        "drift.column.q_value",
        "drift.column.effect_size",
        "drift.column.drifted",
        "drift.column.missing_rate",
    }
)
#: Names other producers emit: EWMA/CUSUM alarms (``keelwatch.monitoring.anomaly``), inbound
#: Alertmanager alerts (``keelwatch.alerting.inbound``) and governed registry aliases changed
#: outside Keelwatch (``keelwatch.registry.governance``). Spelled out here because this module
#: is pure and imports none of them.
_OTHER_SIGNAL_NAMES = frozenset(
    {
        "anomaly.ewma",
        "anomaly.cusum",
        "inbound.alertmanager.firing",
        "registry.alias.external_change",
    }
)
_EXTRA_SIGNAL_NAMES: set[str] = set()


def register_signal_names(names: Iterable[str]) -> None:
    """Add the names a new producer emits (operational series, bias audits, ...) to the
    catalogue rules are checked against."""
    _EXTRA_SIGNAL_NAMES.update(names)


def known_signal_names() -> frozenset[str]:
    """The signal catalogue: every name a rule may watch (``rules.rule_from_dict``'s
    ``known_signals``)."""
    return DRIFT_SIGNAL_NAMES | _OTHER_SIGNAL_NAMES | frozenset(_EXTRA_SIGNAL_NAMES)


def register_converter(
    result_type: type[ResultT], converter: Callable[[ResultT], Sequence[Signal]]
) -> None:
    """Make ``converter`` the way results of ``result_type`` become signals.

    Registering a second converter for the same type is a programming error and raises
    ``ValueError``: one result kind has one meaning.
    """
    if result_type in _CONVERTERS and _CONVERTERS[result_type] is not converter:
        raise ValueError(f"a signal converter for {result_type.__name__} is already registered")
    _CONVERTERS[result_type] = converter


def registered_types() -> tuple[type, ...]:
    """The result types that have a converter."""
    return tuple(_CONVERTERS)


def signals_for(result: object, *, labels: Mapping[str, str] | None = None) -> list[Signal]:
    """The signals of ``result``, each with ``labels`` added (the converter's labels win).

    ``labels`` carries what the result itself does not know, e.g. the alias a monitor follows.
    Raises :class:`~keelwatch.errors.InvalidInputError` for a type without a converter.
    """
    converter = _CONVERTERS.get(type(result))
    if converter is None:
        raise InvalidInputError(f"no signal converter for results of type {type(result).__name__}")
    extra = dict(labels or {})
    signals = converter(result)
    if not extra:
        return list(signals)
    return [
        Signal(
            name=s.name,
            value=s.value,
            labels={**extra, **s.labels},
            observed_at=s.observed_at,
            source=s.source,
        )
        for s in signals
    ]


def drift_result_signals(result: DriftResult) -> list[Signal]:
    """The signals of one drift check (see the module docstring for the list)."""
    base = {
        "model": result.model_name,
        "version": result.model_version,
        "monitor": str(result.report.get("monitor", "")),
    }
    emit = _Emitter(result, base)
    emit("drift.check.window_rows", result.window_rows)
    emit("drift.check.error", result.status is DriftStatus.ERROR)
    if result.status in (DriftStatus.ERROR, DriftStatus.INSUFFICIENT_DATA):
        return emit.signals
    emit("drift.dataset.drifted", result.dataset_drift)
    emit("drift.dataset.share_drifted", result.share_drifted)
    emit("drift.prediction.drifted", result.report.get("prediction_drifted"))
    emit("drift.target.drifted", result.report.get("target_drifted"))
    for name in sorted(result.columns):
        column = result.columns[name]
        if not isinstance(column, Mapping) or column.get("status") != _TESTED:
            continue
        labels = {
            "column": str(name),
            "role": str(column.get("role") or "feature"),
            "statistic": str(column.get("statistic") or ""),
        }
        emit("drift.column.statistic", column.get("value"), labels)
        emit("drift.column.p_value", column.get("pvalue"), labels)
        emit("drift.column.q_value", column.get("qvalue"), labels)
        emit("drift.column.effect_size", column.get("effect_size"), labels)
        emit("drift.column.drifted", column.get("drifted"), labels)
        emit("drift.column.missing_rate", column.get("missing_rate_current"), labels)
    return emit.signals


class _Emitter:
    """Collects signals of one result, skipping values that are absent or not finite."""

    def __init__(self, result: DriftResult, base: Mapping[str, str]) -> None:
        self.signals: list[Signal] = []
        self._base = dict(base)
        self._at = result.finished_at
        self._source = f"drift_result:{result.id}"

    def __call__(self, name: str, value: object, labels: Mapping[str, str] | None = None) -> None:
        if isinstance(value, bool):
            number = 1.0 if value else 0.0
        elif isinstance(value, int | float) and math.isfinite(value):
            number = float(value)
        else:  # None (not computed) or NaN/inf: no observation, never a made-up number
            return
        self.signals.append(
            Signal(
                name=name,
                value=number,
                # An empty value says nothing (Alertmanager treats it as an absent label).
                labels={k: v for k, v in {**self._base, **(labels or {})}.items() if v},
                observed_at=self._at,
                source=self._source,
            )
        )


register_converter(DriftResult, drift_result_signals)
