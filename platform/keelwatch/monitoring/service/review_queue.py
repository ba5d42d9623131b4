"""The human review queue: texts the moderation pipeline sent to ``review``, claimed, approved
or rejected by a person, appealed, and exported as labelled data for retraining.

What the inference path and batch tasks (``enqueue_review``), the API's ``/review/items``, the
review page and ``keelwatch review`` call. Every function takes the caller's session and never
commits. Each claim, approval, rejection and appeal writes an audit entry (``review.claim``,
``review.approve``, ``review.reject``, ``review.appeal``) naming the item id, never its text.

Lifecycle (see :class:`~keelwatch.entities.moderation.ReviewStatus`): pending → claimed (one
reviewer) → approved (the text is acceptable) | rejected (harmful); a decided item may be
appealed, which puts it back in the queue. A claim not decided within ``claim_timeout_s``
lapses: another reviewer may claim it (the holder may still decide it until then). An appealed
item cannot be claimed by the reviewer whose decision was appealed (their earlier decisions
stay in the audit log; only the latest decider is excluded).

What is stored is what a reviewer may see (:func:`review_view`): PII replaced by typed
placeholders, hazard spans in clear. A blocked text is never queued.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from keelwatch.entities.moderation import ReviewItem, ReviewStatus
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.monitoring.moderation.findings import Category, Finding, parse_category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import (
    DEFAULT_MAX_CHARS,
    ModerationResult,
    review_view,
)
from keelwatch.monitoring.moderation.policy import Decision
from keelwatch.monitoring.moderation.redaction import redact
from keelwatch.storage import review_items as store
from keelwatch.storage.audit import record_audit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Default of ``settings.moderation.review_min_claim_s`` (callers pass the setting).
DEFAULT_CLAIM_TIMEOUT_S = 900.0
DIRECTIONS = ("input", "output", "text")
MAX_SOURCE_KEY = 512
MAX_REASON = 2_000
MAX_LABELS = 16
MAX_LIST_LIMIT = 1_000
VERDICT_STATUS = {"approve": ReviewStatus.APPROVED, "reject": ReviewStatus.REJECTED}
EXPORT_LABEL = {ReviewStatus.APPROVED: "acceptable", ReviewStatus.REJECTED: "harmful"}


def enqueue_review(
    session: Session,
    *,
    source_key: str,
    model_name: str,
    model_version: str,
    direction: str,
    text: str,
    result: ModerationResult,
    now: datetime,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> ReviewItem | None:
    """Queue ``text`` (with its moderation ``result``) for a person; the new item, or None
    when ``source_key`` was queued before (idempotent: a redelivered task queues nothing).

    Stores ``review_view(text, result.findings)``. A failed-closed result (``result.error``)
    stores the text with its PII redacted when it is a str of at most ``max_chars`` characters
    that can be stored (valid Unicode, no NUL), else ``""``, and the error in ``reasons``.
    InvalidInputError for a blocked result (never stored) and for bad keys or names.
    """
    _check_name("source_key", source_key, MAX_SOURCE_KEY)
    _check_name("model_name", model_name, 255)
    _check_name("model_version", model_version, 64)
    if direction not in DIRECTIONS:
        raise InvalidInputError(f"direction must be one of {', '.join(DIRECTIONS)}")
    if result.decision is Decision.BLOCK:
        raise InvalidInputError(
            f"a blocked text is never queued for review (source {source_key[:80]!r})"
        )
    findings: tuple[Finding, ...] = ()
    if result.error:
        shown = _failed_closed_text(text, max_chars)
        reasons = [f"not moderated: {result.error}"]
    else:
        shown, findings = review_view(text, result.findings)
        reasons = _reasons(result)
    return store.insert_item(
        session,
        store.NewReviewItem(
            source_key=source_key,
            model_name=model_name,
            model_version=model_version,
            direction=direction,
            text=shown,
            findings=[_finding_dict(f) for f in findings],
            categories=[c.value for c in result.categories],
            reasons=reasons,
            created_at=now,
        ),
    )


def list_review_items(
    session: Session,
    *,
    status: ReviewStatus | None = None,
    model_name: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    claimed_by: str | None = None,
) -> tuple[list[ReviewItem], str | None]:
    """Items in queue order (oldest first), filtered by stored status, model and claim holder
    (``claimed_by``: a reviewer's held items, including lapsed claims nobody took over); one
    page of at most ``limit`` and the opaque cursor of the next page (None on the last)."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInputError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
    after = _parse_cursor(cursor)
    rows = store.list_items(
        session,
        status=status,
        model_name=model_name,
        claimed_by=claimed_by,
        after_id=after,
        limit=limit + 1,
    )
    items = rows[:limit]
    next_cursor = str(items[-1].id) if len(rows) > limit and items else None
    return items, next_cursor


def get_review_item(session: Session, item_id: int) -> ReviewItem:
    """One item; NotFoundError when there is none."""
    item = store.get_item(session, item_id)
    if item is None:
        raise NotFoundError(f"no review item {item_id}")
    return item


def claim_review_item(
    session: Session,
    item_id: int,
    *,
    reviewer: str,
    now: datetime,
    claim_timeout_s: float = DEFAULT_CLAIM_TIMEOUT_S,
) -> ReviewItem:
    """Claim one item for ``reviewer`` (open, a lapsed claim, or already theirs: the claim is
    renewed). ConflictError naming why otherwise (decided, held by someone else, or an appeal
    of their own decision); NotFoundError when unknown. Audited ``review.claim``."""
    _check_name("reviewer", reviewer, 255)
    if not store.claim(
        session, item_id, reviewer=reviewer, now=now, claim_timeout_s=claim_timeout_s
    ):
        raise _why_not_claimable(get_review_item(session, item_id), reviewer)
    return _audited(session, item_id, reviewer, "review.claim", "", now)


def claim_next_review_item(
    session: Session,
    *,
    reviewer: str,
    now: datetime,
    model_name: str | None = None,
    claim_timeout_s: float = DEFAULT_CLAIM_TIMEOUT_S,
) -> ReviewItem | None:
    """Claim the oldest item ``reviewer`` may claim (their own live claim first if it is the
    oldest), atomically: two reviewers racing never get the same item. None when the queue
    has nothing for them. Audited ``review.claim``."""
    _check_name("reviewer", reviewer, 255)
    item_id = store.claim_next(
        session,
        reviewer=reviewer,
        now=now,
        claim_timeout_s=claim_timeout_s,
        model_name=model_name,
    )
    if item_id is None:
        return None
    return _audited(session, item_id, reviewer, "review.claim", "", now, {"next": True})


def decide_review_item(
    session: Session,
    item_id: int,
    *,
    reviewer: str,
    verdict: Literal["approve", "reject"],
    reason: str,
    now: datetime,
    labels: Sequence[str] = (),
) -> ReviewItem:
    """Approve (the text is acceptable) or reject (harmful) an item ``reviewer`` holds.

    ``labels`` (reject only) are the confirmed categories, validated against the taxonomy;
    they default to the item's categories. ConflictError when the item is not claimed by
    ``reviewer`` (naming who holds it); NotFoundError when unknown. Audited
    ``review.approve`` / ``review.reject`` with the reason.
    """
    _check_name("reviewer", reviewer, 255)
    status = VERDICT_STATUS.get(verdict)
    if status is None:
        raise InvalidInputError("verdict must be approve or reject")
    reason = _check_reason(reason)
    if status is ReviewStatus.APPROVED and labels:
        raise InvalidInputError("labels apply to a rejection only (approve means acceptable)")
    item = get_review_item(session, item_id)
    chosen = _labels(labels) if labels else _default_labels(item, status)
    if not store.decide(
        session, item_id, reviewer=reviewer, status=status, reason=reason, labels=chosen, now=now
    ):
        raise _why_not_decidable(item_id, get_review_item(session, item_id), reviewer)
    return _audited(
        session, item_id, reviewer, f"review.{verdict}", reason, now, {"labels": chosen}
    )


def appeal_review_item(
    session: Session, item_id: int, *, actor: str, reason: str, now: datetime
) -> ReviewItem:
    """Appeal a decided item: back in the queue as ``appealed`` with ``reason``; a reviewer
    other than the one whose decision is appealed decides it again. ConflictError when the
    item is not decided; NotFoundError when unknown. Audited ``review.appeal``."""
    _check_name("actor", actor, 255)
    reason = _check_reason(reason)
    if not store.appeal(session, item_id, actor=actor, reason=reason, now=now):
        item = get_review_item(session, item_id)
        raise ConflictError(
            f"review item {item_id} is {item.status.value}: only an approved or rejected item "
            "can be appealed"
        )
    return _audited(session, item_id, actor, "review.appeal", reason, now)


def export_labelled(
    session: Session, *, since: datetime | None = None, model_name: str | None = None
) -> Iterator[dict[str, Any]]:
    """Decided items as labelled examples for retraining, oldest item first: ``text`` (as the
    reviewer saw it, PII redacted), ``label`` (``acceptable`` | ``harmful``), ``categories``
    (the reviewer's labels on a rejection, none on an approval), the model, version and
    direction, the reviewer, ``decided_at`` (ISO 8601) and ``item_id``. Items under appeal are
    left out until decided again; ``since`` filters on the decision time."""
    for item in store.decided_items(session, since=since, model_name=model_name):
        yield {
            "text": item.text,
            "label": EXPORT_LABEL[item.status],
            "categories": list(item.labels),
            "model_name": item.model_name,
            "model_version": item.model_version,
            "direction": item.direction,
            "reviewer": item.decided_by,
            "decided_at": item.decided_at.isoformat() if item.decided_at else None,
            "item_id": item.id,
        }


def review_counts(session: Session) -> dict[str, int]:
    """Items per stored status (every status present, zero when none)."""
    return store.count_by_status(session)


# --------------------------------------------------------------------------------- helpers


def _audited(
    session: Session,
    item_id: int,
    actor: str,
    action: str,
    reason: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> ReviewItem:
    item = get_review_item(session, item_id)
    record_audit(
        session,
        actor=actor,
        action=action,
        target=f"review_item:{item_id}",
        reason=reason,
        details={"model": item.model_name, "version": item.model_version, **(details or {})},
        at=now,
    )
    return item


def _why_not_claimable(item: ReviewItem, reviewer: str) -> ConflictError:
    if item.status.decided:
        return ConflictError(
            f"review item {item.id} is already {item.status.value}: appeal it to review it again"
        )
    if item.status is ReviewStatus.CLAIMED:
        return ConflictError(f"review item {item.id} is claimed by {item.claimed_by}")
    return ConflictError(
        f"review item {item.id} is an appeal of {reviewer}'s own decision: "
        "another reviewer must decide it"
    )


def _why_not_decidable(item_id: int, item: ReviewItem, reviewer: str) -> ConflictError:
    if item.status is ReviewStatus.CLAIMED:
        return ConflictError(
            f"review item {item_id} is claimed by {item.claimed_by}, not {reviewer}"
        )
    return ConflictError(
        f"review item {item_id} is {item.status.value}, not claimed by {reviewer}: claim it first"
    )


def _default_labels(item: ReviewItem, status: ReviewStatus) -> list[str]:
    if status is ReviewStatus.APPROVED:
        return []
    return list(item.categories)


def _labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise InvalidInputError("labels must be a list of category names, not one string")
    if len(labels) > MAX_LABELS:
        raise InvalidInputError(f"at most {MAX_LABELS} labels")
    chosen: list[str] = []
    for label in labels:
        if not isinstance(label, str):
            raise InvalidInputError("labels must be category names")
        category = parse_category(label).value
        if category not in chosen:
            chosen.append(category)
    return chosen


def _check_name(field: str, value: str, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{field} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidInputError(f"{field} is longer than {max_length} characters")
    if "\x00" in value:
        raise InvalidInputError(f"{field} contains a NUL character")


def _check_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInputError("a reason is required")
    if len(reason) > MAX_REASON:
        raise InvalidInputError(f"reason is longer than {MAX_REASON} characters")
    if "\x00" in reason:
        raise InvalidInputError("reason contains a NUL character")
    return reason.strip()


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidInputError("invalid cursor: pass the next cursor of a previous page")
    return int(cursor)


def _failed_closed_text(text: object, max_chars: int) -> str:
    """The PII-redacted text of an input that could not be moderated, when it is storable."""
    if not isinstance(text, str) or len(text) > max_chars or "\x00" in text:
        return ""
    try:
        text.encode("utf-8")
        return redact(text, PiiDetector().find(text))
    except Exception:  # noqa: BLE001 - fail closed: keep nothing rather than unredacted text
        return ""


def _reasons(result: ModerationResult) -> list[str]:
    """Per category, the highest-scoring finding: ``"<category> <score> (<source>)"``."""
    best: dict[Category, Finding] = {}
    for finding in result.findings:
        held = best.get(finding.category)
        if held is None or finding.score > held.score:
            best[finding.category] = finding
    return [
        f"{category.value} {best[category].score:.2f} ({best[category].source})"
        for category in result.categories
    ] or [f"decision {result.decision.value}"]


def _finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "category": finding.category.value,
        "start": finding.start,
        "end": finding.end,
        "score": finding.score,
        "source": finding.source,
        "kind": finding.kind,
    }
