"""Ground-truth labels on logged predictions (``keelwatch.storage.labels``), on SQLite and
PostgreSQL: idempotent upserts, latest label wins, unknown request ids reported and not stored,
the join the drift monitors read, one audit entry per call, and a full 10,000-label call."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from keelwatch.entities import LabelRecord, PredictionRecord
from keelwatch.errors import InvalidInputError
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.labels import (
    MAX_LABELS_PER_CALL,
    get_labels,
    labelled_predictions,
    labels_for_request_ids,
    record_labels,
)
from keelwatch.storage.models import PredictionLabelRow, PredictionRow
from keelwatch.storage.predictions import bulk_write_predictions, insert_predictions

pytestmark = pytest.mark.integration

START = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
#: (request id, model, version) of the rows the ``logged`` fixture writes, in id order.
ROWS = [
    ("r0", "churn", "1"),
    ("r1", "churn", "1"),
    ("r2", "churn", "2"),
    ("r3", "churn", "1"),
    ("r4", "fraud", "1"),
    ("r5", "churn", "1"),
]


def prediction(request_id: str, model: str, version: str, i: int) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        model_name=model,
        model_version=version,
        inputs={"x": float(i)},
        outputs={"p": i / 10},
        latency_ms=1.0,
        created_at=START + timedelta(minutes=i),
    )


@pytest.fixture
def logged(database: Database) -> dict[str, int]:
    """Six logged predictions; returns request id → prediction_log id."""
    with database.session() as session:
        insert_predictions(
            session, [prediction(rid, m, v, i) for i, (rid, m, v) in enumerate(ROWS)]
        )
        return dict(session.execute(select(PredictionRow.request_id, PredictionRow.id)).all())


def record_raw(database: Database, labels: list[LabelRecord], actor: str = "ana") -> Any:
    with database.session() as session:
        return record_labels(session, labels, actor)


def record(database: Database, labels: dict[str, Any], actor: str = "ana") -> Any:
    return record_raw(database, [LabelRecord(rid, label) for rid, label in labels.items()], actor)


def stored(database: Database) -> dict[str, Any]:
    with database.session() as session:
        return get_labels(session, [rid for rid, *_ in ROWS])


def label_rows(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(PredictionLabelRow)) or 0)


# --------------------------------------------------------------------------- writes


def test_same_labels_twice_change_nothing(database: Database, logged: dict[str, int]) -> None:
    first = record(database, {"r0": 1, "r1": 0, "r2": 1})
    assert (first.inserted, first.updated, first.unchanged, first.unknown) == (3, 0, 0, ())
    before = stored(database)

    again = record(database, {"r0": 1, "r1": 0, "r2": 1}, actor="bo")
    assert (again.inserted, again.updated, again.unchanged, again.unknown) == (0, 0, 3, ())
    # Unchanged means untouched: same time, same submitter.
    assert stored(database) == before
    assert {label.submitted_by for label in before.values()} == {"ana"}
    assert label_rows(database) == 3


def test_a_different_label_replaces_the_stored_one(
    database: Database, logged: dict[str, int]
) -> None:
    record(database, {"r0": 1, "r1": "cat", "r2": True, "r3": 2})
    before = stored(database)

    # 1.0 is the number 1 (JSON has no int/float split); True is not 1; "2" is not 2.
    result = record(database, {"r0": 1.0, "r1": "dog", "r2": 1, "r3": "2"}, actor="bo")
    assert (result.inserted, result.updated, result.unchanged) == (0, 3, 1)

    after = stored(database)
    assert after["r0"] == before["r0"]
    assert after["r1"].label == "dog"
    assert after["r2"].label == 1
    assert not isinstance(after["r2"].label, bool)
    assert after["r3"].label == "2"
    for rid in ("r1", "r2", "r3"):
        assert after[rid].submitted_by == "bo"
        assert after[rid].labelled_at >= before[rid].labelled_at
        assert after[rid].labelled_at.tzinfo is not None
    assert label_rows(database) == 4


def test_label_types_round_trip(database: Database, logged: dict[str, int]) -> None:
    labels = {"r0": True, "r1": False, "r2": 3, "r3": 0.25, "r4": "spam", "r5": -7.0}
    record(database, labels)
    with database.session() as session:
        found = labels_for_request_ids(session, [*labels, "r-none"])
    assert found == labels
    # Bools stay bools and strings strings. Numbers stay numbers: SQLite's JSON column has
    # numeric affinity and hands -7.0 back as -7, the same JSON number.
    for rid, value in labels.items():
        assert isinstance(found[rid], bool) == isinstance(value, bool), rid
        assert isinstance(found[rid], str) == isinstance(value, str), rid
    assert type(found["r3"]) is float


def test_unknown_request_ids_are_reported_not_stored(
    database: Database, logged: dict[str, int]
) -> None:
    result = record(database, {"r0": 1, "never-logged": 0, "r1": 1, "sampled-out": 1})
    assert (result.inserted, result.updated, result.unchanged) == (2, 0, 0)
    assert result.unknown == ("never-logged", "sampled-out")
    assert result.received == 4
    assert label_rows(database) == 2
    with database.session() as session:
        assert labels_for_request_ids(session, ["never-logged", "sampled-out"]) == {}


def test_an_id_twice_in_one_call(database: Database, logged: dict[str, int]) -> None:
    # The same label twice counts once.
    result = record_raw(database, [LabelRecord("r0", 1), LabelRecord("r0", 1.0)])
    assert (result.inserted, result.received) == (1, 1)

    # Different labels: which one was meant is unknowable, so nothing of the call is written.
    with pytest.raises(InvalidInputError, match=r"'r1' appears twice with different labels"):
        record_raw(database, [LabelRecord("r2", 1), LabelRecord("r1", 0), LabelRecord("r1", 1)])
    with pytest.raises(InvalidInputError, match="'r3' appears twice"):
        record_raw(database, [LabelRecord("r3", 1), LabelRecord("r3", True)])
    assert label_rows(database) == 1


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (math.nan, "must be finite"),
        (math.inf, "must be finite"),
        (-math.inf, "must be finite"),
        (None, "not null"),
        ([1, 0], "not list"),
        ({"class": 1}, "not dict"),
    ],
)
def test_labels_must_be_json_scalars(
    database: Database, logged: dict[str, int], label: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        record_raw(database, [LabelRecord("r0", 1), LabelRecord("r1", label)])
    assert label_rows(database) == 0  # the valid label of the same call is not written either


@pytest.mark.parametrize(
    ("request_id", "message"),
    [("", "non-empty"), ("x" * 129, "longer than 128")],
)
def test_request_ids_are_checked(database: Database, request_id: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        record_raw(database, [LabelRecord(request_id, 1)])


def test_an_actor_is_required(database: Database, logged: dict[str, int]) -> None:
    with database.session() as session, pytest.raises(InvalidInputError, match="actor"):
        record_labels(session, [LabelRecord("r0", 1)], "  ")


def test_one_audit_entry_per_call_with_the_counts(
    database: Database, logged: dict[str, int]
) -> None:
    record(database, {"r0": 1, "r1": 0})
    record(database, {"r0": 1, "r1": 1, "r2": 0, "ghost": 1}, actor="bo")
    with database.session() as session:
        entries = list_audit(session, action="labels.record")
    assert [(e.actor, e.target) for e in entries] == [
        ("bo", "prediction_labels"),
        ("ana", "prediction_labels"),
    ]
    assert entries[0].details == {
        "received": 4,
        "inserted": 1,
        "updated": 1,
        "unchanged": 1,
        "unknown": 1,
    }
    # An empty call does nothing, not even an audit entry.
    with database.session() as session:
        assert record_labels(session, [], "ana").received == 0
        assert len(list_audit(session, action="labels.record")) == 2


# --------------------------------------------------------------------------- reads


def test_labelled_predictions_join_an_inclusive_id_range_of_one_version(
    database: Database, logged: dict[str, int]
) -> None:
    record(database, {"r0": 1, "r1": 0, "r2": 1, "r4": 1, "r5": 0})  # r3 has no label yet
    ids = logged
    with database.session() as session:
        everything = labelled_predictions(
            session, model_name="churn", model_version="1", id_start=ids["r0"], id_stop=ids["r5"]
        )
        inner = labelled_predictions(
            session, model_name="churn", model_version="1", id_start=ids["r1"], id_stop=ids["r3"]
        )
        other_version = labelled_predictions(
            session, model_name="churn", model_version="2", id_start=ids["r0"], id_stop=ids["r5"]
        )
        nothing = labelled_predictions(
            session, model_name="fraud", model_version="1", id_start=ids["r5"], id_stop=ids["r5"]
        )
    # churn v1 rows with a label: r0, r1, r5 (r2 is v2, r3 unlabelled, r4 another model).
    assert [row.id for row in everything] == [ids["r0"], ids["r1"], ids["r5"]]
    assert everything[0] == (ids["r0"], {"x": 0.0}, {"p": 0.0}, 1)
    row_id, inputs, outputs, label = everything[-1]  # plain tuples unpack
    assert (row_id, inputs, outputs, label) == (ids["r5"], {"x": 5.0}, {"p": 0.5}, 0)
    # Both bounds are inclusive: r1..r3 holds r1 (labelled) and r3 (not yet).
    assert [row.id for row in inner] == [ids["r1"]]
    assert [(row.id, row.label) for row in other_version] == [(ids["r2"], 1)]
    assert nothing == []

    # A label that arrives later shows up in the same range.
    record(database, {"r3": 1})
    with database.session() as session:
        inner = labelled_predictions(
            session, model_name="churn", model_version="1", id_start=ids["r1"], id_stop=ids["r3"]
        )
    assert [(row.id, row.label) for row in inner] == [(ids["r1"], 0), (ids["r3"], 1)]


def test_ten_thousand_labels_in_one_call(database: Database) -> None:
    count = MAX_LABELS_PER_CALL
    records = [
        PredictionRecord(
            request_id=f"req-{i:05d}",
            model_name="churn",
            model_version="1",
            inputs={"x": i},
            outputs={"p": i % 2},
            latency_ms=0.1,
            created_at=START,
        )
        for i in range(count - 10)  # the last ten ids were sampled out of the log
    ]
    assert bulk_write_predictions(database.engine, records) == count - 10

    labels = [LabelRecord(f"req-{i:05d}", i % 2) for i in range(count)]
    started = time.perf_counter()
    with database.session() as session:
        first = record_labels(session, labels, "bulk")
    first_s = time.perf_counter() - started
    assert (first.inserted, first.updated, first.unchanged) == (count - 10, 0, 0)
    assert first.unknown == tuple(f"req-{i:05d}" for i in range(count - 10, count))
    assert label_rows(database) == count - 10

    # Flip every fourth label (2,498 of them logged), resend the rest unchanged.
    relabel = [LabelRecord(f"req-{i:05d}", (i + (i % 4 == 0)) % 2) for i in range(count)]
    with database.session() as session:
        second = record_labels(session, relabel, "bulk")
    assert (second.inserted, second.updated, second.unchanged) == (0, 2_498, count - 10 - 2_498)
    assert len(second.unknown) == 10
    with database.session() as session:
        window = labelled_predictions(
            session, model_name="churn", model_version="1", id_start=0, id_stop=2**62
        )
    assert len(window) == count - 10
    assert [row.label for row in window[:4]] == [1, 1, 0, 1]
    # Generous bound: one call is a handful of batched queries, not one per label.
    assert first_s < 30, f"10,000 labels took {first_s:.1f}s"
