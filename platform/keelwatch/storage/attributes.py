"""Sensitive attributes of logged predictions (the groups a bias audit compares), keyed by
request id.

They are never model features: a caller sends them beside the prediction log (often later,
from a system the model never sees), like labels. Only request ids in the prediction log are
stored; the others come back as ``unknown``. Recording merges: the names sent replace the
stored values of those names and keep the others (the latest call wins per name). Two
concurrent calls for the same request id each write their merge; the later commit wins the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.storage.audit import record_audit
from keelwatch.storage.models import PredictionAttributeRow, PredictionRow

#: Request ids per ``IN (...)`` lookup: few round trips, well under SQLite's variable limit.
LOOKUP_CHUNK = 2_000
MAX_REQUEST_ID_LENGTH = 128
MAX_ACTOR_LENGTH = 255
MAX_NAME_LENGTH = 64
MAX_VALUE_LENGTH = 256
MAX_ATTRIBUTES = 32
AUDIT_ACTION = "attributes.record"
AUDIT_TARGET = "prediction_attributes"


@dataclass(frozen=True)
class AttributeRecord:
    """The sensitive attributes of one logged prediction: name → value."""

    request_id: str
    attributes: Mapping[str, str | int | bool]
    """name → value; ints and bools are stored as text (``True`` → ``"true"``)."""


@dataclass(frozen=True)
class AttributeWriteResult:
    """What one call did: ``stored`` distinct request ids written; ``unknown`` the request ids
    not in the prediction log (nothing stored for them)."""

    stored: int
    unknown: list[str] = field(default_factory=list)


def attribute_text(value: object) -> str | None:
    """An attribute value as the string groups are keyed by, or None when it is not a
    str, int or bool (``True`` → ``"true"``; a whole float, as JSON paths turn ints into,
    loses its ``.0``). Shared by this table and the audit's logged-input fallback."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def validate_attributes(records: Sequence[AttributeRecord]) -> dict[str, dict[str, str]]:
    """Distinct request id → attributes (a request id sent twice merges, the later record
    winning per name); InvalidInputError naming the record's position (``attributes[3]``)
    and the attribute, never a value."""
    distinct: dict[str, dict[str, str]] = {}
    for index, record in enumerate(records):
        where = f"attributes[{index}]"
        request_id = record.request_id
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInputError(f"{where}: request_id must be a non-empty string")
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidInputError(
                f"{where}: request_id is longer than {MAX_REQUEST_ID_LENGTH} characters"
            )
        attributes = record.attributes
        if not isinstance(attributes, Mapping) or not attributes:
            raise InvalidInputError(f"{where}: attributes must map at least one name to a value")
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidInputError(
                f"{where}: {len(attributes)} attributes; at most {MAX_ATTRIBUTES} are accepted"
            )
        checked: dict[str, str] = {}
        for name, value in attributes.items():
            if not isinstance(name, str) or not name.strip():
                raise InvalidInputError(f"{where}: attribute names must be non-empty strings")
            if len(name) > MAX_NAME_LENGTH:
                raise InvalidInputError(
                    f"{where}: an attribute name is longer than {MAX_NAME_LENGTH} characters"
                )
            text = None if isinstance(value, float) else attribute_text(value)
            if text is None:
                kind = "null" if value is None else type(value).__name__
                raise InvalidInputError(
                    f"{where}: attribute {name!r} must be a string, integer or bool, not {kind}"
                )
            if len(text) > MAX_VALUE_LENGTH:
                raise InvalidInputError(
                    f"{where}: attribute {name!r} is longer than {MAX_VALUE_LENGTH} characters"
                )
            checked[name] = text
        merged = distinct.setdefault(request_id, {})
        merged.update(checked)
        if len(merged) > MAX_ATTRIBUTES:
            raise InvalidInputError(
                f"{where}: request {request_id!r} has more than {MAX_ATTRIBUTES} attributes"
            )
    return distinct


def record_attributes(
    session: Session, records: Sequence[AttributeRecord], actor: str
) -> AttributeWriteResult:
    """Store ``records`` in the caller's transaction, merged into the stored attributes of
    each request id, and audit the call once (counts only, never values)."""
    actor = actor.strip() if isinstance(actor, str) else ""
    if not actor or len(actor) > MAX_ACTOR_LENGTH:
        raise InvalidInputError(f"the actor must be 1 to {MAX_ACTOR_LENGTH} characters")
    distinct = validate_attributes(records)
    if not distinct:
        return AttributeWriteResult(stored=0)

    logged: set[str] = set()
    stored: dict[str, dict[str, str]] = {}
    for chunk in _chunks(list(distinct), LOOKUP_CHUNK):
        query = (
            select(PredictionRow.request_id, PredictionAttributeRow.attributes)
            .outerjoin(
                PredictionAttributeRow,
                PredictionAttributeRow.request_id == PredictionRow.request_id,
            )
            .where(PredictionRow.request_id.in_(chunk))
        )
        for request_id, attributes in session.execute(query):
            logged.add(request_id)
            if attributes is not None:
                stored[request_id] = dict(attributes)

    now = utcnow()
    writes: list[dict[str, Any]] = []
    unknown: list[str] = []
    for request_id, attributes in distinct.items():
        if request_id not in logged:
            unknown.append(request_id)
            continue
        merged = {**stored.get(request_id, {}), **attributes}
        if len(merged) > MAX_ATTRIBUTES:
            raise InvalidInputError(
                f"request {request_id!r} would have {len(merged)} attributes; "
                f"at most {MAX_ATTRIBUTES} are kept"
            )
        writes.append(
            {
                "request_id": request_id,
                "attributes": merged,
                "recorded_at": now,
                "submitted_by": actor,
            }
        )
    if writes:
        session.execute(_upsert(session), writes)
    record_audit(
        session,
        actor=actor,
        action=AUDIT_ACTION,
        target=AUDIT_TARGET,
        details={
            "received": len(distinct),
            "stored": len(writes),
            "unknown": len(unknown),
            "names": sorted({name for attrs in distinct.values() for name in attrs}),
        },
    )
    return AttributeWriteResult(stored=len(writes), unknown=unknown)


def get_attributes(session: Session, request_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """The stored attributes of ``request_ids`` (ids without any are left out)."""
    found: dict[str, dict[str, str]] = {}
    for chunk in _chunks(list(dict.fromkeys(request_ids)), LOOKUP_CHUNK):
        query = select(PredictionAttributeRow.request_id, PredictionAttributeRow.attributes).where(
            PredictionAttributeRow.request_id.in_(chunk)
        )
        for request_id, attributes in session.execute(query):
            found[request_id] = {str(k): str(v) for k, v in (attributes or {}).items()}
    return found


def _upsert(session: Session) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(PredictionAttributeRow)
    elif dialect == "sqlite":
        stmt = sqlite.insert(PredictionAttributeRow)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported backends
        raise NotImplementedError(f"prediction attributes not supported on {dialect}")
    return stmt.on_conflict_do_update(
        index_elements=["request_id"],
        set_={
            "attributes": stmt.excluded.attributes,
            "recorded_at": stmt.excluded.recorded_at,
            "submitted_by": stmt.excluded.submitted_by,
        },
    )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
