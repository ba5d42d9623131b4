"""Bias audits of a file: read the prediction, label, score and sensitive columns of a CSV,
Parquet or JSON Lines file and hand them to the pure audit (``monitoring.fairness``).

This is the standalone path of ``keelwatch audit run --data FILE``: no server, no database, no
settings file. Every problem with the file is an :class:`~keelwatch.errors.InvalidInputError`
that names the file, the column and a count, never a cell's value: a missing column (with the
columns the file has), an empty or unreadable file, missing values in a column the audit
needs, the same column asked for twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.monitoring.fairness.results import AuditConfig, AuditResult, AuditTask

#: File name endings → format. Anything else is refused before the file is opened.
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
#: Columns named in a "missing column" message; the rest are counted.
SHOWN_COLUMNS = 20


@dataclass(frozen=True)
class AuditColumns:
    """The columns of one audit, one value per row, as numpy arrays (no missing values)."""

    sensitive: dict[str, NDArray[Any]]
    """Attribute name → its value per row, as text (``007`` stays ``007``)."""
    y_pred: NDArray[Any]
    y_true: NDArray[Any] | None
    score: NDArray[Any] | None

    @property
    def rows(self) -> int:
        return len(self.y_pred)


def read_audit_file(
    path: Path,
    *,
    prediction: str,
    attributes: Sequence[str],
    label: str | None = None,
    score: str | None = None,
) -> AuditColumns:
    """The audit's columns of ``path`` (CSV, Parquet or JSON Lines, by the file's ending)."""
    attributes = list(attributes)
    wanted = _wanted_columns(prediction, attributes, label, score)
    frame = _read(path, wanted, text_columns=attributes)
    if frame.empty:
        raise InvalidInputError(f"{path.name}: no rows to audit (the file has only a header)")
    for column in wanted:
        missing = int(frame[column].isna().sum())
        if missing:
            role = _role(column, prediction, attributes, label, score)
            raise InvalidInputError(
                f"{path.name}: {role} column '{column}' has {missing:,} missing value(s) of "
                f"{len(frame):,} rows; fill or drop those rows"
            )
    return AuditColumns(
        sensitive={name: frame[name].astype(str).to_numpy(dtype=object) for name in attributes},
        y_pred=_values(frame[prediction]),
        y_true=_values(frame[label]) if label is not None else None,
        score=_scores(frame[score], path.name, score) if score is not None else None,
    )


def audit_file(
    path: Path,
    *,
    prediction: str,
    attributes: Sequence[str],
    label: str | None = None,
    score: str | None = None,
    task: AuditTask | None = None,
    positive_label: Any = 1,
    config: AuditConfig,
) -> AuditResult:
    """Audit the predictions in ``path`` across every slice of ``attributes``.

    ``positive_label`` may be given as text (from a command line): it is matched against the
    prediction column's values, so ``"1"`` finds the integer 1 and ``"yes"`` the string.
    """
    from keelwatch.monitoring.fairness.audit import audit_predictions

    columns = read_audit_file(
        path, prediction=prediction, attributes=attributes, label=label, score=score
    )
    return audit_predictions(
        columns.sensitive,
        columns.y_pred,
        y_true=columns.y_true,
        score=columns.score,
        task=task,
        positive_label=positive_label_of(columns.y_pred, positive_label),
        config=config,
    )


def positive_label_of(y_pred: NDArray[Any], given: Any) -> Any:
    """``given`` as the type of the predictions: text ``"1"`` becomes 1 for integer
    predictions, ``"true"`` becomes True for booleans; anything else is returned as given."""
    if not isinstance(given, str):
        return given
    kind = y_pred.dtype.kind
    text = given.strip()
    if kind == "b":
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise InvalidInputError("the positive label must be true or false for boolean predictions")
    if kind in "iuf":
        try:
            number = float(text)
        except ValueError as exc:
            raise InvalidInputError(
                "the positive label must be a number: the predictions are numbers"
            ) from exc
        return int(number) if kind in "iu" and number.is_integer() else number
    return given


def _wanted_columns(
    prediction: str, attributes: list[str], label: str | None, score: str | None
) -> list[str]:
    if not attributes:
        raise InvalidInputError("name at least one sensitive attribute column")
    if any(not name.strip() for name in attributes):
        raise InvalidInputError("an attribute column name is empty")
    named = [prediction, *attributes, *(c for c in (label, score) if c is not None)]
    seen: set[str] = set()
    for column in named:
        if column in seen:
            raise InvalidInputError(
                f"column '{column}' is named twice: the prediction, label, score and attribute "
                "columns must all differ"
            )
        seen.add(column)
    return named


def _role(
    column: str, prediction: str, attributes: list[str], label: str | None, score: str | None
) -> str:
    if column == prediction:
        return "prediction"
    if column == label:
        return "label"
    if column == score:
        return "score"
    return "sensitive attribute" if column in attributes else "the"


def _read(path: Path, wanted: list[str], *, text_columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(FORMATS)
        raise InvalidInputError(
            f"{path.name}: expected a CSV, Parquet or JSON Lines file ({known})"
        )
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    try:
        if path.stat().st_size == 0:
            raise InvalidInputError(f"{path.name}: the file is empty")
        if kind == "jsonl":
            # No header: the columns are every key any row has.
            frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
            _require(path, wanted, [str(name) for name in frame.columns])
            return frame[wanted]
        _require(path, wanted, _columns(path, kind))
        if kind == "csv":
            # Attribute values stay text ("007" is not 7, "NA" is a group); only empty cells
            # are missing.
            return pd.read_csv(
                path,
                usecols=wanted,
                dtype=dict.fromkeys(text_columns, str),
                keep_default_na=False,
                na_values=[""],
            )
        return pd.read_parquet(path, columns=wanted)
    except InvalidInputError:
        raise
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # These name the file, a line and field counts, never a cell's value.
        raise InvalidInputError(f"{path.name}: cannot read the file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow and the JSON reader raise their own types
        # Their messages may quote the bytes they choked on: say only what failed.
        raise InvalidInputError(
            f"{path.name}: cannot read the file ({type(exc).__name__}; not a valid {kind} file?)"
        ) from None


def _columns(path: Path, kind: str) -> list[str]:
    """The column names of a CSV's header or a Parquet file's schema (no rows read)."""
    if kind == "csv":
        import pandas as pd

        return [str(name) for name in pd.read_csv(path, nrows=0).columns]
    import pyarrow.parquet as pq

    return [str(name) for name in pq.read_schema(path).names]


def _require(path: Path, wanted: list[str], columns: list[str]) -> None:
    missing = [column for column in wanted if column not in columns]
    if not missing:
        return
    shown = ", ".join(columns[:SHOWN_COLUMNS]) or "none"
    if len(columns) > SHOWN_COLUMNS:
        shown += f" and {len(columns) - SHOWN_COLUMNS:,} more"
    names = ", ".join(f"'{column}'" for column in missing)
    raise InvalidInputError(f"{path.name}: no column {names} (the file has: {shown})")


def _values(column: pd.Series[Any]) -> NDArray[Any]:
    array: NDArray[Any] = column.to_numpy()
    return array


def _scores(column: pd.Series[Any], file: str, name: str) -> NDArray[np.float64]:
    try:
        scores: NDArray[np.float64] = column.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{file}: score column '{name}' must hold numbers (found {column.dtype} values)"
        ) from exc
    if not np.isfinite(scores).all():
        raise InvalidInputError(f"{file}: score column '{name}' holds infinite values")
    return scores
