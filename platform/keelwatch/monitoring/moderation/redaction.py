"""Typed redaction: each finding's span of the original text becomes a placeholder naming what
was there (``[EMAIL]``, ``[IP_ADDRESS]``, ``[PROFANITY]``...), so that a redacted text still
reads sensibly and a reviewer sees what kind of thing was removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category, Finding

#: Placeholder per PII kind; both IP versions read the same to a reviewer.
PII_PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    "us_ssn": "[US_SSN]",
    "ipv4": "[IP_ADDRESS]",
    "ipv6": "[IP_ADDRESS]",
    "secret": "[SECRET]",
}


def placeholder(finding: Finding) -> str:
    """The placeholder for one finding: its PII kind's, else its category's (``[SELF_HARM]``)."""
    if finding.category is Category.PII and finding.kind in PII_PLACEHOLDERS:
        return PII_PLACEHOLDERS[finding.kind]
    return f"[{finding.category.value.upper().replace('-', '_')}]"


def redact(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with every finding's span replaced by its placeholder.

    Overlapping findings merge into one span under one placeholder, that of the finding with the
    highest score (then the longest, then the earliest): one ``[EMAIL]`` rather than
    ``[EMAIL][PHONE]`` for a phone number inside an address. Touching spans stay separate.
    A span beyond the end of ``text`` raises InvalidInputError (the findings belong to another
    text).
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, not {type(text).__name__}")
    for finding in findings:
        if not isinstance(finding, Finding):
            raise InvalidInputError(f"findings must be Finding, not {type(finding).__name__}")
        if finding.end > len(text):
            raise InvalidInputError(
                f"finding span [{finding.start}, {finding.end}) exceeds the text's "
                f"{len(text)} characters"
            )
    if not findings:
        return text
    ordered = sorted(findings, key=lambda f: (f.start, -f.end))
    pieces: list[str] = []
    cursor = 0
    group_start, group_end, best = ordered[0].start, ordered[0].end, ordered[0]
    for finding in ordered[1:]:
        if finding.start < group_end:  # overlaps the current group: widen it
            group_end = max(group_end, finding.end)
            if _rank(finding) > _rank(best):
                best = finding
            continue
        pieces += (text[cursor:group_start], placeholder(best))
        cursor = group_end
        group_start, group_end, best = finding.start, finding.end, finding
    pieces += (text[cursor:group_start], placeholder(best), text[group_end:])
    return "".join(pieces)


def _rank(finding: Finding) -> tuple[float, int, int]:
    """Which finding names a merged span: higher score, then longer, then earlier."""
    return finding.score, finding.end - finding.start, -finding.start
