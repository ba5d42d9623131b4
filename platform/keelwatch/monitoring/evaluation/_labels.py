"""Label checks and encoding shared by the classification and calibration metrics.

Labels arrive as whatever the dataset and the model produced: integers, floats, booleans or
strings. They are checked once (types agree, nothing missing) and encoded once to integer
codes ``0..k-1`` in sorted class order, so every metric after that works on small integers.
Error messages name the argument and the types, never label values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from keelwatch.errors import InvalidInputError

# Small non-negative integer labels are mapped through a lookup table instead of a sort.
_LOOKUP_LIMIT = 1 << 16

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class EncodedLabels:
    """Labels as codes into :attr:`classes` (sorted; strings for display and matching)."""

    classes: tuple[str, ...]
    codes: tuple[npt.NDArray[np.intp], ...]
    #: For each class given by the caller (model order), its position in :attr:`classes`.
    given_positions: npt.NDArray[np.intp] | None


def label_kind(name: str, values: Array) -> str:
    """``"numeric"`` or ``"string"`` for a 1-D label array; missing values raise."""
    kind = values.dtype.kind
    if kind in "biuf":
        if kind == "f" and np.isnan(values).any():
            raise InvalidInputError(
                f"{name} has {int(np.isnan(values).sum())} missing (NaN) labels; "
                "drop or fill those rows first"
            )
        return "numeric"
    if kind in "US":
        return "string"
    if kind == "O":
        missing = pd.isna(values)
        if missing.any():
            raise InvalidInputError(
                f"{name} has {int(missing.sum())} missing (None/NaN) labels; "
                "drop or fill those rows first"
            )
        inferred = pd.api.types.infer_dtype(values, skipna=False)
        if inferred == "string":
            return "string"
        if inferred in ("integer", "floating", "boolean", "mixed-integer-float"):
            return "numeric"
        raise InvalidInputError(f"{name} mixes label types ({inferred}); use one type")
    raise InvalidInputError(f"{name} has labels of type {values.dtype}; use numbers or strings")


def as_label_array(name: str, values: object) -> Array:
    """A 1-D array of labels; a pandas categorical becomes its values."""
    if isinstance(values, pd.Series | pd.Index) and isinstance(values.dtype, pd.CategoricalDtype):
        values = np.asarray(values.astype(object))
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise InvalidInputError(f"{name} is empty: no rows to evaluate")
    return array


def _type_name(array: Array, kind: str) -> str:
    return f"{kind} ({array.dtype})"


def _display(value: float) -> str:
    # Integral numbers print as integers so 1, 1.0 and True-as-1 name the same class.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _parse_numeric_class(label: object) -> float:
    if isinstance(label, bool | np.bool_):
        return float(label)
    text = str(label)
    if text in ("True", "False"):
        return 1.0 if text == "True" else 0.0
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(
            "classes are strings but the labels are numeric; the model's classes and the "
            "dataset's labels must have the same type"
        ) from None


def _encode_numeric(joined: Array) -> tuple[Array, Array]:
    if joined.dtype.kind in "biu":
        values = joined.astype(np.int64, copy=False)
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high < _LOOKUP_LIMIT:
            present = np.flatnonzero(np.bincount(values, minlength=high + 1))
            table = np.zeros(high + 1, dtype=np.intp)
            table[present] = np.arange(present.size)
            return present.astype(np.float64), table[values]
    uniques, codes = np.unique(joined.astype(np.float64, copy=False), return_inverse=True)
    return uniques, codes.astype(np.intp, copy=False)


def _encode_strings(joined: Array) -> tuple[list[str], Array]:
    codes, uniques = pd.factorize(joined, sort=True)
    return [str(u) for u in uniques], np.asarray(codes, dtype=np.intp)


def encode_labels(
    arrays: Sequence[tuple[str, Array]],
    classes: Sequence[object] | None,
    *,
    strict: bool = True,
) -> EncodedLabels:
    """Check the named label arrays agree in type and encode them into one sorted class list.

    ``classes`` (the model's class order, e.g. probability columns) joins the class list;
    with ``strict``, labels outside it raise (probabilities say nothing about such a class).
    Returned codes follow the *sorted* class order.
    """
    kinds = [(name, array, label_kind(name, array)) for name, array in arrays]
    first_name, first_array, first_kind = kinds[0]
    for name, array, kind in kinds[1:]:
        if kind != first_kind:
            raise InvalidInputError(
                f"{first_name} holds {_type_name(first_array, first_kind)} labels but {name} "
                f"holds {_type_name(array, kind)} labels; both must be the same type"
            )
    given: Array | None = None
    sizes = np.cumsum([0] + [array.size for _, array, _ in kinds])
    if first_kind == "numeric":
        joined = np.concatenate([array for _, array, _ in kinds])
        if joined.dtype.kind == "O":
            joined = joined.astype(np.float64)
        num_uniques, codes = _encode_numeric(joined)
        if classes is not None:
            extra = np.asarray([_parse_numeric_class(c) for c in classes], dtype=np.float64)
            codes, names, given = _merge_numeric(num_uniques, codes, extra, strict)
        else:
            names = [_display(v) for v in num_uniques]
    else:
        if classes is not None and any(not isinstance(c, str | np.str_) for c in classes):
            raise InvalidInputError(
                "classes are numeric but the labels are strings; the model's classes and the "
                "dataset's labels must have the same type"
            )
        joined = np.concatenate([array.astype(object) for _, array, _ in kinds])
        str_uniques, codes = _encode_strings(joined)
        if classes is not None:
            codes, names, given = _merge_strings(
                str_uniques, codes, [str(c) for c in classes], strict
            )
        else:
            names = str_uniques
    parts = tuple(codes[sizes[i] : sizes[i + 1]] for i in range(len(kinds)))
    return EncodedLabels(classes=tuple(names), codes=parts, given_positions=given)


def _unknown(count: int, total: int) -> InvalidInputError:
    return InvalidInputError(
        f"{count} label value(s) are not among the model's {total} classes; "
        "the dataset's labels and the model's classes must match"
    )


def _merge_numeric(
    uniques: Array,
    codes: Array,
    extra: Array,
    strict: bool,
) -> tuple[Array, list[str], Array]:
    allowed = np.unique(extra)
    if allowed.size != extra.size:
        raise InvalidInputError("classes lists the same class twice")
    missing = ~np.isin(uniques, allowed)
    if missing.any():
        if strict:
            raise _unknown(int(missing.sum()), int(allowed.size))
        allowed = np.union1d(allowed, uniques)
    remap = np.searchsorted(allowed, uniques).astype(np.intp)
    given = np.searchsorted(allowed, extra).astype(np.intp)
    return remap[codes], [_display(v) for v in allowed], given


def _merge_strings(
    uniques: list[str],
    codes: Array,
    extra: list[str],
    strict: bool,
) -> tuple[Array, list[str], Array]:
    allowed = sorted(set(extra))
    if len(allowed) != len(extra):
        raise InvalidInputError("classes lists the same class twice")
    known = set(allowed)
    unknown = [u for u in uniques if u not in known]
    if unknown:
        if strict:
            raise _unknown(len(unknown), len(allowed))
        allowed = sorted(known | set(unknown))
    position = {name: i for i, name in enumerate(allowed)}
    remap = np.asarray([position[u] for u in uniques], dtype=np.intp)
    given = np.asarray([position[c] for c in extra], dtype=np.intp)
    return remap[codes], allowed, given
