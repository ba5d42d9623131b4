"""The text columns of one scored batch-inference chunk, moderated: what the output part, the
prediction log and the profile receive, and the tallies and review items stored for it.

``inference.execution.run_inference_chunk`` calls :func:`moderate_chunk` after predicting (for
jobs of text models, ``BatchInferenceParams.moderation``) and :func:`record_chunk_moderation`
before marking the chunk done; see :mod:`keelwatch.monitoring.service.moderation` for tallies,
rates and signals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keelwatch.entities.moderation import ModerationTally
from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.pipeline import ModerationResult, Moderator
from keelwatch.monitoring.service.moderation import enqueue_reviews, record_moderation

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from sqlalchemy.orm import Session

    from keelwatch.entities.moderation import ReviewItem

#: Suffix of the decision column written next to each moderated column of an output part.
DECISION_SUFFIX = "_moderation"


@dataclass
class ColumnModeration:
    """One moderated column of a chunk: a result per row (None where the value was null)."""

    column: str
    direction: str
    decision_column: str
    texts: list[object]
    results: list[ModerationResult | None]

    def decisions(self) -> list[str | None]:
        return [r.decision.value if r is not None else None for r in self.results]

    def redacted(self) -> list[str | None]:
        return [r.redacted if r is not None else None for r in self.results]

    def released(self) -> list[str | None]:
        return [r.released if r is not None else None for r in self.results]


@dataclass
class ChunkModeration:
    """A chunk's moderated input and output columns, and the moderator's text limit."""

    columns: list[ColumnModeration]
    max_chars: int

    def of(self, direction: str) -> list[ColumnModeration]:
        return [c for c in self.columns if c.direction == direction]

    def part_columns(
        self, predictions: Mapping[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """What the output part holds: moderated outputs replaced by their released text
        (null for review and block), and a decision column per moderated column."""
        out = dict(predictions)
        for column in self.of("output"):
            out[column.column] = _objects(column.released())
        for column in self.columns:
            out[column.decision_column] = _objects(column.decisions())
        return out

    def logged_columns(
        self, table: pa.Table, predictions: Mapping[str, np.ndarray[Any, Any]]
    ) -> tuple[pa.Table, dict[str, np.ndarray[Any, Any]]]:
        """What may be logged or profiled: moderated inputs and outputs replaced by their
        redacted text (every finding that called for redaction or more replaced by its
        placeholder; a text that could not be moderated by ``""``), plus the decisions."""
        import pyarrow as pa

        for column in self.of("input"):
            position = table.column_names.index(column.column)
            values = pa.array(column.redacted(), type=pa.string())
            table = table.set_column(position, column.column, values)
        outputs = dict(predictions)
        for column in self.of("output"):
            outputs[column.column] = _objects(column.redacted())
        for column in self.columns:
            outputs[column.decision_column] = _objects(column.decisions())
        return table, outputs


def moderate_chunk(
    moderator: Moderator,
    inputs: Sequence[str] | str,
    outputs: Sequence[str] | str,
    table: pa.Table,
    predictions: Mapping[str, np.ndarray[Any, Any]],
) -> ChunkModeration:
    """Moderate the text columns of one scored chunk: ``inputs`` (columns of ``table``) and
    ``outputs`` (columns of ``predictions``), each a list of names or ``"*"`` for every
    string column. A named column that is missing is an InvalidInputError naming it."""
    import pyarrow as pa

    input_names = _pick(
        inputs,
        table.column_names,
        lambda name: (
            pa.types.is_string(table.schema.field(name).type)
            or pa.types.is_large_string(table.schema.field(name).type)
        ),
        "input",
    )
    output_names = _pick(
        outputs,
        list(predictions),
        lambda name: _holds_text(predictions[name]),
        "model output",
    )
    taken = set(predictions) | {n + DECISION_SUFFIX for n in output_names}
    columns: list[ColumnModeration] = []
    for name in input_names:
        decision = name + DECISION_SUFFIX
        if decision in taken:
            decision = f"input_{name}{DECISION_SUFFIX}"
        taken.add(decision)
        values = table.column(name).to_pylist()
        columns.append(_moderate_column(moderator, name, "input", decision, values))
    for name in output_names:
        values = predictions[name].tolist()
        columns.append(_moderate_column(moderator, name, "output", name + DECISION_SUFFIX, values))
    return ChunkModeration(columns, moderator.max_chars)


@dataclass(frozen=True)
class ChunkRecord:
    """What :func:`record_chunk_moderation` stored."""

    tallies: list[ModerationTally]
    review_items: list[int]
    alert_transitions: int


def record_chunk_moderation(
    session: Session,
    moderation: ChunkModeration,
    *,
    job_id: str,
    chunk_index: int,
    row_start: int,
    model_name: str,
    model_version: str,
    now: datetime,
) -> ChunkRecord:
    """One tally per direction (source ``job:<id>:<chunk>``) and a review item per text
    decided ``review`` (source key ``job:<id>:<row>:<column>``): a rerun of the chunk replaces
    its tallies and queues nothing twice."""
    tallies: list[ModerationTally] = []
    items: list[ReviewItem] = []
    for direction in ("input", "output"):
        columns = moderation.of(direction)
        if not columns:
            continue
        results = [r for c in columns for r in c.results if r is not None]
        tallies.append(
            record_moderation(
                session,
                results,
                model_name=model_name,
                model_version=model_version,
                direction=direction,
                source=f"job:{job_id}:{chunk_index}",
                now=now,
                detail={
                    "job_id": job_id,
                    "chunk_index": chunk_index,
                    "columns": {c.column: _count_decisions(c.results) for c in columns},
                },
            )
        )
        for column in columns:
            items.extend(
                enqueue_reviews(
                    session,
                    [
                        (f"job:{job_id}:{row_start + i}:{column.column}", column.texts[i], r)
                        for i, r in enumerate(column.results)
                        if r is not None
                    ],
                    model_name=model_name,
                    model_version=model_version,
                    direction=direction,
                    now=now,
                    max_chars=moderation.max_chars,
                )
            )
    return ChunkRecord(
        tallies=tallies,
        review_items=[item.id for item in items],
        alert_transitions=sum(int(t.detail.get("alert_transitions", 0)) for t in tallies),
    )


def _moderate_column(
    moderator: Moderator, name: str, direction: str, decision: str, values: list[object]
) -> ColumnModeration:
    present = [i for i, value in enumerate(values) if not _missing(value)]
    verdicts = moderator.moderate_many([values[i] for i in present])
    results: list[ModerationResult | None] = [None] * len(values)
    for i, verdict in zip(present, verdicts, strict=True):
        results[i] = verdict
    return ColumnModeration(name, direction, decision, values, results)


def _pick(
    wanted: Sequence[str] | str,
    available: Sequence[str],
    is_text: Any,
    what: str,
) -> list[str]:
    if isinstance(wanted, str):
        if wanted != "*":
            raise InvalidInputError(f"text {what} columns: a list of names or '*'")
        return [name for name in available if is_text(name)]
    missing = [name for name in wanted if name not in available]
    if missing:
        names = ", ".join(sorted(available)[:20]) or "none"
        raise InvalidInputError(
            f"text model: {what} column(s) {', '.join(repr(m) for m in missing)} "
            f"not found (columns: {names})"
        )
    return list(dict.fromkeys(wanted))


def _holds_text(values: np.ndarray[Any, Any]) -> bool:
    """Whether an output column holds text: a numpy string array, or objects that are all
    str (or null) with at least one str."""
    if values.dtype.kind == "U":
        return True
    if values.dtype.kind != "O":
        return False
    seen = False
    for value in values:
        if isinstance(value, str):
            seen = True
        elif not _missing(value):
            return False
    return seen


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _count_decisions(results: Sequence[ModerationResult | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        if result is not None:
            counts[result.decision.value] = counts.get(result.decision.value, 0) + 1
    return counts


def _objects(values: list[str | None]) -> np.ndarray[Any, Any]:
    import numpy as np

    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
