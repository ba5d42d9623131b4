"""Realized performance: a model version's logged predictions joined with the labels that have
arrived since, scored with the same metrics as an offline evaluation.

Pure: the service (``monitoring.service.realized``) reads one window of the prediction log and
its labels and hands them here as plain values; this module decides the task, the coverage and
the verdict, computes the metrics (``classification_metrics`` / ``regression_metrics``) and
turns a result into signals.

Verdicts: ``ok`` (metrics computed) or ``insufficient_data`` (label coverage below
``min_coverage`` or fewer than ``min_rows`` labelled rows): then no metric is computed at all,
so a rule on ``realized.f1_macro`` never sees a value measured on a handful of rows, and only
``realized.label_coverage`` and ``realized.labelled_rows`` are emitted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np

RealizedTask = Literal["classification", "regression"]
REALIZED_TASKS: tuple[RealizedTask, ...] = ("classification", "regression")
Verdict = Literal["ok", "insufficient_data"]

#: The output column holding the model's prediction (``inference.execution.prediction_columns``
#: names a 1-d output so); a log whose rows have one output column uses that column instead.
PREDICTION_COLUMN = "prediction"
#: Output columns ``proba_<class>`` carry predicted probabilities, one per class.
PROBA_PREFIX = "proba_"
#: All-integral numeric labels with at most this many distinct values are classes; more (or
#: any fractional value) make the task a regression. ``task`` overrides the guess.
MAX_INTEGER_CLASSES = 50

SIGNAL_PREFIX = "realized."
LABEL_COVERAGE = "realized.label_coverage"
LABELLED_ROWS = "realized.labelled_rows"
#: Every metric name the two suites report (``ClassificationMetrics.as_dict`` and
#: ``RegressionMetrics.as_dict``), as ``realized.<metric>`` signals.
METRIC_NAMES = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
    "ece",
    "mae",
    "rmse",
    "r2",
)
SIGNAL_NAMES = frozenset(
    {LABEL_COVERAGE, LABELLED_ROWS, *(SIGNAL_PREFIX + name for name in METRIC_NAMES)}
)

_WINDOW = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str | int) -> int:
    """Seconds of a window written ``24h``, ``30m``, ``7d``, ``90s`` or a plain number of
    seconds; InvalidInputError for anything else or a zero window."""
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        match = _WINDOW.match(str(text).lower())
        if match is None:
            raise InvalidInputError(
                f"window {str(text)[:32]!r}: use a number with a unit s, m, h or d, e.g. '24h'"
            )
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise InvalidInputError("window must be longer than 0 seconds")
    return seconds


def window_label(window_s: int) -> str:
    """The ``window`` signal label: whole hours as ``24h``, else minutes ``30m``, else ``90s``.

    One spelling per length (never ``1d`` and ``24h`` for the same window), so a rule's
    ``window="24h"`` matcher always finds the series."""
    if window_s % 3600 == 0:
        return f"{window_s // 3600}h"
    if window_s % 60 == 0:
        return f"{window_s // 60}m"
    return f"{window_s}s"


@dataclass(frozen=True)
class LabelledOutput:
    """One logged prediction that has a label: the row's outputs and the label."""

    outputs: Mapping[str, Any]
    label: Any


@dataclass(frozen=True)
class RealizedPerformance:
    """One model version over one window."""

    predictions: int
    labelled: int
    coverage: float
    """``labelled / predictions`` (0 when nothing was logged)."""
    verdict: Verdict
    task: RealizedTask | None
    """None when the verdict is ``insufficient_data`` and no task was asked for."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    """Why the data is insufficient (empty when the verdict is ``ok``)."""


def realized_performance(
    predictions: int,
    labelled: Sequence[LabelledOutput],
    *,
    task: RealizedTask | None = None,
    min_coverage: float,
    min_rows: int,
) -> RealizedPerformance:
    """Coverage, verdict and metrics of ``predictions`` logged rows of which ``labelled`` have
    a label.

    ``task`` forces classification or regression; None guesses it from the labels and
    predictions (:func:`infer_task`). Probabilities are used only when every labelled row has
    ``proba_<class>`` outputs for the same classes, covering every class seen.
    """
    if task is not None and task not in REALIZED_TASKS:
        raise InvalidInputError(f"task {task!r}: choose one of {', '.join(REALIZED_TASKS)}")
    if predictions < len(labelled):
        raise InvalidInputError(
            f"{len(labelled)} labelled rows but only {predictions} logged predictions"
        )
    count = len(labelled)
    coverage = count / predictions if predictions else 0.0
    if count < min_rows or coverage < min_coverage:
        reason = (
            f"{count} labelled rows of {predictions} predictions (coverage {coverage:.3f}); "
            f"a verdict needs at least {min_rows} rows and coverage {min_coverage:g}"
        )
        return RealizedPerformance(
            predictions, count, coverage, "insufficient_data", task, reason=reason
        )
    column = prediction_column(labelled)
    y_true = [row.label for row in labelled]
    y_pred = [row.outputs[column] for row in labelled]
    chosen = task or infer_task(y_true, y_pred)
    if chosen == "classification":
        metrics = _classification(y_true, y_pred, labelled)
    else:
        metrics = _regression(y_true, y_pred, column)
    return RealizedPerformance(predictions, count, coverage, "ok", chosen, metrics)


def prediction_column(rows: Sequence[LabelledOutput]) -> str:
    """The output column every row's prediction is read from: ``prediction``, or the one
    non-probability output column; InvalidInputError naming the columns otherwise."""
    columns: set[str] = set()
    for row in rows:
        columns.update(name for name in row.outputs if not name.startswith(PROBA_PREFIX))
    if PREDICTION_COLUMN in columns:
        chosen = PREDICTION_COLUMN
    elif len(columns) == 1:
        chosen = next(iter(columns))
    else:
        named = ", ".join(sorted(columns)[:10]) or "none"
        raise InvalidInputError(
            f"logged outputs have no {PREDICTION_COLUMN!r} column and not exactly one other "
            f"column to read predictions from (columns: {named})"
        )
    missing = sum(1 for row in rows if row.outputs.get(chosen) is None)
    if missing:
        raise InvalidInputError(f"{missing} labelled rows have no output {chosen!r}")
    return chosen


def infer_task(y_true: Sequence[Any], y_pred: Sequence[Any]) -> RealizedTask:
    """Classification when any label or prediction is a string or bool, or when all are
    whole numbers with at most :data:`MAX_INTEGER_CLASSES` distinct labels; else regression."""
    values = [*y_true, *y_pred]
    if any(isinstance(v, str | bool) for v in values):
        return "classification"
    if not all(isinstance(v, int | float) for v in values):
        kinds = sorted({type(v).__name__ for v in values if not isinstance(v, int | float)})
        raise InvalidInputError(f"labels and predictions must be scalars, got {', '.join(kinds)}")
    integral = all(float(v).is_integer() for v in values)
    if integral and len(set(y_true)) <= MAX_INTEGER_CLASSES:
        return "classification"
    return "regression"


def class_name(value: Any) -> str:
    """A class as the string the metrics and ``proba_<class>`` columns use: whole floats
    lose their ``.0`` (JSON turns an int class 1 into 1.0 on some paths)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _classification(
    y_true: Sequence[Any], y_pred: Sequence[Any], rows: Sequence[LabelledOutput]
) -> dict[str, float]:
    # numpy and the metric suites load on first use: the API and CLI import this module at
    # startup for its signal names.
    import numpy as np

    from keelwatch.monitoring.evaluation.classification import classification_metrics

    truth = np.array([class_name(v) for v in y_true], dtype=object)
    predicted = np.array([class_name(v) for v in y_pred], dtype=object)
    seen = set(truth) | set(predicted)
    proba, classes = _probabilities(rows, seen)
    if classes is None:
        classes = tuple(sorted(seen))
    result = classification_metrics(truth, predicted, proba=proba, classes=classes)
    return dict(result.as_dict())


def _probabilities(
    rows: Sequence[LabelledOutput], seen: set[str]
) -> tuple[np.ndarray[Any, Any] | None, tuple[str, ...] | None]:
    """The (n, k) probability matrix and its classes (sorted), or (None, None) when the rows
    do not all carry the same ``proba_<class>`` columns covering every class seen."""
    import numpy as np

    names = {name for name in rows[0].outputs if name.startswith(PROBA_PREFIX)}
    if len(names) < 2 or any(
        {n for n in row.outputs if n.startswith(PROBA_PREFIX)} != names for row in rows
    ):
        return None, None
    classes = tuple(sorted(name[len(PROBA_PREFIX) :] for name in names))
    if not seen <= set(classes):
        return None, None
    try:
        matrix = np.array(
            [[float(row.outputs[PROBA_PREFIX + c]) for c in classes] for row in rows],
            dtype=float,
        )
    except (TypeError, ValueError):
        return None, None
    if not np.all(np.isfinite(matrix)):
        return None, None
    return matrix, classes


def _regression(y_true: Sequence[Any], y_pred: Sequence[Any], column: str) -> dict[str, float]:
    import numpy as np

    from keelwatch.monitoring.evaluation.regression import regression_metrics

    for what, values in (("labels", y_true), (f"output {column!r}", y_pred)):
        wrong = sorted(
            {
                type(v).__name__
                for v in values
                if isinstance(v, bool) or not isinstance(v, int | float)
            }
        )
        if wrong:
            raise InvalidInputError(
                f"regression needs numeric {what}, got {', '.join(wrong)} values"
            )
    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    return dict(regression_metrics(truth, predicted).as_dict())


def realized_signals(
    result: RealizedPerformance,
    *,
    model: str,
    version: str,
    window_s: int,
    observed_at: datetime,
    source: str,
    alias: str | None = None,
) -> list[Signal]:
    """``realized.label_coverage`` and ``realized.labelled_rows`` always; ``realized.<metric>``
    for every finite metric when the verdict is ``ok``. Labels: ``model``, ``version``,
    ``window`` (:func:`window_label`) and ``alias`` when the version held one (the champion)."""
    labels = {"model": model, "version": version, "window": window_label(window_s)}
    if alias:
        labels["alias"] = alias
    values: dict[str, float] = {
        LABEL_COVERAGE: result.coverage,
        LABELLED_ROWS: float(result.labelled),
    }
    if result.verdict == "ok":
        for name, value in result.metrics.items():
            if name in METRIC_NAMES and math.isfinite(value):
                values[SIGNAL_PREFIX + name] = float(value)
    return [Signal(name, value, labels, observed_at, source) for name, value in values.items()]
