"""Pydantic shapes of the human review queue on the wire (``/review/items``) and in the CLI's
``--json``.

An item's ``text`` is what a reviewer sees: PII replaced by typed placeholders (``[EMAIL]``),
hazards in clear; each finding is a span ``[start, end)`` of that text.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from keelwatch.entities.moderation import ReviewFinding, ReviewItem, ReviewStatus
from keelwatch.monitoring.service.review_queue import MAX_LABELS, MAX_REASON


class ReviewFindingOut(BaseModel):
    """A span of the item's text that a filter flagged."""

    category: str
    start: int
    end: int
    score: float
    source: str
    kind: str = ""

    @classmethod
    def of(cls, finding: ReviewFinding) -> ReviewFindingOut:
        return cls(
            category=finding.category,
            start=finding.start,
            end=finding.end,
            score=finding.score,
            source=finding.source,
            kind=finding.kind,
        )


class ReviewItemOut(BaseModel):
    """One text in the review queue, with its decision context and the claim, decision and
    appeal that moved it."""

    id: int
    source_key: str = Field(description="Where it came from (job:<id>:<row>:<column>, ...).")
    status: ReviewStatus
    model_name: str
    model_version: str
    direction: str = Field(description="input, output or text.")
    text: str = Field(description="The text as a reviewer sees it (PII redacted).")
    findings: list[ReviewFindingOut]
    categories: list[str] = Field(description="Categories the pipeline found.")
    reasons: list[str] = Field(description="Why it is here: scores per category, or an error.")
    created_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str = ""
    labels: list[str] = Field(default_factory=list, description="Confirmed categories.")
    appealed_by: str | None = None
    appealed_at: datetime | None = None
    appeal_reason: str = ""

    @classmethod
    def of(cls, item: ReviewItem) -> ReviewItemOut:
        return cls(
            id=item.id,
            source_key=item.source_key,
            status=item.status,
            model_name=item.model_name,
            model_version=item.model_version,
            direction=item.direction,
            text=item.text,
            findings=[ReviewFindingOut.of(f) for f in item.findings],
            categories=list(item.categories),
            reasons=list(item.reasons),
            created_at=item.created_at,
            claimed_by=item.claimed_by,
            claimed_at=item.claimed_at,
            decided_by=item.decided_by,
            decided_at=item.decided_at,
            decision_reason=item.decision_reason,
            labels=list(item.labels),
            appealed_by=item.appealed_by,
            appealed_at=item.appealed_at,
            appeal_reason=item.appeal_reason,
        )


class ReviewClaimNextIn(BaseModel):
    """Claim the oldest open item (optionally of one model)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, min_length=1, max_length=255, description="Only items of this model."
    )


class ReviewDecisionIn(BaseModel):
    """Approve an item you hold: the text is acceptable."""

    model_config = ConfigDict(extra="forbid")

    reason: StrictStr = Field(
        min_length=1, max_length=MAX_REASON, description="Why (stored and audited)."
    )


class ReviewRejectIn(ReviewDecisionIn):
    """Reject an item you hold: the text is harmful."""

    labels: list[StrictStr] | None = Field(
        None,
        max_length=MAX_LABELS,
        description="Confirmed categories (default: the categories the pipeline found).",
        examples=[["violence"]],
    )


class ReviewAppealIn(BaseModel):
    """Appeal a decided item: back in the queue for another reviewer."""

    model_config = ConfigDict(extra="forbid")

    reason: StrictStr = Field(
        min_length=1, max_length=MAX_REASON, description="Why the decision is contested."
    )
