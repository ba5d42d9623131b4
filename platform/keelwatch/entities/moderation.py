"""Content moderation values passed between layers: review-queue items and their decisions,
and the per-batch tallies that moderation rates are computed from."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ReviewStatus(enum.StrEnum):
    """Where a review item stands.

    pending → claimed (one reviewer holds it) → approved | rejected; a decided item may be
    appealed, which puts it back in the queue (status appealed, claimable like pending). A claim
    not decided within the claim timeout lapses back to pending/appealed.
    """

    PENDING = "pending"
    CLAIMED = "claimed"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPEALED = "appealed"

    @property
    def open(self) -> bool:
        """Waiting for a reviewer (pending or appealed)."""
        return self in (ReviewStatus.PENDING, ReviewStatus.APPEALED)

    @property
    def decided(self) -> bool:
        """Approved or rejected."""
        return self in (ReviewStatus.APPROVED, ReviewStatus.REJECTED)


@dataclass(frozen=True)
class ReviewFinding:
    """A finding as a reviewer sees it: a span of the item's (PII-redacted) text."""

    category: str
    start: int
    end: int
    score: float
    source: str
    kind: str = ""


@dataclass(frozen=True)
class ReviewItem:
    """One text waiting for, or decided by, a person.

    ``text`` is what the reviewer sees: PII replaced by typed placeholders, hazards in clear
    (a blocked text never reaches the queue). ``source_key`` identifies where it came from
    (``job:<id>:<row>:<column>``, ``dataset:<name>:<row>``, ``api:<uuid>``) and makes enqueueing
    idempotent. ``reasons`` are the pipeline's (categories and scores, or why it failed closed).
    """

    id: int
    source_key: str
    status: ReviewStatus
    model_name: str
    model_version: str
    direction: str  # input | output | text
    text: str
    findings: tuple[ReviewFinding, ...]
    categories: tuple[str, ...]
    reasons: tuple[str, ...]
    created_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str = ""
    appeal_reason: str = ""
    appealed_by: str | None = None
    appealed_at: datetime | None = None
    # Reviewers' confirmed categories on reject (defaults to the pipeline's).
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModerationTally:
    """Decisions of one moderated batch (one inference chunk, one dataset run), per model,
    version and direction: the counts that block/redact/review rates come from."""

    model_name: str
    model_version: str
    direction: str
    source: str
    texts: int
    decisions: dict[str, int] = field(default_factory=dict)  # decision -> texts
    categories: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> decision -> n
    created_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)
