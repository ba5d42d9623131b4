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
from itertools import accumulate, compress

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


def non_ascii(texts: Sequence[str]) -> list[int]:
    """Indexes of the texts that are not pure ASCII, found without a Python step per text.

    The batch screens replace only these before joining the batch: joining a batch with one
    emoji makes the whole joined string four bytes a character, and encoding it with an error
    handler goes character by character, several times the cost of the per-text fix."""
    flags = list(map(str.isascii, texts))
    if all(flags):
        return []
    return list(compress(range(len(flags)), map(False.__eq__, flags)))


def text_starts(texts: Sequence[str]) -> list[int]:
    """Where each text starts in ``sep + sep.join(texts)`` for a one-character ``sep``: how the
    batch screens find which text a match fell in (``bisect``), computed without a Python step
    per text."""
    # 1 (the leading sep), then each text's length plus its separator added up.
    return list(accumulate(map((1).__add__, map(len, texts)), initial=1))[:-1]


#: Longest text a filter accepts (the pipeline's own cap, ``max_chars``, is lower by default).
MAX_TEXT_CHARS = 100_000


def check_text(text: object) -> str:
    """``text`` itself when it is a str within :data:`MAX_TEXT_CHARS`; InvalidInputError else
    (naming the type or the length, never the text)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, not {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"text of {len(text)} characters exceeds the {MAX_TEXT_CHARS}-character limit"
        )
    return text


def check_batch(batch: Sequence[object]) -> None:
    """:func:`check_text` for every text, with C-level steps for the common batch of plain
    strs and text by text only to name the first bad one."""
    if batch and set(map(type, batch)) == {str} and max(map(len, batch)) <= MAX_TEXT_CHARS:  # type: ignore[arg-type]
        return
    for text in batch:
        check_text(text)
