"""The moderation policy: per-category score thresholds that turn findings into one decision per
text, allow < redact < review < block.

A finding's decision is the most severe one whose threshold its score reaches; a text's is the
most severe over its findings. ``redact`` means the text may be released with the findings'
spans replaced by typed placeholders; ``review`` means a person decides before it is released;
``block`` means it is never released and never stored in clear.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category, Finding, parse_category


class Decision(enum.StrEnum):
    """What happens to a text, from least to most severe."""

    ALLOW = "allow"
    REDACT = "redact"
    REVIEW = "review"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        """0 (allow) to 3 (block): the order decisions combine in."""
        return _SEVERITY[self]


_SEVERITY = {Decision.ALLOW: 0, Decision.REDACT: 1, Decision.REVIEW: 2, Decision.BLOCK: 3}


def most_severe(decisions: Iterable[Decision]) -> Decision:
    """The most severe of ``decisions`` (allow when there are none)."""
    return max(decisions, key=_SEVERITY.__getitem__, default=Decision.ALLOW)


@dataclass(frozen=True)
class CategoryThresholds:
    """The score at or above which each decision applies to a finding of one category; None:
    that decision never applies. Thresholds must not decrease with severity."""

    redact: float | None = None
    review: float | None = None
    block: float | None = None

    def __post_init__(self) -> None:
        previous = 0.0
        for name in ("redact", "review", "block"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"threshold {name} must be a number in [0, 1]")
            if value < previous:
                raise InvalidInputError(
                    f"threshold {name} ({value}) is below a less severe decision's ({previous})"
                )
            previous = float(value)

    def decide(self, score: float) -> Decision:
        """The most severe decision whose threshold ``score`` reaches."""
        if self.block is not None and score >= self.block:
            return Decision.BLOCK
        if self.review is not None and score >= self.review:
            return Decision.REVIEW
        if self.redact is not None and score >= self.redact:
            return Decision.REDACT
        return Decision.ALLOW


#: The defaults: PII and profanity are redacted; hazards go to a person at 0.5 and, where a
#: confident classifier or a rule (score 1.0) says so, are blocked. Self-harm is never blocked
#: unseen: a person should see it. Operators' own lists (custom) block.
DEFAULT_THRESHOLDS: Mapping[Category, CategoryThresholds] = {
    Category.PII: CategoryThresholds(redact=0.5),
    Category.PROFANITY: CategoryThresholds(redact=0.5),
    Category.HARASSMENT: CategoryThresholds(review=0.5, block=0.9),
    Category.HATE: CategoryThresholds(review=0.5, block=0.8),
    Category.SELF_HARM: CategoryThresholds(review=0.5),
    Category.SEXUAL: CategoryThresholds(review=0.5, block=0.9),
    Category.VIOLENCE: CategoryThresholds(review=0.5, block=0.9),
    Category.ILLICIT: CategoryThresholds(review=0.5, block=0.9),
    Category.CUSTOM: CategoryThresholds(block=0.5),
}


@dataclass(frozen=True)
class ModerationPolicy:
    """Thresholds per category (categories not listed use :data:`DEFAULT_THRESHOLDS`)."""

    thresholds: Mapping[Category, CategoryThresholds] = field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS)
    )

    def decide_finding(self, finding: Finding) -> Decision:
        """The decision one finding calls for."""
        rule = self.thresholds.get(finding.category) or DEFAULT_THRESHOLDS[finding.category]
        return rule.decide(finding.score)

    def decide(self, findings: Iterable[Finding]) -> Decision:
        """The decision for a text with these findings."""
        return most_severe(self.decide_finding(f) for f in findings)

    @classmethod
    def from_overrides(
        cls, overrides: Mapping[str, Mapping[str, float | None]]
    ) -> ModerationPolicy:
        """The default policy with some categories' thresholds replaced, as configured
        (``{"violence": {"review": 0.6, "block": 0.95}}``); InvalidInputError names a bad key."""
        thresholds = dict(DEFAULT_THRESHOLDS)
        for name, values in overrides.items():
            category = parse_category(name)
            unknown = set(values) - {"redact", "review", "block"}
            if unknown:
                raise InvalidInputError(
                    f"category {category.value}: unknown threshold key(s) "
                    f"{', '.join(sorted(unknown))}; use redact, review, block"
                )
            thresholds[category] = CategoryThresholds(
                redact=values.get("redact"), review=values.get("review"), block=values.get("block")
            )
        return cls(thresholds)
