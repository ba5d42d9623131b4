"""Typed redaction: exact outputs, merged overlaps, placeholders per kind and category, and
spans checked against the text."""

from __future__ import annotations

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category, Finding
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.redaction import placeholder, redact

DETECTOR = PiiDetector()


def pii(start: int, end: int, kind: str, score: float = 1.0) -> Finding:
    return Finding(Category.PII, start, end, score, "pii", kind)


def detect_and_redact(text: str) -> str:
    return redact(text, DETECTOR.find(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe@example.com now", "mail [EMAIL] now"),
        ("call +44 20 7946 0958.", "call [PHONE]."),
        ("card 4111 1111 1111 1111, exp 12/29", "card [CREDIT_CARD], exp 12/29"),
        ("IBAN GB82 WEST 1234 5698 7654 32!", "IBAN [IBAN]!"),
        ("ssn 123-45-6789", "ssn [US_SSN]"),
        ("from 192.168.1.10 and fe80::1", "from [IP_ADDRESS] and [IP_ADDRESS]"),
        ("key AKIAIOSFODNN7EXAMPLE", "key [SECRET]"),
        ("Authorization: Bearer abc.def-ghi_jkl12345", "Authorization: Bearer [SECRET]"),
        (
            "héllo 🙂 a@b.io, ☎ (555) 123-4567; ok",
            "héllo 🙂 [EMAIL], ☎ [PHONE]; ok",
        ),
        ("nothing here", "nothing here"),
        ("", ""),
    ],
)
def test_redacts_detected_pii(text: str, expected: str) -> None:
    assert detect_and_redact(text) == expected


def test_other_categories_use_their_name() -> None:
    text = "you damn fool, hurt yourself"
    findings = [
        Finding(Category.PROFANITY, 4, 8, 1.0, "rules"),
        Finding(Category.SELF_HARM, 15, 28, 0.8, "rules"),
    ]
    assert redact(text, findings) == "you [PROFANITY] fool, [SELF_HARM]"


def test_placeholders() -> None:
    assert placeholder(pii(0, 1, "ipv6")) == "[IP_ADDRESS]"
    assert placeholder(pii(0, 1, "us_ssn")) == "[US_SSN]"
    assert placeholder(pii(0, 1, "")) == "[PII]"
    assert placeholder(Finding(Category.CUSTOM, 0, 1, 1.0, "rules")) == "[CUSTOM]"


def test_overlapping_findings_merge_under_the_strongest() -> None:
    text = "reach 555-123-4567@example.com today"
    findings = [pii(6, 18, "phone", 0.7), pii(6, 30, "email", 0.9)]
    assert redact(text, findings) == "reach [EMAIL] today"
    # Partial overlap: one placeholder over the union of both spans.
    findings = [pii(0, 10, "phone", 0.7), Finding(Category.PROFANITY, 5, 16, 1.0, "rules")]
    assert redact("0123456789abcdefXYZ", findings) == "[PROFANITY]XYZ"


def test_touching_findings_stay_separate_and_order_does_not_matter() -> None:
    text = "aaaabbbbcccc"
    findings = [pii(8, 12, "secret"), pii(0, 4, "email"), pii(4, 8, "phone")]
    assert redact(text, findings) == "[EMAIL][PHONE][SECRET]"


def test_equal_scores_merge_under_the_longer() -> None:
    findings = [pii(0, 3, "phone", 0.9), pii(2, 9, "ipv4", 0.9)]
    assert redact("0123456789", findings) == "[IP_ADDRESS]9"


def test_span_beyond_the_text_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"finding span \[3, 12\) exceeds the text's 5"):
        redact("short", [pii(3, 12, "email")])


def test_non_str_text_and_non_finding_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="text must be a str, not bytes"):
        redact(b"abc", [])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="findings must be Finding, not tuple"):
        redact("abc", [(0, 1)])  # type: ignore[list-item]
