"""Sensitive attributes of logged predictions on SQLite and PostgreSQL: only logged request ids
are stored (the others are reported unknown), a second call merges names (the latest value
wins), values are kept as text, bad input is refused naming its position and never a value,
and every call is audited with counts only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keelwatch.entities import PredictionRecord
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.storage.attributes import (
    MAX_ATTRIBUTES,
    AttributeRecord,
    AttributeWriteResult,
    get_attributes,
    record_attributes,
)
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.predictions import insert_predictions

pytestmark = pytest.mark.integration


def log(database: Database, *request_ids: str) -> None:
    now = utcnow()
    with database.session() as session:
        insert_predictions(
            session,
            [
                PredictionRecord(
                    request_id=request_id,
                    model_name="credit",
                    model_version="1",
                    inputs={"income": 1.0},
                    outputs={"prediction": 1},
                    latency_ms=1.0,
                    created_at=now - timedelta(seconds=i),
                )
                for i, request_id in enumerate(request_ids)
            ],
        )


def test_logged_ids_are_stored_unknown_ids_reported_and_a_second_call_merges(
    database: Database,
) -> None:
    log(database, "r1", "r2", "r3")
    with database.session() as session:
        first = record_attributes(
            session,
            [
                AttributeRecord("r1", {"gender": "f", "age_band": "18-29"}),
                AttributeRecord("r2", {"gender": "m", "veteran": True, "region": 3}),
                AttributeRecord("nope", {"gender": "f"}),
            ],
            "hr-system",
        )
    assert first == AttributeWriteResult(stored=2, unknown=["nope"])
    with database.session() as session:
        second = record_attributes(
            session,
            [
                AttributeRecord("r1", {"gender": "x"}),  # replaces one name, keeps the other
                AttributeRecord("r1", {"disability": False}),  # same id twice: merged in order
            ],
            "hr-system",
        )
        stored = get_attributes(session, ["r1", "r2", "r3", "nope", "r1"])
        entries = list_audit(session, action="attributes.record")
    assert second == AttributeWriteResult(stored=1, unknown=[])
    assert stored == {
        "r1": {"gender": "x", "age_band": "18-29", "disability": "false"},
        "r2": {"gender": "m", "veteran": "true", "region": "3"},
    }
    assert [e.details for e in reversed(entries)] == [
        {
            "received": 3,
            "stored": 2,
            "unknown": 1,
            "names": ["age_band", "gender", "region", "veteran"],
        },
        {"received": 1, "stored": 1, "unknown": 0, "names": ["disability", "gender"]},
    ]
    assert {e.actor for e in entries} == {"hr-system"}
    # No value ever reaches the audit log.
    assert "18-29" not in repr([e.details for e in entries])


def test_many_ids_are_looked_up_in_chunks(database: Database) -> None:
    ids = [f"req-{i}" for i in range(4_500)]  # more than two lookup chunks
    log(database, *ids)
    records = [AttributeRecord(rid, {"group": str(i % 3)}) for i, rid in enumerate(ids)]
    with database.session() as session:
        result = record_attributes(session, [*records, AttributeRecord("gone", {"g": "1"})], "a")
        stored = get_attributes(session, ids)
    assert result == AttributeWriteResult(stored=4_500, unknown=["gone"])
    assert len(stored) == 4_500 and stored["req-4499"] == {"group": str(4499 % 3)}


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([AttributeRecord("", {"g": "1"})], r"attributes\[0\]: request_id"),
        ([AttributeRecord("r" * 129, {"g": "1"})], r"attributes\[0\]: request_id is longer"),
        ([AttributeRecord("r1", {})], r"attributes\[0\]: attributes must map"),
        (
            [AttributeRecord("r1", {"g": "1"}), AttributeRecord("r1", {"": "1"})],
            r"attributes\[1\]: attribute names must be non-empty",
        ),
        ([AttributeRecord("r1", {"n" * 65: "1"})], r"attributes\[0\]: an attribute name is longer"),
        (
            [AttributeRecord("r1", {"age": 30.5})],  # type: ignore[dict-item]
            r"attributes\[0\]: attribute 'age' must be a string, integer or bool, not float",
        ),
        (
            [AttributeRecord("r1", {"age": None})],  # type: ignore[dict-item]
            r"attribute 'age' must be a string, integer or bool, not null",
        ),
        (
            [AttributeRecord("r1", {"bio": "secret " * 40})],
            r"attributes\[0\]: attribute 'bio' is longer than 256",
        ),
        (
            [AttributeRecord("r1", {f"a{i}": "1" for i in range(MAX_ATTRIBUTES + 1)})],
            rf"attributes\[0\]: {MAX_ATTRIBUTES + 1} attributes",
        ),
    ],
)
def test_bad_records_are_refused_naming_the_position_and_nothing_is_written(
    database: Database, records: list[AttributeRecord], message: str
) -> None:
    log(database, "r1")
    with (
        pytest.raises(InvalidInputError, match=message) as raised,
        database.session() as session,
    ):
        record_attributes(session, records, "hr-system")
    assert "secret" not in str(raised.value)
    with database.session() as session:
        assert get_attributes(session, ["r1"]) == {}
        assert list_audit(session, action="attributes.record") == []


def test_a_merge_beyond_the_limit_is_refused(database: Database) -> None:
    log(database, "r1")
    with database.session() as session:
        record_attributes(
            session, [AttributeRecord("r1", {f"a{i}": "1" for i in range(MAX_ATTRIBUTES)})], "a"
        )
    with (
        pytest.raises(InvalidInputError, match=f"at most {MAX_ATTRIBUTES}"),
        database.session() as session,
    ):
        record_attributes(session, [AttributeRecord("r1", {"one-more": "1"})], "a")
    with pytest.raises(InvalidInputError, match="actor"), database.session() as session:
        record_attributes(session, [AttributeRecord("r1", {"a0": "2"})], "  ")
    with database.session() as session:
        assert get_attributes(session, ["r1"])["r1"]["a0"] == "1"
