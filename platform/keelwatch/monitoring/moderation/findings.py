"""The moderation taxonomy and what every filter returns: findings with a category, a score and
the span of the original text they cover.

The hazard categories follow OpenAI's moderation categories (``harassment``, ``hate``,
``self-harm``, ``sexual``, ``violence``, ``illicit``; sub-categories such as
``harassment/threatening`` map onto their parent here), plus ``profanity``, ``pii`` and
``custom`` for an operator's own lists.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from keelwatch.errors import InvalidInputError


class Category(enum.StrEnum):
    """One taxonomy for every filter (rules, PII detectors, classifiers)."""

    HARASSMENT = "harassment"
    HATE = "hate"
    SELF_HARM = "self-harm"
    SEXUAL = "sexual"
    VIOLENCE = "violence"
    ILLICIT = "illicit"
    PROFANITY = "profanity"
    PII = "pii"
    CUSTOM = "custom"


def parse_category(text: str) -> Category:
    """A category from its name (case-insensitive; OpenAI's ``parent/sub`` names map to the
    parent); InvalidInputError naming the valid ones otherwise."""
    name = text.strip().lower().split("/", 1)[0].replace("_", "-")
    try:
        return Category(name)
    except ValueError:
        valid = ", ".join(c.value for c in Category)
        raise InvalidInputError(f"unknown category {text[:40]!r}: choose one of {valid}") from None


@dataclass(frozen=True)
class Finding:
    """Something a filter found: ``text[start:end]`` of the ORIGINAL text (never of its
    normalized form), its category, a score in [0, 1] (1 for a rule match or a checked PII
    number), the filter that found it and, for PII, the kind (``email``, ``iban``...)."""

    category: Category
    start: int
    end: int
    score: float
    source: str
    kind: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise InvalidInputError(f"finding span [{self.start}, {self.end}) is empty or negative")
        if not 0.0 <= self.score <= 1.0:
            raise InvalidInputError(f"finding score {self.score} is outside [0, 1]")


def text_starts(texts: Sequence[str]) -> list[int]:
    """Where each text starts in ``sep + sep.join(texts)`` for a one-character ``sep``: how the
    batch screens find which text a match fell in (``bisect``), computed without a Python step
    per text."""
    # 1 (the leading sep), then each text's length plus its separator added up.
    return list(accumulate(map((1).__add__, map(len, texts)), initial=1))[:-1]
