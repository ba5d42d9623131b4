"""PII detectors: e-mail addresses, phone numbers, payment cards, IBANs, US social security
numbers, IP addresses and API-key-like secrets, found as spans of the original text.

Every finding has category ``pii``, source ``pii`` and one of the kinds in :data:`PII_KINDS`.
Scores say how sure a match is, not how sensitive it is:

=============  =====  ==================================================================
kind           score  why
=============  =====  ==================================================================
credit_card    1.0    13-19 digits, a known issuer prefix and the Luhn checksum
iban           1.0    a country in the length table and the ISO 7064 mod-97 checksum
secret         0.95   a provider's key format (AWS, GitHub, Slack, Stripe, Google) or a
                      PEM private-key header; 0.8 for ``Bearer <token>``; 0.6 for an
                      anonymous high-entropy token (>= 32 chars, >= 4.0 bits/char)
email          0.9    the shape ``local@domain.tld`` (nothing checks that it exists)
ipv4 / ipv6    0.9    parsed by :mod:`ipaddress`; 0.5 for an IPv4 whose four parts are
                      single digits (``1.2.3.4`` is just as likely a version string)
us_ssn         0.8    ``AAA-GG-SSSS`` outside the never-issued ranges (no checksum exists)
phone          0.7    ``+`` and 7-15 digits, or national groups with separators
=============  =====  ==================================================================

Deliberate limits, so that ordinary text stays quiet: a bare run of 10+ digits is a phone only
after ``+`` ("Order #123456789012" is not one); national numbers need at least three groups or a
bracketed area code ("555-1234" and "1000-2000" are not phones), and dates ("2024-11-30"), the
SSN shape ("123-45-6789") and thousands grouping ("10 000 000", so also "612 345 678") never
are; SSNs need their dashes; IBANs are checked only for the countries in :data:`IBAN_LENGTHS`;
an anonymous token needs a digit and a letter; only ASCII digits make numbers.

Speed: the patterns are compiled once, and each family's scanner runs on a text only when a gate
says it could match. The gates run over a whole batch at once (:meth:`PiiDetector.find_many`
joins it with newlines): an ``@``; ``::`` or six colons between hex groups; a run of 15 word
characters, ``Bearer`` or a PEM header; and digit clusters (7+ digits and separators), each
sorted into the kinds it could hold (a bare date holds none, a bare digit run is no phone, a
card needs 13 digits). The usual short text costs no Python of its own.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import (
    Category,
    Finding,
    check_batch,
    check_text,
    non_ascii,
    text_starts,
)

SOURCE = "pii"
PII_KINDS = ("email", "phone", "credit_card", "iban", "us_ssn", "ipv4", "ipv6", "secret")

#: IBAN length per country (ISO 13616 registry) for the countries checked; others are skipped.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27,
    "KW": 30, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15,
    "PL": 28, "PT": 25, "QA": 29, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TR": 26, "UA": 29,
}  # fmt: skip

_A = re.ASCII  # \d and \w mean ASCII only: a Unicode digit is not part of a card number.
# Unicode on purpose: internationalized addresses ("ünïcode@example.com") are addresses too.
_EMAIL = re.compile(r"(?<![\w.%+-])\w[\w.%+-]{0,63}@(?:[\w-]{1,63}\.)+[^\W\d_]{2,24}(?![\w-])")
# An address written out to dodge scrapers: "john dot smith at example dot com",
# "anna.k[at]example[dot]org". "at" and "dot" as plain words need a known top-level domain at
# the end ("stared at the dot matrix" is no address); bracketed forms need a letters-only one.
_SPELLED_TLDS = (
    "com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|pt|ie|ca|au|nz|in|jp|"
    "cn|br|mx|ru|info|biz|me|us|eu|app|dev|ai"
)
_DOT = r"(?:\s*[\[({]dot[\])}]\s*|\s+dot\s+|\.)"
_AT = r"(?:\s*[\[({]at[\])}]\s*|\s+at\s+)"
_BRACKETED_AT = re.compile(r"[\[({]at[\])}]", re.IGNORECASE | _A)
_PLAIN_AT = re.compile(r"\s+at\s+", re.IGNORECASE | _A)
_LOCAL_MARK = re.compile(r"[\d_.]|\sdot\s|[\[({]dot[\])}]", re.IGNORECASE | _A)
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+-])[a-z0-9_+-]{{1,64}}(?:{_DOT}[a-z0-9_+-]{{1,64}}){{0,3}}{_AT}"
    rf"[a-z0-9-]{{1,63}}(?:{_DOT}[a-z0-9-]{{1,63}}){{0,3}}{_DOT}(?:{_SPELLED_TLDS})(?![\w-])",
    re.IGNORECASE | _A,
)
# No lookahead at the end, so that a failed match cannot backtrack through the digit groups;
# what follows is checked in Python instead.
# The "+" comes first and the lookbehind after it (the same condition, one character further
# back), so that the regex engine skips to each "+" in C instead of trying every position.
_PHONE_INTL = re.compile(r"\+(?<![\w+]\+)[1-9](?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){1,7}", _A)
# National-looking shapes that are something else. A date with a four-digit year never starts a
# phone number; a two-digit-year date, the SSN shape (3-2-4) and thousands grouping are refused
# only as the whole match (French numbers such as "12.34.56.78.90" start like a date).
_DATE_PREFIX = r"(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})(?!\d)"
_NOT_PHONE = (
    rf"(?:{_DATE_PREFIX}|\d{{1,2}}[-./]\d{{1,2}}[-./]\d{{2}}|\d{{3}}-\d{{2}}-\d{{4}}"
    r"|\d{1,3}(?:[ .]\d{3})+)"
)
# Three groups or more, or a bracketed area code; the shapes above are refused in the pattern
# (lookaheads), so that the common date costs no Python.
# The leading lookahead lets most positions fail on one character test.
_PHONE_NATIONAL = re.compile(
    rf"(?=[\d(])(?<![\w+.\-/])(?!{_DATE_PREFIX})(?!{_NOT_PHONE}(?!\d|[ .-]\d))"
    r"(?:\(\d{2,5}\)[ .-]?(?:\d{2,5}[ .-]){0,4}|\d{2,5}[ .-](?:\d{2,5}[ .-]){1,4})\d{2,5}",
    _A,
)
_NOT_PHONE_FULL = re.compile(_NOT_PHONE, _A)
_PHONE_SEPARATORS = re.compile(r"[ .\-)]+")
# A whole run of digit groups (possessive: nothing to backtrack into); the card numbers in it
# are found by _cards_within.
_CARD = re.compile(r"(?<![\w-])\d++(?:[ -]\d++)*+", _A)
_IBAN = re.compile(r"(?<!\w)[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?", _A)
_SSN = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])", _A)
_SPACED_SSN_SHAPE = re.compile(r"\d{3} \d{2} \d{4}", _A)
# Spaced ("612 48 3390") only right after words that say what it is: alone it reads as a phone.
_SSN_SPACED = re.compile(
    r"(?:\bssn|social security(?: number| no\.?)?)\W{0,3}(?:is\W{1,3})?"
    r"(?<![\w-])(\d{3}) (\d{2}) (\d{4})(?![\w-])",
    re.IGNORECASE | _A,
)
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?!\w|\.\d)", _A)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}(?![\w.])|[0-9A-Fa-f]{0,4})",
    _A,
)
_SECRET = re.compile(
    r"(?<![\w-])(?:(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|[sp]k_live_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35})(?![\w-])"
    r"|-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----",
    _A,
)
_BEARER = re.compile(r"\bBearer[ \t]+([A-Za-z0-9._~+/-]{16,}=*)", _A | re.IGNORECASE)
_TOKEN = re.compile(r"(?<![\w-])[\w-]{32,}(?![\w-])", _A)
# Pre-checks: a digit cluster as long as the shortest numeric kind ("1.2.3.4"), and a token as
# long as the shortest key format (a Slack token), anchored at a word start so that the scan
# tries each word once.
# It searches the batch with every digit made a "0" (_DIGITS_AS_ZERO): a pattern that starts with a
# literal byte lets the regex engine skip to each candidate in C, three times faster than
# testing a digit class at every position.
_NUMERIC_GATE = re.compile(rb"0[0 ().+/-]{5,}0")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
# The batch gates (see PiiDetector.find_many) search all texts of a batch joined by newlines, as
# ASCII bytes, which none of them can match across; each is a literal (bytes.find) or starts
# with a character class, so the regex engine skips ahead in C between candidates. Every
# numeric kind lies within one digit cluster (its characters are all in the cluster's class);
# an IPv6 address has "::" or six colons between hex groups (full form, or with an IPv4 tail).
# Substrings that start a spelled-out address ("[at]", " dot "): found with bytes.find, far
# cheaper than a regex with word boundaries over the whole batch.
_SPELLED_EMAIL_NEEDLES = (b"[at]", b" dot ", b"[dot]")
# Searched in the batch lower-cased with every bracket made a square one ("(AT)" is "[at]").
_NEEDLE_VIEW = bytes.maketrans(b"({)}ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"[[]]abcdefghijklmnopqrstuvwxyz")
_IPV6_GATE = re.compile(rb":(?::|(?:[0-9A-Fa-f]{1,4}:){5})")
# A PEM header or a bearer token (str.find for each: an alternation is searched position by
# position).
_WORDY_NEEDLES = (b"-----begin", b"bearer")
# A digit cluster that is only a date (four-digit year) holds no numeric kind: too few digits
# for a card, the wrong shape for an SSN or IPv4, and phones refuse a date at their start.
_DATE_CLUSTER = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}", _A)
# A secret is a run of 15+ [\w-] characters: the batch, as ASCII (any other character one
# "?"), is translated to "a" for those and " " for the rest, and searched for "a" * 15.
_TOKEN_BYTES = bytes(
    ord("a") if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_-") else ord(" ")
    for b in range(256)
)
_TOKEN_RUN = b"a" * 15
_PHONE_MARKS = frozenset(" .-()+")
_NOT_DIGITS = bytes(b for b in range(256) if not 48 <= b <= 57)
_DIGIT_RUN = re.compile(r"\d+", _A)
# Digit clusters already sorted into the kinds they could hold, kept up to this many.
_KNOWN_CLUSTERS = 50_000

_Candidate = tuple[int, int, float, str]  # start, end, score, kind
_Scanner = Callable[[str], Iterator[_Candidate]]


def _luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_issuer_ok(digits: str) -> bool:
    """A known issuer prefix (IIN) with a length that issuer uses; random digit runs fail."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if two in (36, 38) or 300 <= int(digits[:3]) <= 305:  # Diners Club
        return 14 <= n <= 19
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:  # Discover
        return 16 <= n <= 19
    if 3528 <= four <= 3589 or two == 62:  # JCB, UnionPay
        return 16 <= n <= 19
    return two in (50, 56, 57, 58, 63, 67) and 13 <= n <= 19  # Maestro


def _iban_ok(compact: str) -> bool:
    """ISO 7064 mod 97-10: the first four characters moved to the end, letters as 10..35."""
    rearranged = compact[4:] + compact[:4]
    if not rearranged.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _shannon_bits(token: str) -> float:
    """Shannon entropy of the token's character distribution, in bits per character."""
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values())


def _scan_email(text: str) -> Iterator[_Candidate]:
    for m in _EMAIL.finditer(text):
        if m.end() - m.start() <= 254:
            yield m.start(), m.end(), 0.9, "email"
    for m in _OBFUSCATED_EMAIL.finditer(text):
        if m.end() - m.start() > 254 or not _spelled_address_ok(m.group()):
            continue
        yield m.start(), m.end(), 0.8, "email"


def _spelled_address_ok(candidate: str) -> bool:
    """A bracketed "[at]" says address whatever precedes it; a plain " at " only after a
    local part that looks like one (a dot, digit or underscore): "john dot smith at example dot
    com" is an address, "look at google dot com" is not."""
    if _BRACKETED_AT.search(candidate):
        return True
    local = _PLAIN_AT.split(candidate, maxsplit=1)[0]
    return bool(_LOCAL_MARK.search(local))


def _national_shape_ok(candidate: str) -> bool:
    """What _PHONE_NATIONAL asks of a whole match: three groups or a bracketed area code, and
    none of the shapes in _NOT_PHONE."""
    groups = len(_PHONE_SEPARATORS.split(candidate.lstrip("(")))
    bracketed = candidate.startswith("(")
    return (groups >= 3 or bracketed) and not _NOT_PHONE_FULL.fullmatch(candidate)


def _one_long_number(candidate: str) -> bool:
    """A national phone match of over 15 digits that is one long number rather than a phone
    followed by another number: longer than any phone (E.164: 15 digits) even without its last
    group (a tracking number), or groups of four like a card number that failed Luhn."""
    groups = [g for g in _PHONE_SEPARATORS.split(candidate) if g]
    digits = sum(map(str.isdigit, candidate))
    if digits - sum(map(str.isdigit, groups[-1])) > 15:
        return True
    return len(groups) >= 4 and all(len(g) == 4 and g.isdigit() for g in groups[:4])


def _scan_phone(text: str) -> Iterator[_Candidate]:
    for pattern in (_PHONE_INTL, _PHONE_NATIONAL):
        for m in pattern.finditer(text):
            start, end = m.span()
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                continue  # glued to a longer number or word
            candidate = m.group()
            digits = sum(map(str.isdigit, candidate))
            if digits > 15 and pattern is _PHONE_NATIONAL and _one_long_number(candidate):
                continue
            if digits > 15:  # ran into a following number: drop whole trailing groups
                while digits > 15:
                    cut = max(candidate.rfind(" "), candidate.rfind("-"), candidate.rfind("."))
                    if cut <= 0:
                        break
                    candidate, end = candidate[:cut], start + cut
                    digits = sum(map(str.isdigit, candidate))
                # What is left must pass the pattern's own shape rules again.
                if pattern is _PHONE_NATIONAL and not _national_shape_ok(candidate):
                    continue
            if 7 <= digits <= 15:
                yield start, end, 0.7, "phone"


def _cards_within(run: str) -> Iterator[tuple[int, int]]:
    """Spans of valid card numbers in a run of digit groups: windows of whole groups with 13-19
    digits, most digits first, so that "4 4111 1111 1111 1111" (after "about 3 or") still
    yields the card, and so do two cards printed one after the other."""
    groups = [(g.start(), g.end()) for g in _DIGIT_RUN.finditer(run)]
    windows = []
    for i in range(len(groups)):
        if run[groups[i][0]] not in "23456":
            continue  # no issuer's numbers start with 0, 1, 7, 8 or 9
        digits = ""
        for j in range(i, len(groups)):
            digits += run[groups[j][0] : groups[j][1]]
            if len(digits) > 19:
                break  # bounds the work on a long run of groups
            if len(digits) >= 13 and _card_issuer_ok(digits) and _luhn_ok(digits):
                windows.append((-len(digits), groups[i][0], groups[j][1]))
    taken = _Disjoint()
    for _, start, end in sorted(windows):
        if taken.add(start, end):
            yield start, end


def _scan_card(text: str) -> Iterator[_Candidate]:
    for m in _CARD.finditer(text):
        start, end = m.span()
        if end - start < 13 or (end < len(text) and (text[end].isalpha() or text[end] == "_")):
            continue
        for a, b in _cards_within(m.group()):
            yield start + a, start + b, 1.0, "credit_card"


def _scan_iban(text: str) -> Iterator[_Candidate]:
    for m in _IBAN.finditer(text):
        candidate = m.group().upper()
        length = IBAN_LENGTHS.get(candidate[:2])
        if length is None:
            continue
        # The pattern may have taken a following word too ("... 7654 32 ABCD"): cut the match
        # where the country's length ends, which must be the end of a group.
        cut = seen = 0
        while seen < length and cut < len(candidate):
            seen += candidate[cut] != " "
            cut += 1
        if seen < length:
            continue
        if cut < len(candidate) and candidate[cut] != " ":
            continue
        if _iban_ok(candidate[:cut].replace(" ", "")):
            yield m.start(), m.start() + cut, 1.0, "iban"


def _scan_ssn(text: str) -> Iterator[_Candidate]:
    for m in _SSN.finditer(text):
        area, group, serial = m.groups()
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        yield m.start(), m.end(), 0.8, "us_ssn"
    for m in _SSN_SPACED.finditer(text):
        area, group, serial = m.groups()
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        # Above a phone's 0.7: the words before it say it is an SSN.
        yield m.start(1), m.end(3), 0.85, "us_ssn"


def _scan_ipv4(text: str) -> Iterator[_Candidate]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:  # an octet above 255 or with a leading zero
            continue
        version_like = all(len(part) == 1 for part in m.group().split("."))
        yield m.start(), m.end(), 0.5 if version_like else 0.9, "ipv4"


def _scan_ipv6(text: str) -> Iterator[_Candidate]:
    for m in _IPV6.finditer(text):
        start, end = m.span()
        if end < len(text) and (text[end].isalnum() or text[end] == "_"):
            continue
        if not any(c.isdigit() or c.isalpha() for c in m.group()):
            continue  # a bare "::" is a separator in prose far more often than an address
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:  # times ("12:30:45"), "std::map" pieces and other colon runs
            continue
        yield start, end, 0.9, "ipv6"


def _scan_secret(text: str) -> Iterator[_Candidate]:
    # A PEM header's finding runs to its END line when there is one. str.find rather than a
    # lazy regex, and one search per label, so that many headers without an END stay linear.
    block_ends: dict[str, int] = {}
    for m in _SECRET.finditer(text):
        end = m.end()
        label = m.group(1)
        if label is not None:
            marker = f"-----END {label}PRIVATE KEY-----"
            known = block_ends.get(label)
            if known is None or -1 < known < end:  # not searched yet, or that END was earlier
                found = text.find(marker, end)
                known = block_ends[label] = found + len(marker) if found >= 0 else -1
            end = max(end, known)
        yield m.start(), end, 0.95, "secret"
    for m in _BEARER.finditer(text):
        yield m.start(1), m.end(1), 0.8, "secret"
    for m in _TOKEN.finditer(text):
        token = m.group()
        # A digit and a letter both: long identifiers and words are not keys.
        if (
            any(c.isdigit() for c in token)
            and any(c.isalpha() for c in token)
            and _shannon_bits(token) >= 4.0
        ):
            yield m.start(), m.end(), 0.6, "secret"


_SCANNERS: dict[str, _Scanner] = {
    "email": _scan_email,
    "phone": _scan_phone,
    "credit_card": _scan_card,
    "iban": _scan_iban,
    "us_ssn": _scan_ssn,
    "ipv4": _scan_ipv4,
    "ipv6": _scan_ipv6,
    "secret": _scan_secret,
}
# Every printed IBAN has a digit cluster too: its BBAN carries an account number.
_NUMERIC_KINDS = ("phone", "credit_card", "iban", "us_ssn", "ipv4")


class _Disjoint:
    """Spans kept so far, disjoint and sorted, so that a new span is checked against its two
    neighbours only (a long text with thousands of findings stays O(n log n) to check)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, start: int, end: int) -> bool:
        """Keep ``[start, end)`` when it overlaps no kept span; say whether it was kept."""
        i = bisect.bisect_left(self.starts, start)
        if (i > 0 and self.ends[i - 1] > start) or (i < len(self.starts) and self.starts[i] < end):
            return False
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        return True


def _select(candidates: list[_Candidate]) -> list[Finding]:
    """Non-overlapping findings: higher score first (checksum-validated kinds score 1.0), then
    the longer span, then the earlier one; a candidate overlapping a kept one is dropped."""
    candidates.sort(key=lambda c: (-c[2], c[0] - c[1], c[0]))
    kept = _Disjoint()
    chosen = [c for c in candidates if kept.add(c[0], c[1])]
    chosen.sort()
    return [Finding(Category.PII, s, e, score, SOURCE, kind) for s, e, score, kind in chosen]


class PiiDetector:
    """Finds PII of the chosen kinds (all of :data:`PII_KINDS` when ``kinds`` is None)."""

    def __init__(self, kinds: Collection[str] | None = None) -> None:
        if kinds is None:
            chosen = set(PII_KINDS)
        else:
            if isinstance(kinds, str):
                raise InvalidInputError("kinds must be a collection of kind names, not a str")
            chosen = set(kinds)
            unknown = chosen - set(PII_KINDS)
            if unknown:
                raise InvalidInputError(
                    f"{len(unknown)} unknown PII kind(s): choose from {', '.join(PII_KINDS)}"
                )
        self.kinds = frozenset(chosen)
        self._email = "email" in chosen
        self._numeric = tuple(_SCANNERS[k] for k in _NUMERIC_KINDS if k in chosen)
        self._ipv6 = "ipv6" in chosen
        self._secret = "secret" in chosen
        self._cluster_kinds: dict[tuple[bytes, bytes], tuple[str, ...]] = {}

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping PII findings in ``text``, ordered by start."""
        return self.find_many([check_text(text)])[0]

    def find_many(self, texts: Iterable[str]) -> list[list[Finding]]:
        """:meth:`find` for each text, in order (the same findings).

        The gates run once over the whole batch (joined by newlines, one regex scan in C) and
        only the scanners a text's gates call for run on that text: a text with a date as its
        only digit cluster, or with nothing a gate looks for, costs no Python of its own.
        """
        if isinstance(texts, str):
            raise InvalidInputError("texts must be a sequence of str, not one str")
        batch = list(texts)
        check_batch(batch)
        found: list[list[Finding]] = [[] for _ in batch]
        if not batch:
            return found
        starts = text_starts(batch)
        wanted: dict[int, set[str]] = {}
        # The gates look only for ASCII, so they search the batch as bytes, one per character
        # (any other character one "?"): positions stay those of the joined text, and a batch
        # with an emoji is not searched as four bytes per character.
        parts = batch
        others = non_ascii(batch)
        if others:
            parts = batch.copy()
            for index in others:
                parts[index] = batch[index].encode("ascii", "replace").decode("ascii")
        raw = "\n".join(["", *parts]).encode("ascii")

        def want(position: int, kinds: Iterable[str]) -> None:
            wanted.setdefault(bisect.bisect_right(starts, position) - 1, set()).update(kinds)

        view = raw.translate(_NEEDLE_VIEW)

        def want_each(needle: bytes, kinds: tuple[str, ...]) -> None:
            position = view.find(needle)
            while position >= 0:
                want(position, kinds)
                position = view.find(needle, position + 1)

        if self._email:
            want_each(b"@", ("email",))
            for needle in _SPELLED_EMAIL_NEEDLES:
                want_each(needle, ("email",))
        if self._numeric:
            cache = self._cluster_kinds
            for match in _NUMERIC_GATE.finditer(raw.translate(_DIGITS_AS_ZERO)):
                # Clusters recur (dates, version strings, a product's order numbers): each
                # distinct one is sorted once.
                start, end = match.span()
                key = (raw[start:end], raw[start - 1 : start])
                kinds = cache.get(key)
                if kinds is None:
                    kinds = self._numeric_kinds(key[0].decode("ascii"), key[1].decode("ascii"))
                    if len(cache) < _KNOWN_CLUSTERS:
                        cache[key] = kinds
                if kinds:
                    want(match.start(), kinds)
        if self._ipv6 and b":" in raw:
            for match in _IPV6_GATE.finditer(raw):
                want(match.start(), ("ipv6",))
        if self._secret:
            for needle in _WORDY_NEEDLES:
                want_each(needle, ("secret",))
            tokens = raw.translate(_TOKEN_BYTES)
            position = tokens.find(_TOKEN_RUN)
            while position >= 0:
                want(position, ("secret",))
                end = tokens.find(b" ", position)
                position = -1 if end < 0 else tokens.find(_TOKEN_RUN, end)
        for index, families in wanted.items():
            if families:
                found[index] = self._scan(batch[index], families)
        return found

    def _numeric_kinds(self, cluster: str, before: str) -> tuple[str, ...]:
        """The numeric kinds a digit cluster could hold."""
        if before != "+" and _DATE_CLUSTER.fullmatch(cluster):
            return ()
        digits = len(cluster.encode("ascii").translate(None, _NOT_DIGITS))
        kinds = []
        # An IBAN's digits follow its letters, or come in groups: "DE89 3704 ...", "...WEST12".
        if before.isalpha() or " " in cluster:
            kinds.append("iban")
        # A phone has separators, or follows "+": a bare run of digits is not one.
        if digits >= 7 and (before == "+" or not _PHONE_MARKS.isdisjoint(cluster)):
            kinds.append("phone")
        if digits >= 13:
            kinds.append("credit_card")
        dashed = digits >= 9 and "-" in cluster
        if dashed or (digits == 9 and _SPACED_SSN_SHAPE.fullmatch(cluster)):
            kinds.append("us_ssn")
        if cluster.count(".") >= 3:
            kinds.append("ipv4")
        return tuple(kind for kind in kinds if kind in self.kinds)

    def _scan(self, text: str, families: set[str]) -> list[Finding]:
        """Findings of the kinds (or families: ``numeric`` never appears) the gates found."""
        candidates: list[_Candidate] = []
        if "email" in families and self._email:
            candidates.extend(_scan_email(text))
        for kind in _NUMERIC_KINDS:
            if kind in families:
                candidates.extend(_SCANNERS[kind](text))
        if "ipv6" in families and self._ipv6:
            candidates.extend(_scan_ipv6(text))
        if "secret" in families and self._secret:
            candidates.extend(_scan_secret(text))
        return _select(candidates) if candidates else []
