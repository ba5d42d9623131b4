"""Ground-truth labels for logged predictions, keyed by request id.

Labels arrive days after scoring. Recording them is idempotent: the same label again changes
nothing, a different label for the same request id replaces it (the latest call wins). Only
request ids in the prediction log can be labelled. The log is a sample, so labels for other
ids are not stored; they are returned to the caller as ``unknown``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities import (
    LabelledPrediction,
    LabelRecord,
    LabelValue,
    LabelWriteResult,
    PredictionLabel,
)
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.storage.audit import record_audit
from keelwatch.storage.models import PredictionLabelRow, PredictionRow

#: The most labels the API accepts in one call; the CLI sends files in batches of this size.
MAX_LABELS_PER_CALL = 10_000
#: Request ids per ``IN (...)`` lookup: few round trips, and well under SQLite's variable limit.
LOOKUP_CHUNK = 2_000
MAX_REQUEST_ID_LENGTH = 128
MAX_ACTOR_LENGTH = 255
AUDIT_ACTION = "labels.record"
AUDIT_TARGET = "prediction_labels"


def check_label_value(value: object, *, where: str = "label") -> LabelValue:
    """``value`` as a plain JSON scalar (finite number, string or bool), else InvalidInputError.

    Subclasses (numpy's ``float64``, ``str_``) come back as the built-in type.
    """
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise InvalidInputError(f"{where}: the label is missing (NaN); a label must be finite")
        if math.isinf(value):
            raise InvalidInputError(f"{where}: the label is {value}; a label must be finite")
        return float(value)
    kind = "null" if value is None else type(value).__name__
    raise InvalidInputError(f"{where}: a label must be a number, string or bool, not {kind}")


def same_label(a: LabelValue, b: LabelValue) -> bool:
    """Label equality as JSON sees it: ``1`` and ``1.0`` are the same number, but a bool is
    never a number (Python says ``True == 1``) and ``"1"`` is never ``1``."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _list_position(index: int) -> str:
    return f"labels[{index}]"


def validate_labels(
    labels: Sequence[LabelRecord], *, position: Callable[[int], str] = _list_position
) -> dict[str, LabelValue]:
    """Distinct request id → label, in first-seen order; InvalidInputError on bad input.

    An id sent twice with the same label counts once; twice with different labels is an error
    (which one was meant is unknowable). ``position`` names an index in error messages
    (``labels[3]`` by default; the CLI says ``row 4``).
    """
    distinct: dict[str, LabelValue] = {}
    for index, record in enumerate(labels):
        request_id = record.request_id
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInputError(f"{position(index)}: request_id must be a non-empty string")
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidInputError(
                f"{position(index)}: request_id is longer than {MAX_REQUEST_ID_LENGTH} characters"
            )
        value = check_label_value(record.label, where=f"{position(index)} ({request_id!r})")
        if request_id in distinct:
            if not same_label(distinct[request_id], value):
                raise InvalidInputError(
                    f"{position(index)}: request_id {request_id!r} appears twice with different "
                    f"labels ({distinct[request_id]!r} and {value!r})"
                )
            continue
        distinct[request_id] = value
    return distinct


def record_labels(session: Session, labels: Sequence[LabelRecord], actor: str) -> LabelWriteResult:
    """Store ``labels`` in the caller's transaction and audit the call once.

    Each request id is ``inserted`` (first label), ``updated`` (a different label replaces the
    stored one), ``unchanged`` (same label) or ``unknown`` (not in the prediction log: not
    stored). Lookups go ``LOOKUP_CHUNK`` ids at a time; writes are one upsert per call, so a
    concurrent writer of the same id cannot make this fail (the last commit wins).
    """
    actor = actor.strip() if isinstance(actor, str) else ""
    if not actor or len(actor) > MAX_ACTOR_LENGTH:
        raise InvalidInputError(f"the actor must be 1 to {MAX_ACTOR_LENGTH} characters")
    distinct = validate_labels(labels)
    if not distinct:
        return LabelWriteResult(inserted=0, updated=0, unchanged=0)

    logged: set[str] = set()
    stored: dict[str, LabelValue] = {}
    for chunk in _chunks(list(distinct), LOOKUP_CHUNK):
        query = (
            select(PredictionRow.request_id, PredictionLabelRow.label)
            .outerjoin(
                PredictionLabelRow, PredictionLabelRow.request_id == PredictionRow.request_id
            )
            .where(PredictionRow.request_id.in_(chunk))
        )
        for request_id, label in session.execute(query):
            logged.add(request_id)
            if label is not None:
                stored[request_id] = label

    now = utcnow()
    writes: list[dict[str, Any]] = []
    unknown: list[str] = []
    inserted = updated = unchanged = 0
    for request_id, value in distinct.items():
        if request_id not in logged:
            unknown.append(request_id)
            continue
        if request_id not in stored:
            inserted += 1
        elif same_label(stored[request_id], value):
            unchanged += 1
            continue
        else:
            updated += 1
        writes.append(
            {"request_id": request_id, "label": value, "labelled_at": now, "submitted_by": actor}
        )
    if writes:
        session.execute(_upsert(session), writes)

    result = LabelWriteResult(
        inserted=inserted, updated=updated, unchanged=unchanged, unknown=tuple(unknown)
    )
    record_audit(
        session,
        actor=actor,
        action=AUDIT_ACTION,
        target=AUDIT_TARGET,
        details={
            "received": result.received,
            "inserted": inserted,
            "updated": updated,
            "unchanged": unchanged,
            "unknown": len(unknown),
        },
    )
    return result


def _upsert(session: Session) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(PredictionLabelRow)
    elif dialect == "sqlite":
        stmt = sqlite.insert(PredictionLabelRow)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported backends
        raise NotImplementedError(f"prediction labels not supported on {dialect}")
    return stmt.on_conflict_do_update(
        index_elements=["request_id"],
        set_={
            "label": stmt.excluded.label,
            "labelled_at": stmt.excluded.labelled_at,
            "submitted_by": stmt.excluded.submitted_by,
        },
    )


def get_labels(session: Session, request_ids: Iterable[str]) -> dict[str, PredictionLabel]:
    """The stored labels of ``request_ids`` (ids without a label are left out)."""
    found: dict[str, PredictionLabel] = {}
    for chunk in _chunks(list(dict.fromkeys(request_ids)), LOOKUP_CHUNK):
        query = select(PredictionLabelRow).where(PredictionLabelRow.request_id.in_(chunk))
        for row in session.scalars(query):
            found[row.request_id] = _to_entity(row)
    return found


def labels_for_request_ids(session: Session, request_ids: Iterable[str]) -> dict[str, Any]:
    """Request id → label for the ids in ``request_ids`` that have one."""
    found: dict[str, Any] = {}
    for chunk in _chunks(list(dict.fromkeys(request_ids)), LOOKUP_CHUNK):
        query = select(PredictionLabelRow.request_id, PredictionLabelRow.label).where(
            PredictionLabelRow.request_id.in_(chunk)
        )
        found.update((request_id, label) for request_id, label in session.execute(query))
    return found


def labelled_predictions(
    session: Session, *, model_name: str, model_version: str, id_start: int, id_stop: int
) -> list[LabelledPrediction]:
    """Logged predictions of one model version with ``id_start <= id <= id_stop`` that have a
    label, as ``(id, inputs, outputs, label)`` ordered by id.

    The bounds are inclusive, like the id ranges drift monitors pin their windows to.
    """
    query = (
        select(
            PredictionRow.id, PredictionRow.inputs, PredictionRow.outputs, PredictionLabelRow.label
        )
        .join(PredictionLabelRow, PredictionLabelRow.request_id == PredictionRow.request_id)
        .where(
            PredictionRow.id >= id_start,
            PredictionRow.id <= id_stop,
            PredictionRow.model_name == model_name,
            PredictionRow.model_version == model_version,
        )
        .order_by(PredictionRow.id)
    )
    return [
        LabelledPrediction(row_id, dict(inputs), dict(outputs), label)
        for row_id, inputs, outputs, label in session.execute(query)
    ]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _to_entity(row: PredictionLabelRow) -> PredictionLabel:
    return PredictionLabel(
        request_id=row.request_id,
        label=row.label,
        labelled_at=row.labelled_at,
        submitted_by=row.submitted_by,
    )
