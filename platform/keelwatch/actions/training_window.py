"""The retrain action's training window: its parameters and its assembly. Pure.

A retrain policy without ``params.dataset`` trains on a window: the champion's reference data
plus the prediction-log rows of the last ``window`` (default 7d) that have a ground-truth
label, the label becoming the ``target`` column. Fewer than ``min_rows`` rows (default 100)
fail the action instead of training on too little. :func:`window_spec` reads the parameters
(as strings, the way policies store them); :func:`assemble_window` builds the frame from rows
that the service layer (``keelwatch.actions.training``) read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from keelwatch.alerting.rules import parse_duration
from keelwatch.entities import LabelledPrediction
from keelwatch.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MIN_ROWS",
    "DEFAULT_WINDOW",
    "AssembledWindow",
    "WindowSpec",
    "assemble_window",
    "window_spec",
]

DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_MIN_ROWS = 100


@dataclass(frozen=True)
class WindowSpec:
    """What a retrain trains on: ``dataset`` (a Parquet or CSV file), else a window of
    ``window`` of labelled rows plus the reference data; ``target`` None means the column the
    registry recorded for the champion."""

    window: timedelta = DEFAULT_WINDOW
    min_rows: int = DEFAULT_MIN_ROWS
    target: str | None = None
    dataset: str | None = None
    #: The window as the policy spelled it (``7d``), for results and messages.
    window_text: str = "7d"


def window_spec(params: Mapping[str, str]) -> WindowSpec:
    """The retrain parameters ``window``, ``min_rows``, ``target`` and ``dataset``, checked;
    InvalidInputError naming the parameter otherwise."""
    window = DEFAULT_WINDOW
    window_text = "7d"
    if "window" in params:
        window_text = str(params["window"]).strip()
        try:
            window = parse_duration(params["window"])
        except InvalidInputError as exc:
            raise InvalidInputError(f"retrain parameter 'window': {exc}") from None
        if window <= timedelta(0):
            raise InvalidInputError("retrain parameter 'window' must be longer than 0s")
    min_rows = DEFAULT_MIN_ROWS
    if "min_rows" in params:
        text = str(params["min_rows"]).strip()
        if not text.isdigit() or int(text) < 1:
            raise InvalidInputError(
                f"retrain parameter 'min_rows' must be a whole number >= 1, got {text!r}"
            )
        min_rows = int(text)
    target = params.get("target") or None
    dataset = params.get("dataset") or None
    return WindowSpec(
        window=window,
        min_rows=min_rows,
        target=target,
        dataset=dataset,
        window_text=window_text,
    )


@dataclass(frozen=True)
class AssembledWindow:
    """The training frame (feature columns, then the target) and where its rows came from."""

    frame: pd.DataFrame
    reference_rows: int
    logged_rows: int


def assemble_window(
    reference: pd.DataFrame | None,
    logged: Sequence[LabelledPrediction],
    *,
    target: str,
    features: Sequence[str] | None = None,
) -> AssembledWindow:
    """Reference rows first, then the labelled log rows (their inputs as features, their label
    as ``target``), in that order.

    ``features`` are the model's input columns; None: the reference's columns other than the
    target, else every input name the log rows carry, in first-seen order. A reference without
    the target column, or with missing feature columns, raises InvalidInputError naming them;
    a log row without one of the features gets a missing value there (the trainer decides).
    """
    import pandas as pd

    if reference is not None:
        if target not in reference.columns:
            raise InvalidInputError(f"the reference data has no target column {target!r}")
        if features is None:
            features = [str(c) for c in reference.columns if c != target]
        missing = [c for c in features if c not in reference.columns]
        if missing:
            raise InvalidInputError(f"the reference data lacks the input columns {missing}")
    if features is None:
        seen: dict[str, None] = {}
        for row in logged:
            seen.update((str(name), None) for name in row.inputs if name != target)
        features = list(seen)
    columns = [*features, target]
    if target in features:
        raise InvalidInputError(f"target column {target!r} is also an input column")
    parts: list[pd.DataFrame] = []
    if reference is not None and len(reference):
        parts.append(reference[columns].reset_index(drop=True))
    if logged:
        records: list[dict[str, Any]] = [
            {**{name: row.inputs.get(name) for name in features}, target: row.label}
            for row in logged
        ]
        parts.append(pd.DataFrame.from_records(records, columns=columns))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return AssembledWindow(
        frame=frame,
        reference_rows=0 if reference is None else len(reference),
        logged_rows=len(logged),
    )
