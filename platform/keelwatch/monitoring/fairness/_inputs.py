"""Input checks and encodings of a bias audit: configuration, sensitive attributes, binary and
numeric columns.

Everything is checked once and encoded once (attribute values to integer codes, binary columns
to booleans, numeric columns to float64), so the statistics after this work on small integers
and floats. Error messages name the column, the number of rows and the types, never values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.fairness.results import (
    AUDIT_TASKS,
    SLICE_SEPARATOR,
    AuditConfig,
    AuditTask,
)

Column = Sequence[Any] | npt.NDArray[Any]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def check_config(config: AuditConfig) -> None:
    """Raise InvalidInputError naming the first setting out of range."""
    if not isinstance(config.resamples, int) or config.resamples < 1:
        raise InvalidInputError("resamples must be an integer >= 1")
    if not isinstance(config.min_group_size, int) or config.min_group_size < 1:
        raise InvalidInputError("min_group_size must be an integer >= 1")
    if not (isinstance(config.confidence, int | float) and 0 < config.confidence < 1):
        raise InvalidInputError("confidence must be a number strictly between 0 and 1")
    if not isinstance(config.seed, int) or config.seed < 0:
        raise InvalidInputError("seed must be a non-negative integer")
    for name in ("difference_threshold", "ratio_threshold"):
        value = getattr(config, name)
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInputError(f"{name} must be a finite number >= 0")
    if config.correction not in ("bonferroni", "none"):
        raise InvalidInputError("correction must be 'bonferroni' or 'none'")
    if config.max_order is not None and (
        not isinstance(config.max_order, int) or config.max_order < 1
    ):
        raise InvalidInputError("max_order must be None or an integer >= 1")


def as_1d(name: str, values: Column, rows: int | None) -> npt.NDArray[Any]:
    """``values`` as a 1-D array of ``rows`` rows (InvalidInputError naming ``name``)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got {array.ndim} dimensions")
    if rows is not None and len(array) != rows:
        raise InvalidInputError(f"{name} has {len(array)} rows, y_pred has {rows}")
    return array


@dataclass(frozen=True)
class EncodedAttribute:
    """One sensitive attribute: a code per row into :attr:`levels` (sorted, as strings)."""

    name: str
    codes: IntArray
    levels: tuple[str, ...]


def encode_attribute(name: str, values: Column, rows: int) -> EncodedAttribute:
    """Codes and string levels of one sensitive attribute; missing values raise."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError("sensitive attribute names must be non-empty strings")
    if SLICE_SEPARATOR in name:
        raise InvalidInputError(
            f"sensitive attribute {name!r}: names must not contain {SLICE_SEPARATOR!r} "
            "(it joins the attributes of an intersection)"
        )
    array = as_1d(f"sensitive attribute {name!r}", values, rows)
    # pandas' factorize hashes (no sort of a million strings) and marks every kind of missing
    # value (None, NaN, NA, NaT) with -1.
    codes, uniques = pd.factorize(array, sort=True, use_na_sentinel=True)
    missing = int(np.count_nonzero(codes < 0))
    if missing:
        raise InvalidInputError(
            f"sensitive attribute {name!r} is missing (None/NaN) in {missing} of {rows} rows; "
            "fill it (e.g. with 'unknown') or drop those rows first"
        )
    names = [str(v) for v in np.asarray(uniques).tolist()]
    levels = sorted(set(names))
    if len(levels) == len(names) and levels == names:
        return EncodedAttribute(name, codes.astype(np.int64, copy=False), tuple(levels))
    # Distinct values that print alike (1 and "1") are one group; the order is the strings'.
    position = {level: i for i, level in enumerate(levels)}
    remap = np.asarray([position[n] for n in names], dtype=np.int64)
    return EncodedAttribute(name, remap[codes], tuple(levels))


def _distinct(name: str, array: npt.NDArray[Any]) -> list[Any]:
    """The distinct values of a column (missing values raise)."""
    missing = pd.isna(array)
    if missing.any():
        raise InvalidInputError(
            f"{name} is missing (None/NaN) in {int(missing.sum())} rows; drop those rows first"
        )
    try:
        return list(pd.unique(array))
    except TypeError as err:
        raise InvalidInputError(f"{name} holds unhashable values") from err


def encode_binary(
    array: npt.NDArray[Any], positive_label: Any, distinct: Sequence[Any]
) -> BoolArray:
    """``array == positive_label`` for a column whose distinct values are ``distinct``."""
    positives = [v for v in distinct if _equals(v, positive_label)]
    if not positives:
        return np.zeros(len(array), dtype=np.bool_)
    if array.dtype.kind == "O":
        return np.asarray(pd.Series(array).isin(positives).to_numpy(), dtype=np.bool_)
    return np.asarray(np.isin(array, np.asarray(positives, dtype=array.dtype)), dtype=np.bool_)


def _equals(value: Any, positive_label: Any) -> bool:
    try:
        return bool(value == positive_label)
    except (TypeError, ValueError):
        return False


def numeric(name: str, array: npt.NDArray[Any]) -> FloatArray:
    """A numeric column as float64; non-numeric or non-finite values raise."""
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise InvalidInputError(
                f"{name} must be numeric, got values of type {array.dtype.name}"
            ) from err
    values = np.asarray(array, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InvalidInputError(
            f"{name} has {int(bad.sum())} missing or infinite values; drop those rows first"
        )
    return values


@dataclass(frozen=True)
class EncodedOutcomes:
    """Predictions, labels and scores checked and encoded for one task."""

    task: AuditTask
    rows: int
    pred: FloatArray | BoolArray
    label: FloatArray | BoolArray | None
    score: FloatArray | None


def encode_outcomes(
    y_pred: Column,
    y_true: Column | None,
    score: Column | None,
    task: AuditTask | None,
    positive_label: Any,
) -> EncodedOutcomes:
    """Check lengths, guess or check the task, and encode the outcome columns."""
    if task is not None and task not in AUDIT_TASKS:
        raise InvalidInputError(f"task must be one of {', '.join(AUDIT_TASKS)} or None")
    pred = as_1d("y_pred", y_pred, None)
    rows = len(pred)
    if rows == 0:
        raise InvalidInputError("no rows to audit: y_pred is empty")
    label = None if y_true is None else as_1d("y_true", y_true, rows)
    scores = None if score is None else as_1d("score", score, rows)
    pred_values = _distinct("y_pred", pred)
    if task is None:
        task = _guess_task(pred, pred_values)
    if task == "regression":
        if scores is not None:
            raise InvalidInputError("score applies to a binary audit, not to regression")
        return EncodedOutcomes(
            "regression",
            rows,
            numeric("y_pred", pred),
            None if label is None else numeric("y_true", label),
            None,
        )
    if len(pred_values) > 2:
        raise InvalidInputError(
            f"non-binary predictions for a binary audit: {len(pred_values)} distinct values"
        )
    every = list(pred_values)
    if label is not None:
        label_values = _distinct("y_true", label)
        if len(label_values) > 2:
            raise InvalidInputError(
                f"non-binary labels for a binary audit: {len(label_values)} distinct values"
            )
        every += [v for v in label_values if not any(_equals(v, w) for w in every)]
        if len(every) > 2:
            raise InvalidInputError(
                f"y_true and y_pred together hold {len(every)} distinct values; a binary audit "
                "needs two"
            )
    if len(every) == 2 and not any(_equals(v, positive_label) for v in every):
        raise InvalidInputError(
            f"the positive label (a {type(positive_label).__name__}) is neither of the two "
            "distinct values of y_pred/y_true; pass positive_label"
        )
    encoded_scores = None
    if scores is not None:
        encoded_scores = numeric("score", scores)
        outside = int(np.count_nonzero((encoded_scores < 0) | (encoded_scores > 1)))
        if outside:
            raise InvalidInputError(
                f"score must be probabilities in [0, 1]: {outside} rows lie outside"
            )
    return EncodedOutcomes(
        "binary",
        rows,
        encode_binary(pred, positive_label, pred_values),
        None if label is None else encode_binary(label, positive_label, _distinct("y_true", label)),
        encoded_scores,
    )


def _guess_task(pred: npt.NDArray[Any], distinct: Sequence[Any]) -> AuditTask:
    if pred.dtype.kind == "b" or len(distinct) <= 2:
        return "binary"
    if pred.dtype.kind in "iuf":
        return "regression"
    if pred.dtype.kind == "O" and all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in distinct
    ):
        return "regression"
    raise InvalidInputError(
        f"cannot audit {len(distinct)} distinct non-numeric prediction values: a binary "
        "audit needs two, a regression audit numbers"
    )


def attributes_of(sensitive: Mapping[str, Column], rows: int) -> tuple[EncodedAttribute, ...]:
    """Every sensitive attribute encoded, in the given order."""
    if not isinstance(sensitive, Mapping) or not sensitive:
        raise InvalidInputError("at least one sensitive attribute is needed")
    return tuple(encode_attribute(name, values, rows) for name, values in sensitive.items())
