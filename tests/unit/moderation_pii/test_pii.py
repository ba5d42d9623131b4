"""PII detectors: valid and invalid examples per kind, spans into the original text, the
non-overlap rule, the kind filter and bad input."""

from __future__ import annotations

import itertools

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import MAX_TEXT_CHARS, Category, Finding
from keelwatch.monitoring.moderation.pii import PII_KINDS, PiiDetector

DETECTOR = PiiDetector()


def other_digits(ascii_text: str, zero: int) -> str:
    """``ascii_text`` with its digits written in another script (``zero``: that script's 0)."""
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in ascii_text)


# An SSN and a card in mathematical double-struck and Arabic-Indic digits.
UNICODE_DIGITS = (
    other_digits("123-45-6789 and 4111 1111 1111 1111", 0x1D7D8)
    + " "
    + other_digits("123-45-6789 and 4111 1111 1111 1111", 0x0660)
)


def found(text: str, detector: PiiDetector = DETECTOR) -> list[tuple[str, str, float]]:
    """(kind, matched text, score) per finding, checking the common fields on the way."""
    findings = detector.find(text)
    for finding in findings:
        assert finding.category is Category.PII
        assert finding.source == "pii"
        assert finding.kind in PII_KINDS
    return [(f.kind, text[f.start : f.end], f.score) for f in findings]


def kinds(text: str) -> list[str]:
    return [kind for kind, _, _ in found(text)]


@pytest.mark.parametrize(
    "address",
    ["john.doe@example.com", "a+tag@mail.example.co.uk", "first_last-9@sub-domain.io"],
)
def test_email_found_with_its_exact_span(address: str) -> None:
    assert found(f"write to {address}, thanks") == [("email", address, 0.9)]


@pytest.mark.parametrize("text", ["me@localhost", "@handle on social", "a@b.c", "user@.com"])
def test_not_emails(text: str) -> None:
    assert "email" not in kinds(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("reach me: john dot smith at example dot com", "john dot smith at example dot com"),
        ("anna.k[at]example[dot]org please", "anna.k[at]example[dot]org"),
        ("j.doe(at)mail.example.de", "j.doe(at)mail.example.de"),
        ("a@b.co and j_bob at example dot com", "j_bob at example dot com"),
    ],
)
def test_spelled_out_emails(text: str, address: str) -> None:
    assert ("email", address, 0.8) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "stared at the dot matrix printer",
        "look at google dot com for it",  # "look" is no local part
        "I was at the office dot com bubble",
        "arrive at 10.30 dot com",
    ],
)
def test_at_and_dot_in_prose_are_no_email(text: str) -> None:
    assert "email" not in kinds(text)


@pytest.mark.parametrize(
    "phone",
    [
        "+44 20 7946 0958",
        "+1 (555) 123-4567",
        "+15551234567",
        "+33 6 12 34 56 78",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "020 7946 0958",
        "06 12 34 56 78",
        "06.12.34.56.78",  # starts like a date, but is longer
    ],
)
def test_phones(phone: str) -> None:
    assert found(f"call {phone}.") == [("phone", phone, 0.7)]


@pytest.mark.parametrize(
    "text",
    [
        "Order #123456789012",
        "ref 2024-11-30",
        "on 30/11/2024 at noon",
        "on 30.11.24 at noon",
        "ref 2024-11-30 555",  # a date then a number
        "ref 2024-11-30 12 34",
        "15551234567",  # a bare digit run is a phone only after "+"
        "1000-2000 users",
        "555-1234",  # two groups without an area code in brackets
        "10 000 000 people",  # thousands grouping
        "+12 34",  # too few digits
        "+123456789012345678",  # too many digits, no group to drop
        "it costs 20 dollars",
        "tracking number 9400 1000 0000 0000 0000 00",  # one long number, not phone + number
        "test card 4256 7851 3690 4208 declined",  # card-shaped, fails Luhn: not a phone either
    ],
)
def test_not_phones(text: str) -> None:
    assert "phone" not in kinds(text)


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",  # Visa
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",  # Mastercard
        "2221 0000 0000 0009",  # Mastercard 2-series
        "3782 822463 10005",  # American Express
        "6011 1111 1111 1117",  # Discover
        "3530 1113 3330 0000",  # JCB
    ],
)
def test_luhn_valid_cards_score_one(card: str) -> None:
    assert found(f"card: {card} exp 12/29") == [("credit_card", card, 1.0)]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # one digit off: Luhn fails
        "5500 0000 0000 0005",
        "1234 5678 9012 3452",  # Luhn-valid but no issuer starts with 1
        "4111 1111 1111",  # 12 digits
        "Order #123456789012",
    ],
)
def test_not_cards(text: str) -> None:
    assert "credit_card" not in kinds(text)


def test_card_found_after_a_stray_number() -> None:
    text = "about 3 or 4 4111 1111 1111 1111 times"
    assert found(text) == [("credit_card", "4111 1111 1111 1111", 1.0)]


@pytest.mark.parametrize(
    "iban",
    [
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "NO93 8601 1117 947",
        "gb82 west 1234 5698 7654 32",
    ],
)
def test_ibans_score_one(iban: str) -> None:
    assert found(f"pay to {iban} today") == [("iban", iban, 1.0)]


def test_iban_stops_at_the_country_length() -> None:
    text = "DE89 3704 0044 0532 0130 00 ABCD"
    assert found(text) == [("iban", "DE89 3704 0044 0532 0130 00", 1.0)]


@pytest.mark.parametrize(
    "text",
    [
        "GB83 WEST 1234 5698 7654 32",  # wrong check digits
        "DE88 3704 0044 0532 0130 00",
        "DE89 3704 0044 0532 0130 01",  # one BBAN digit off
        "DE89 3704 0044 0532 0130",  # too short for Germany
        "XX82 WEST 1234 5698 7654 32",  # no such country
    ],
)
def test_not_ibans(text: str) -> None:
    assert "iban" not in kinds(text)


def test_spaced_ssn_needs_words_that_say_so() -> None:
    assert ("us_ssn", "612 48 3390", 0.85) in found("ssn 612 48 3390")
    assert ("us_ssn", "612 48 3390", 0.85) in found("my social security number is 612 48 3390")
    assert kinds("call 612 48 3390") == ["phone"]


def test_ssn() -> None:
    assert found("my SSN is 123-45-6789.") == [("us_ssn", "123-45-6789", 0.8)]


@pytest.mark.parametrize(
    "ssn",
    ["000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567", "123-45-0000"],
)
def test_never_issued_ssns_are_nothing(ssn: str) -> None:
    assert found(f"number {ssn} here") == []


@pytest.mark.parametrize("address", ["192.168.1.10", "10.0.0.1", "255.255.255.255", "8.8.8.8"])
def test_ipv4(address: str) -> None:
    expected = 0.5 if address == "8.8.8.8" else 0.9
    assert found(f"from {address}.") == [("ipv4", address, expected)]


def test_version_like_ipv4_is_kept_with_a_low_score() -> None:
    # "1.2.3.4" is a valid address and just as likely a version: found, at 0.5, so that a
    # policy can set its threshold above it.
    assert found("upgrade to 1.2.3.4") == [("ipv4", "1.2.3.4", 0.5)]


@pytest.mark.parametrize(
    "text", ["256.1.1.1", "1.2.3.4.5", "192.168.1", "01.02.03.04", "v1.2.3.4", "10.0.0.1a"]
)
def test_not_ipv4(text: str) -> None:
    assert "ipv4" not in kinds(text)


@pytest.mark.parametrize(
    "address",
    [
        "2001:db8::ff00:42:8329",
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
        "fe80::1",
        "::1",
        "::ffff:192.0.2.1",
        "fe80::",
    ],
)
def test_ipv6(address: str) -> None:
    assert found(f"host {address} is up") == [("ipv6", address, 0.9)]


@pytest.mark.parametrize(
    "text", ["at 12:30:45", "std::map<int>", "a :: b", "1:2:3", "2001:db8::g1", "1::2::3"]
)
def test_not_ipv6(text: str) -> None:
    assert "ipv6" not in kinds(text)


@pytest.mark.parametrize(
    "secret",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1B2c3D4e5" * 3 + "a1B2c3",
        "xoxb-1234567890-abcdefghij",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "pk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    ],
)
def test_provider_keys(secret: str) -> None:
    assert found(f"key={secret} ok") == [("secret", secret, 0.95)]


def test_bearer_token_span_is_the_token() -> None:
    text = "Authorization: Bearer abc.def-ghi_jkl12345"
    assert found(text) == [("secret", "abc.def-ghi_jkl12345", 0.8)]


def test_private_key_block_is_one_finding() -> None:
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----"
    assert found(f"here:\n{block}\nbye") == [("secret", block, 0.95)]
    assert found("-----BEGIN PRIVATE KEY-----") == [("secret", "-----BEGIN PRIVATE KEY-----", 0.95)]


def test_high_entropy_token_has_a_lower_score() -> None:
    token = "9fT3kLq8Zx2Vb7Nm4Rc1Wy6Hd5Jg0PsA"
    assert found(f"token {token}") == [("secret", token, 0.6)]


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # hex: under 4 bits/char
        "id 123e4567-e89b-12d3-a456-426614174000",  # a UUID
        "Pneumonoultramicroscopicsilicovolcanoconiosis",
        "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",  # no digit: an identifier, not a key
        "Bearer of bad news",
        "short 9fT3kLq8Zx2Vb7Nm4Rc1",
    ],
)
def test_not_secrets(text: str) -> None:
    assert "secret" not in kinds(text)


def test_spans_index_the_original_text_with_unicode_before() -> None:
    text = "héllo 🙂 wörld — mail ünïcode@exämple.com or me@example.com, ☎ +44 20 7946 0958"
    assert found(text) == [
        ("email", "ünïcode@exämple.com", 0.9),
        ("email", "me@example.com", 0.9),
        ("phone", "+44 20 7946 0958", 0.7),
    ]


def test_several_kinds_ordered_by_start() -> None:
    text = "ip 10.0.0.1, mail a@b.io, card 4111 1111 1111 1111, ssn 123-45-6789"
    assert kinds(text) == ["ipv4", "email", "credit_card", "us_ssn"]


def test_overlaps_keep_the_validated_then_the_longer_finding() -> None:
    # "10.20.30.40" is also a national-format phone (0.7): the address (0.9) wins.
    assert found("from 10.20.30.40 today") == [("ipv4", "10.20.30.40", 0.9)]
    # A phone inside an e-mail address: one finding, the longer e-mail.
    assert found("555-123-4567@example.com") == [("email", "555-123-4567@example.com", 0.9)]
    # An IPv4 tail inside an IPv6 address: the whole address.
    assert found("::ffff:192.0.2.1") == [("ipv6", "::ffff:192.0.2.1", 0.9)]
    # A provider key (0.95) is also a high-entropy token (0.6): one finding.
    assert found("sk_live_4eC39HqLyjWDarjtT1zdp7dcXyZ") == [
        ("secret", "sk_live_4eC39HqLyjWDarjtT1zdp7dcXyZ", 0.95)
    ]


def test_findings_never_overlap() -> None:
    text = " ".join(
        ["+44 20 7946 0958", "4111 1111 1111 1111", "10.0.0.1", "fe80::1", "a@b.io"] * 50
    )
    findings = DETECTOR.find(text)
    assert len(findings) == 250
    for left, right in itertools.pairwise(findings):
        assert left.end <= right.start


def test_kinds_filter() -> None:
    text = "a@b.io 4111 1111 1111 1111"
    assert [f.kind for f in PiiDetector(["credit_card"]).find(text)] == ["credit_card"]
    assert [f.kind for f in PiiDetector({"email"}).find(text)] == ["email"]
    assert PiiDetector([]).find(text) == []
    assert PiiDetector().kinds == frozenset(PII_KINDS)


def test_unknown_kind_names_the_valid_ones_without_echoing() -> None:
    with pytest.raises(InvalidInputError, match="choose from email, phone") as err:
        PiiDetector(["email", "passport<script>"])
    assert "script" not in str(err.value)
    with pytest.raises(InvalidInputError, match="not a str"):
        PiiDetector("email")


def test_empty_and_plain_text() -> None:
    assert DETECTOR.find("") == []
    assert DETECTOR.find("nothing to see here, just words.") == []


def test_text_over_the_limit() -> None:
    with pytest.raises(
        InvalidInputError, match="text of 100001 characters exceeds the 100000-character limit"
    ):
        DETECTOR.find("a" * (MAX_TEXT_CHARS + 1))
    assert DETECTOR.find("a" * MAX_TEXT_CHARS) == []


@pytest.mark.parametrize("value", [None, b"a@b.io", 42, ["a@b.io"]])
def test_non_str_names_the_type(value: object) -> None:
    with pytest.raises(InvalidInputError, match=f"text must be a str, not {type(value).__name__}"):
        DETECTOR.find(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "\ud800 lone surrogate a@b.io",
        UNICODE_DIGITS,
        "\x00\x01\u200b\u202e\ufeff" * 100,
        "\u0663" * 5000 + ":" * 5000 + "-" * 5000,
        "1" * 50_000,
        "1 " * 40_000,
        "a" * 30_000 + "1",
    ],
)
def test_odd_input_does_not_crash(text: str) -> None:
    findings = DETECTOR.find(text)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)


def test_long_texts_with_many_findings_stay_fast_and_disjoint() -> None:
    # Each of these was quadratic in a first version (PEM headers without an END line searched
    # to the end of the text each; every card checked against every card kept).
    assert len(DETECTOR.find("-----BEGIN PRIVATE KEY-----" * 3_000)) == 3_000
    findings = DETECTOR.find("4111 1111 1111 1111 " * 4_000)
    assert len(findings) == 4_000
    assert all(f.kind == "credit_card" and f.end - f.start == 19 for f in findings)


def test_no_false_positives_on_unicode_digits() -> None:
    # Only ASCII digits make numbers here: what renders as digits elsewhere is left alone.
    assert found(UNICODE_DIGITS) == []


def test_find_many_keeps_order() -> None:
    results = DETECTOR.find_many(["a@b.io", "", "ssn 123-45-6789"])
    assert [[f.kind for f in r] for r in results] == [["email"], [], ["us_ssn"]]
    assert all(isinstance(f, Finding) for r in results for f in r)
