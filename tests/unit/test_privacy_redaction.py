"""Prediction-log PII redaction per column (``monitoring.service.privacy``): planted PII of every
kind is replaced by typed placeholders in string columns, numbers pass untouched, ``drop``
removes a column, ``none`` keeps it, the settings build the redactor, and a text too long to
scan is never kept in clear. scrubadub, a peer PII scrubber, serves as a second opinion: it
finds nothing left in what the redactor stores."""

from __future__ import annotations

import random
import string

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import MAX_TEXT_CHARS
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.service.privacy import (
    UNSCANNABLE,
    prediction_log_redactor,
    redact_columns,
)
from keelwatch.settings import PrivacySettings, Settings

DETECTOR = PiiDetector()


def luhn_card(rng: random.Random) -> str:
    """A 16-digit Visa number with a valid Luhn check digit, grouped by four."""
    body = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for index, digit in enumerate(reversed(body)):
        doubled = digit * 2 if index % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    digits = "".join(map(str, [*body, (10 - total % 10) % 10]))
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def german_iban(rng: random.Random) -> str:
    """A DE IBAN (22 characters) with its mod-97 check digits."""
    bban = "".join(rng.choice(string.digits) for _ in range(18))
    numeric = int(bban + "131400")  # D=13, E=14, then "00"
    return f"DE{98 - numeric % 97:02d}{bban}"


def planted(rng: random.Random) -> dict[str, str]:
    """One value of each kind, freshly generated."""
    user = "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
    return {
        "email": f"{user}.{rng.randrange(100)}@example.org",
        "phone": f"+44 20 {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}",
        "credit_card": luhn_card(rng),
        "iban": german_iban(rng),
        "us_ssn": f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}",
        "ipv4": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(10, 250)}",
        "secret": "AKIA"
        + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16)),
    }


PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    "us_ssn": "[US_SSN]",
    "ipv4": "[IP_ADDRESS]",
    "secret": "[SECRET]",
}


def test_planted_pii_of_every_kind_becomes_its_placeholder() -> None:
    rng = random.Random(11)
    for _ in range(50):
        values = planted(rng)
        row = {kind: f"ticket about {value} today" for kind, value in values.items()}
        redacted = redact_columns(row, default="pii", columns={}, detector=DETECTOR)
        for kind, value in values.items():
            assert value not in redacted[kind]
            assert redacted[kind] == f"ticket about {PLACEHOLDERS[kind]} today", kind


def test_numbers_booleans_and_nulls_pass_untouched_and_clean_text_is_unchanged() -> None:
    row = {
        "amount": 4111111111111111,  # a Luhn-valid number, but a number: not text
        "score": 0.25,
        "flag": True,
        "missing": None,
        "note": "order 123456789012 shipped",
        "empty": "",
    }
    assert redact_columns(row, default="pii", columns={}, detector=DETECTOR) == row


def test_per_column_modes_override_the_default() -> None:
    row = {"prompt": "mail a@example.com", "sku": "a@example.com", "notes": "x", "n": 3}
    columns = {"sku": "none", "notes": "drop", "n": "drop"}
    assert redact_columns(row, default="pii", columns=columns, detector=DETECTOR) == {
        "prompt": "mail [EMAIL]",
        "sku": "a@example.com",
    }
    assert redact_columns(row, default="none", columns={"prompt": "pii"}, detector=DETECTOR) == {
        **row,
        "prompt": "mail [EMAIL]",
    }


def test_a_text_too_long_to_scan_is_not_kept() -> None:
    long_text = "call +44 20 7946 0958 " + "x" * MAX_TEXT_CHARS
    redacted = redact_columns({"t": long_text}, default="pii", columns={}, detector=DETECTOR)
    assert redacted == {"t": UNSCANNABLE}


def test_an_unknown_mode_names_the_column_not_the_value() -> None:
    with pytest.raises(InvalidInputError, match="column 'notes'") as raised:
        redact_columns(
            {"notes": "secret@example.com"},
            default="pii",
            columns={"notes": "hash"},
            detector=DETECTOR,
        )
    assert "secret@example.com" not in str(raised.value)
    with pytest.raises(InvalidInputError, match="default"):
        redact_columns({}, default="mask", columns={}, detector=DETECTOR)


def test_the_settings_build_the_redactor() -> None:
    assert prediction_log_redactor(PrivacySettings(redact_prediction_log="none")) is None
    redactor = prediction_log_redactor(Settings().privacy)  # default: pii on every column
    assert redactor is not None
    assert redactor({"q": "ip 10.0.0.7", "x": 1.5}) == {"q": "ip [IP_ADDRESS]", "x": 1.5}
    only_notes = prediction_log_redactor(
        PrivacySettings(redact_prediction_log="none", column_redaction={"notes": "drop"})
    )
    assert only_notes is not None
    assert only_notes({"notes": "x", "q": "a@example.com"}) == {"q": "a@example.com"}


def test_column_overrides_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEELWATCH_PRIVACY__COLUMN_REDACTION", '{"free_text": "drop"}')
    redactor = prediction_log_redactor(Settings().privacy)
    assert redactor is not None
    assert redactor({"free_text": "anything", "q": "+44 20 7946 0958"}) == {"q": "[PHONE]"}


def test_scrubadub_finds_nothing_left_in_the_redacted_texts() -> None:
    import scrubadub  # type: ignore[import-untyped]

    rng = random.Random(5)
    scrubber = scrubadub.Scrubber()
    originals: list[str] = []
    redacted: list[str] = []
    for _ in range(40):
        values = planted(rng)
        text = (
            f"Hi, I'm at {values['email']} or {values['phone']}; card {values['credit_card']}, "
            f"IBAN {values['iban']}, from {values['ipv4']}."
        )
        originals.append(text)
        redacted.append(
            redact_columns({"t": text}, default="pii", columns={}, detector=DETECTOR)["t"]
        )
    # The reference sees PII in the originals (the test plants something it recognises) ...
    assert sum(1 for text in originals if list(scrubber.iter_filth(text))) == len(originals)
    # ... and nothing of it in what the prediction log would store.
    leftovers = [(f.type, i) for i, text in enumerate(redacted) for f in scrubber.iter_filth(text)]
    assert leftovers == []
