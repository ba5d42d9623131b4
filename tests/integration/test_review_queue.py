"""The human review queue on real databases (SQLite and PostgreSQL): enqueueing is idempotent
and stores only what a reviewer may see (PII redacted, hazard spans moved onto the redacted
text, never a blocked text), the whole lifecycle (claim, approve, reject, appeal, decide again)
with one audit entry per mutation naming the item and never the text, lapsed claims, the
oldest-first ``claim_next`` never handing one item to two racing reviewers, and the labelled
export."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from keelwatch.entities.moderation import ReviewStatus
from keelwatch.entities.time import utcnow
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import ModerationResult, Moderator
from keelwatch.monitoring.moderation.policy import Decision, ModerationPolicy
from keelwatch.monitoring.moderation.rules import Blocklist, RuleFilter
from keelwatch.monitoring.service.review_queue import (
    appeal_review_item,
    claim_next_review_item,
    claim_review_item,
    decide_review_item,
    enqueue_review,
    export_labelled,
    get_review_item,
    list_review_items,
    review_counts,
)
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database

pytestmark = pytest.mark.integration

#: Violence goes to review at 0.5 and is never blocked; "ransom" is blocked outright.
MODERATOR = Moderator(
    [
        RuleFilter(
            [
                Blocklist(Category.VIOLENCE, keywords=("stab", "shoot")),
                Blocklist(Category.ILLICIT, keywords=("ransom",)),
            ]
        ),
        PiiDetector(),
    ],
    ModerationPolicy.from_overrides(
        {"violence": {"review": 0.5, "block": None}, "illicit": {"block": 0.5}}
    ),
)
THREAT = "Mail bob@example.com or I will stab you"
NOW = utcnow().replace(microsecond=0)


def _enqueue(db: Database, key: str, text: str = THREAT, *, model: str = "chat", at=NOW):
    result = MODERATOR.moderate(text)
    with db.session() as session:
        return enqueue_review(
            session,
            source_key=key,
            model_name=model,
            model_version="3",
            direction="output",
            text=text,
            result=result,
            now=at,
        )


def test_enqueue_is_idempotent_and_stores_the_reviewers_view(database: Database) -> None:
    result = MODERATOR.moderate(THREAT)
    assert result.decision is Decision.REVIEW
    item = _enqueue(database, "job:1:0:completion")
    assert item is not None
    assert _enqueue(database, "job:1:0:completion") is None
    assert item.status is ReviewStatus.PENDING
    assert item.text == "Mail [EMAIL] or I will stab you"
    assert "bob@example.com" not in item.text
    (finding,) = item.findings
    assert (finding.category, item.text[finding.start : finding.end]) == ("violence", "stab")
    assert item.categories == ("violence", "pii")
    assert item.reasons[0].startswith("violence 1.00 (rules:")
    with database.session() as session:
        assert list_review_items(session)[0] == [item]
        assert review_counts(session)["pending"] == 1


def test_blocked_and_failed_closed_texts(database: Database) -> None:
    blocked = MODERATOR.moderate("pay the ransom")
    assert blocked.decision is Decision.BLOCK
    with database.session() as session, pytest.raises(InvalidInputError, match="blocked"):
        enqueue_review(
            session,
            source_key="api:blocked",
            model_name="chat",
            model_version="3",
            direction="input",
            text="pay the ransom",
            result=blocked,
            now=NOW,
        )
    failed = ModerationResult(Decision.REVIEW, (), "", error="filter RuleFilter failed (KeyError)")
    texts = {
        "api:ok": "call +1 415 555 0100 now",
        "api:nul": "binary\x00data",
        "api:long": "x" * 30,
    }
    with database.session() as session:
        stored = {
            key: enqueue_review(
                session,
                source_key=key,
                model_name="chat",
                model_version="3",
                direction="input",
                text=text,
                result=failed,
                now=NOW,
                max_chars=25,
            )
            for key, text in texts.items()
        }
        assert review_counts(session)["pending"] == 3
    assert stored["api:ok"] is not None
    assert stored["api:ok"].text == "call [PHONE] now"
    assert stored["api:ok"].reasons == ("not moderated: filter RuleFilter failed (KeyError)",)
    assert stored["api:nul"] is not None
    assert stored["api:nul"].text == ""
    assert stored["api:long"] is not None
    assert stored["api:long"].text == ""


def test_bad_enqueue_input_is_refused(database: Database) -> None:
    result = MODERATOR.moderate(THREAT)
    with database.session() as session:
        for field, value in (("source_key", ""), ("direction", "sideways"), ("model_name", " ")):
            kwargs: dict[str, Any] = {
                "source_key": "k",
                "model_name": "chat",
                "model_version": "1",
                "direction": "input",
                field: value,
            }
            with pytest.raises(InvalidInputError):
                enqueue_review(session, text=THREAT, result=result, now=NOW, **kwargs)


def test_full_lifecycle_is_audited(database: Database) -> None:
    item = _enqueue(database, "job:2:0:completion")
    assert item is not None
    with database.session() as session:
        claimed = claim_review_item(session, item.id, reviewer="alice", now=NOW)
        assert (claimed.status, claimed.claimed_by) == (ReviewStatus.CLAIMED, "alice")
    with database.session() as session, pytest.raises(ConflictError, match="claimed by alice"):
        claim_review_item(session, item.id, reviewer="bob", now=NOW)
    with database.session() as session, pytest.raises(ConflictError, match="claimed by alice"):
        decide_review_item(
            session, item.id, reviewer="bob", verdict="approve", reason="fine", now=NOW
        )
    with database.session() as session:
        approved = decide_review_item(
            session,
            item.id,
            reviewer="alice",
            verdict="approve",
            reason="a quote from a film",
            now=NOW + timedelta(seconds=5),
        )
    assert approved.status is ReviewStatus.APPROVED
    assert (approved.decided_by, approved.decision_reason) == ("alice", "a quote from a film")
    assert approved.labels == ()
    assert approved.claimed_by is None
    with database.session() as session, pytest.raises(ConflictError, match="already approved"):
        claim_review_item(session, item.id, reviewer="bob", now=NOW)
    with database.session() as session, pytest.raises(ConflictError, match="approved, not"):
        decide_review_item(
            session, item.id, reviewer="alice", verdict="reject", reason="x", now=NOW
        )
    with database.session() as session:
        appealed = appeal_review_item(
            session, item.id, actor="carol", reason="it is a threat", now=NOW
        )
    assert (appealed.status, appealed.appealed_by) == (ReviewStatus.APPEALED, "carol")
    with database.session() as session, pytest.raises(ConflictError, match="appealed"):
        appeal_review_item(session, item.id, actor="carol", reason="again", now=NOW)
    # The reviewer whose decision is appealed does not decide the appeal.
    with database.session() as session:
        with pytest.raises(ConflictError, match="own decision"):
            claim_review_item(session, item.id, reviewer="alice", now=NOW)
        assert claim_next_review_item(session, reviewer="alice", now=NOW) is None
    with database.session() as session:
        again = claim_next_review_item(session, reviewer="bob", now=NOW)
        assert again is not None
        assert again.id == item.id
        with pytest.raises(InvalidInputError, match="unknown category"):
            decide_review_item(
                session,
                item.id,
                reviewer="bob",
                verdict="reject",
                reason="threat",
                labels=["violent-ish"],
                now=NOW,
            )
    with database.session() as session:
        rejected = decide_review_item(
            session,
            item.id,
            reviewer="bob",
            verdict="reject",
            reason="a real threat",
            labels=["Violence", "harassment/threatening"],
            now=NOW + timedelta(seconds=9),
        )
    assert rejected.status is ReviewStatus.REJECTED
    assert rejected.labels == ("violence", "harassment")
    with database.session() as session:
        entries = [e for e in list_audit(session, limit=50) if e.action.startswith("review.")]
    entries.reverse()
    assert [(e.action, e.actor, e.reason) for e in entries] == [
        ("review.claim", "alice", ""),
        ("review.approve", "alice", "a quote from a film"),
        ("review.appeal", "carol", "it is a threat"),
        ("review.claim", "bob", ""),
        ("review.reject", "bob", "a real threat"),
    ]
    for entry in entries:
        assert entry.target == f"review_item:{item.id}"
        assert "stab" not in repr(entry)
    assert entries[-1].details["labels"] == ["violence", "harassment"]


def test_unknown_items_and_bad_input(database: Database) -> None:
    with database.session() as session:
        with pytest.raises(NotFoundError, match="no review item 999"):
            get_review_item(session, 999)
        with pytest.raises(NotFoundError):
            claim_review_item(session, 999, reviewer="alice", now=NOW)
        with pytest.raises(NotFoundError):
            decide_review_item(
                session, 999, reviewer="alice", verdict="reject", reason="x", now=NOW
            )
        with pytest.raises(NotFoundError):
            appeal_review_item(session, 999, actor="alice", reason="x", now=NOW)
        with pytest.raises(InvalidInputError, match="reason"):
            appeal_review_item(session, 999, actor="alice", reason=" ", now=NOW)
        with pytest.raises(InvalidInputError, match="cursor"):
            list_review_items(session, cursor="abc")
        with pytest.raises(InvalidInputError, match="limit"):
            list_review_items(session, limit=0)
    item = _enqueue(database, "api:x")
    assert item is not None
    with database.session() as session:
        claim_review_item(session, item.id, reviewer="alice", now=NOW)
        with pytest.raises(InvalidInputError, match="rejection only"):
            decide_review_item(
                session,
                item.id,
                reviewer="alice",
                verdict="approve",
                reason="ok",
                labels=["violence"],
                now=NOW,
            )


def test_a_lapsed_claim_returns_to_the_queue(database: Database) -> None:
    item = _enqueue(database, "job:3:0:completion")
    assert item is not None
    with database.session() as session:
        claim_review_item(session, item.id, reviewer="alice", now=NOW, claim_timeout_s=60)
    with database.session() as session:
        with pytest.raises(ConflictError, match="claimed by alice"):
            claim_review_item(
                session,
                item.id,
                reviewer="bob",
                now=NOW + timedelta(seconds=59),
                claim_timeout_s=60,
            )
        assert (
            claim_next_review_item(
                session, reviewer="bob", now=NOW + timedelta(seconds=59), claim_timeout_s=60
            )
            is None
        )
    with database.session() as session:
        taken = claim_next_review_item(
            session, reviewer="bob", now=NOW + timedelta(seconds=60), claim_timeout_s=60
        )
    assert taken is not None
    assert (taken.id, taken.claimed_by) == (item.id, "bob")
    with database.session() as session, pytest.raises(ConflictError, match="claimed by bob"):
        decide_review_item(
            session, item.id, reviewer="alice", verdict="approve", reason="late", now=NOW
        )


def test_list_pages_filters_and_claim_next_order(database: Database) -> None:
    ids = []
    for i in range(5):
        item = _enqueue(database, f"dataset:d:{i}", model="chat" if i % 2 else "summarizer")
        assert item is not None
        ids.append(item.id)
    with database.session() as session:
        first, cursor = list_review_items(session, limit=2)
        assert [i.id for i in first] == ids[:2]
        assert cursor is not None
        second, cursor = list_review_items(session, limit=2, cursor=cursor)
        third, last = list_review_items(session, limit=2, cursor=cursor)
        assert [i.id for i in second + third] == ids[2:]
        assert last is None
        chats, _ = list_review_items(session, model_name="chat")
        assert [i.id for i in chats] == [ids[1], ids[3]]
        nxt = claim_next_review_item(session, reviewer="alice", now=NOW, model_name="chat")
        assert nxt is not None
        assert nxt.id == ids[1]
        # Her own live claim comes back first (the oldest she may take).
        assert claim_next_review_item(session, reviewer="alice", now=NOW).id == ids[0]  # type: ignore[union-attr]
        claimed, _ = list_review_items(session, status=ReviewStatus.CLAIMED)
        assert [i.id for i in claimed] == [ids[0], ids[1]]
        assert list_review_items(session, claimed_by="alice")[0] == claimed
        assert list_review_items(session, claimed_by="bob")[0] == []
        assert review_counts(session) == {
            "pending": 3,
            "claimed": 2,
            "approved": 0,
            "rejected": 0,
            "appealed": 0,
        }


def test_racing_reviewers_never_share_an_item(database: Database) -> None:
    """Eight reviewers, each in its own thread and transaction, drain 40 items with
    claim_next: every item is claimed exactly once."""
    with database.session() as session:
        for i in range(40):
            enqueue_review(
                session,
                source_key=f"race:{i}",
                model_name="chat",
                model_version="1",
                direction="output",
                text=THREAT,
                result=MODERATOR.moderate(THREAT),
                now=NOW,
            )
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def reviewer(name: str) -> None:
        mine: list[int] = []
        try:
            start.wait()
            while True:
                with database.session() as session:
                    item = claim_next_review_item(session, reviewer=name, now=NOW)
                    if item is None:
                        break
                    # Decide it, so her own claim is not handed back to her next time.
                    decide_review_item(
                        session, item.id, reviewer=name, verdict="approve", reason="ok", now=NOW
                    )
                mine.append(item.id)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        taken[name] = mine

    threads = [threading.Thread(target=reviewer, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    claimed = [item_id for ids in taken.values() for item_id in ids]
    assert len(claimed) == 40
    assert len(set(claimed)) == 40
    with database.session() as session:
        assert review_counts(session)["approved"] == 40
        claims = list_audit(session, action="review.claim", limit=100)
    assert len(claims) == 40


def test_export_labelled(database: Database) -> None:
    items = [_enqueue(database, f"api:e{i}") for i in range(3)]
    assert all(items)
    with database.session() as session:
        for item, verdict in zip(items[:2], ("approve", "reject"), strict=True):
            assert item is not None
            claim_review_item(session, item.id, reviewer="alice", now=NOW)
            decide_review_item(
                session,
                item.id,
                reviewer="alice",
                verdict=verdict,  # type: ignore[arg-type]
                reason="checked",
                now=NOW + timedelta(minutes=1),
            )
    with database.session() as session:
        rows = list(export_labelled(session))
        assert list(export_labelled(session, since=NOW + timedelta(minutes=2))) == []
        assert list(export_labelled(session, model_name="other")) == []
    assert [r["label"] for r in rows] == ["acceptable", "harmful"]
    assert rows[1] == {
        "text": "Mail [EMAIL] or I will stab you",
        "label": "harmful",
        "categories": ["violence", "pii"],
        "model_name": "chat",
        "model_version": "3",
        "direction": "output",
        "reviewer": "alice",
        "decided_at": (NOW + timedelta(minutes=1)).isoformat(),
        "item_id": items[1].id,
    }
