"""Wire shapes of ``/moderation``: checks of texts, and moderation rates from the tallies (the
API's answers and ``keelwatch moderation rates --json``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from keelwatch.monitoring.moderation.findings import Finding
    from keelwatch.monitoring.moderation.pipeline import ModerationResult
    from keelwatch.monitoring.service.moderation import ModerationRates

#: The most texts one check takes (``monitoring.service.moderation.MAX_CHECK_TEXTS``).
MAX_CHECK_TEXTS = 1_000


class ModerationCheckIn(BaseModel):
    """Texts to moderate. With ``model`` and ``version`` (both or neither) the check counts in
    that version's rates and texts decided ``review`` join the review queue; without them
    nothing is stored."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(
        min_length=1,
        max_length=MAX_CHECK_TEXTS,
        description="The texts, each at most `moderation.max_text_chars` characters.",
    )
    model: str | None = Field(
        None, min_length=1, max_length=255, description="Registered model the texts are of."
    )
    version: str | None = Field(
        None, min_length=1, max_length=64, description="Its version (required with `model`)."
    )


class FindingOut(BaseModel):
    """A span ``[start, end)`` of the checked text a filter flagged."""

    category: str
    start: int
    end: int
    score: float
    source: str
    kind: str = ""

    @classmethod
    def of(cls, finding: Finding) -> FindingOut:
        return cls(
            category=finding.category.value,
            start=finding.start,
            end=finding.end,
            score=finding.score,
            source=finding.source,
            kind=finding.kind,
        )


class CheckResultOut(BaseModel):
    """The verdict on one text. ``redacted`` is the text with every finding that called for
    redaction or more replaced by a typed placeholder (the only form in which a blocked text
    is returned); null when the text could not be moderated (``error`` says why, decision
    ``review``)."""

    index: int
    decision: str
    categories: list[str]
    findings: list[FindingOut]
    redacted: str | None
    error: str | None = None

    @classmethod
    def of(cls, index: int, result: ModerationResult) -> CheckResultOut:
        return cls(
            index=index,
            decision=result.decision.value,
            categories=[c.value for c in result.categories],
            findings=[FindingOut.of(f) for f in result.findings],
            redacted=None if result.error else result.redacted,
            error=result.error or None,
        )


class ModerationCheckOut(BaseModel):
    """Every text's verdict, the counts per decision and, with a model, what was stored."""

    results: list[CheckResultOut]
    decisions: dict[str, int]
    source: str | None = Field(None, description="The stored tally's source (with `model`).")
    review_items: list[int] = Field(
        default_factory=list, description="Review items queued by this check (with `model`)."
    )


class RatesOut(BaseModel):
    """Moderation rates of one model version and direction."""

    model: str
    version: str
    direction: str
    batches: int
    texts: int
    decisions: dict[str, int]
    rates: dict[str, float] = Field(description="Share of texts per decision.")
    category_rates: dict[str, float] = Field(
        description="Share of texts with at least one finding of each category found."
    )
    categories: dict[str, dict[str, int]] = Field(
        description="Texts with a finding of each category, by the text's decision."
    )

    @classmethod
    def of(cls, rates: ModerationRates) -> RatesOut:
        return cls(
            model=rates.model_name,
            version=rates.model_version,
            direction=rates.direction,
            batches=rates.batches,
            texts=rates.texts,
            decisions=rates.decisions,
            rates=rates.rates,
            category_rates=rates.category_rates,
            categories=rates.categories,
        )


class ModerationRatesOut(BaseModel):
    """Rates per model version and direction over ``[since, until)``."""

    since: datetime
    until: datetime
    rates: list[RatesOut]
