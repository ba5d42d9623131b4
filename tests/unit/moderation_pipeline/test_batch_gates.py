"""The screens and gates of the rule filter and the PII detector only skip work: on many
generated texts (the benchmarks' generators plus texts made to sit on the gates' edges),
``find_many`` over a batch, and ``find`` text by text, give exactly what the word-by-word rule
pass and every PII scanner, run on each text unscreened, give."""

from __future__ import annotations

import random
import string
import sys
from pathlib import Path

import pytest

from keelwatch.monitoring.moderation.findings import Finding
from keelwatch.monitoring.moderation.pii import _SCANNERS, PiiDetector, _select
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, RuleFilter

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture(scope="module")
def bench_texts() -> list[str]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import moderation_pii_bench
        import moderation_rules_bench
    finally:
        sys.path.remove(str(BENCHMARKS))
    rules_texts, _ = moderation_rules_bench.make_texts(3_000)
    pii_texts, _ = moderation_pii_bench.make_texts(3_000, seed=5)
    return rules_texts + pii_texts


def edge_texts(count: int, seed: int) -> list[str]:
    """Digits, separators, colons, letters and long tokens in random mixtures."""
    rng = random.Random(seed)
    pieces = [
        "+", "(", ")", "-", ".", " ", "/", ":", "::", "@", "#", "\n", "\t", "é", "\u0660",
        "2024-11-30", "+2024-11-30", "30/11/2024", "12:30:45", "1.2.3.4", "10.20.30.40",
        "123-45-6789", "4111 1111 1111 1111", "4111111111111111", "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432", "fe80::1", "0:0:0:0:0:ffff:1.2.3.4", "1:2:3:4:5:6:7:8",
        "Bearer ", "bearer ", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
        "AKIAABCDEFGHIJKLMNOP", "xoxb-1234567890-abc", "a@b.co", "x_y-z", "fuck", "s h i t",
    ]  # fmt: skip
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 12)):
            roll = rng.random()
            if roll < 0.45:
                parts.append(rng.choice(pieces))
            elif roll < 0.8:
                parts.append("".join(rng.choices(string.digits, k=rng.randint(1, 16))))
            else:
                alphabet = string.ascii_letters + string.digits + "_-"
                parts.append("".join(rng.choices(alphabet, k=rng.randint(1, 40))))
        out.append("".join(parts) if rng.random() < 0.5 else " ".join(parts))
    return out


def ungated(text: str) -> list[Finding]:
    candidates = [c for scan in _SCANNERS.values() for c in scan(text)]
    return _select(candidates) if candidates else []


def test_pii_batch_gates_skip_only_scanners_that_would_find_nothing(
    bench_texts: list[str],
) -> None:
    texts = bench_texts + edge_texts(6_000, seed=11) + ["", " ", "\n", "@", "+1"]
    detector = PiiDetector()
    for first in range(0, len(texts), 500):
        batch = texts[first : first + 500]
        assert detector.find_many(batch) == [ungated(t) for t in batch]
    assert [detector.find(t) for t in texts[:300]] == [ungated(t) for t in texts[:300]]


def test_pii_kinds_subset_filters_after_the_gates() -> None:
    detector = PiiDetector(kinds={"email", "us_ssn"})
    found = detector.find_many(["a@b.co 123-45-6789 4111 1111 1111 1111", "2024-11-30"])
    assert [f.kind for f in found[0]] == ["email", "us_ssn"] and found[1] == []


@pytest.mark.parametrize("with_lexicon", [False, True], ids=["profanity", "lexicon"])
def test_rule_batch_screen_equals_the_text_by_text_filter(
    bench_texts: list[str], with_lexicon: bool
) -> None:
    from keelwatch.monitoring.service.moderators import default_blocklists

    blocklists = default_blocklists() if with_lexicon else (DEFAULT_PROFANITY,)
    texts = bench_texts + edge_texts(3_000, seed=12) + [
        "i hope you die", "how to make a b0mb", "go k i l l yourself", "s.o.n of a b1tch",
        "caf\u00e9 \u0455h\u0456t", "f u c k", "ffuucckk", "", "\U0001f600",
    ]  # fmt: skip
    batched = RuleFilter(blocklists)
    one_by_one = RuleFilter(blocklists)
    unscreened = RuleFilter(blocklists)._matches  # every text looked at word by word
    for first in range(0, len(texts), 700):
        batch = texts[first : first + 700]
        expected = [unscreened(t) if t else [] for t in batch]
        assert batched.find_many(batch) == expected
        assert [one_by_one.find(t) for t in batch] == expected
