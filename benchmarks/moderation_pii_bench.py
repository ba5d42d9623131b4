"""PII detection throughput and recall: :class:`PiiDetector.find` over 100,000 generated short
texts (at most 280 characters, about 10% of them carrying one PII item of a mixed kind), on one
core (target from issue #11: 100,000 short texts/s for rules and PII together). The best run is
printed next to the median because a shared machine's other load only ever slows a run.

The other texts are chat-like sentences, many with ordinary numbers (prices, dates, times,
order numbers, version strings) so that the pre-checks do not see only easy prose. There is no
peer library to compare with (none is a dependency, and the figures would not be like for
like), so the table shows our own figures only: texts/s, and the recall per kind on the PII
the generator planted (a planted item counts as found when a finding of its kind covers it).

Usage: ``python benchmarks/moderation_pii_bench.py [--quick] [--texts N] [--runs N]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers")]

from keelwatch.monitoring.moderation.pii import PII_KINDS, PiiDetector  # noqa: E402

TARGET_TEXTS_PER_S = 100_000
WORDS = (
    "the",
    "model",
    "answered",
    "quickly",
    "and",
    "the",
    "user",
    "seemed",
    "happy",
    "with",
    "it",
    "but",
    "asked",
    "again",
    "about",
    "shipping",
    "returns",
    "weather",
    "recipes",
    "travel",
    "football",
    "music",
    "prices",
    "later",
    "tomorrow",
    "please",
    "thanks",
    "great",
    "really",
    "sure",
    "maybe",
    "never",
    "always",
    "sometimes",
)
NOISE = (
    "it costs 20 dollars",
    "see you at 10:30",
    "ref 2024-11-30",
    "Order #123456789012",
    "version 1.2.3",
    "about 3 or 4 times",
    "page 12 of 300",
    "note: done",
)


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """A Luhn-valid card number of ``length`` digits starting with ``prefix``."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, char in enumerate(reversed(body)):
        value = int(char) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    """A German IBAN with correct check digits, printed in groups of four."""
    bban = "".join(rng.choice(string.digits) for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # "DE" is 13 14, then "00"
    compact = f"DE{check:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def make_pii(kind: str, rng: random.Random) -> str:
    """One PII item of ``kind``, in a format the detector is documented to find."""
    digits = string.digits
    if kind == "email":
        return f"{rng.choice(WORDS)}.{rng.randint(1, 999)}@example{rng.randint(1, 9)}.com"
    if kind == "phone":
        return rng.choice(
            (
                f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                f"+1{rng.randint(2000000000, 9999999999)}",
            )
        )
    if kind == "credit_card":
        number = _luhn_complete(rng.choice(("4", "51", "37")), 16, rng)
        if number.startswith("37"):
            number = _luhn_complete("37", 15, rng)
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    if kind == "iban":
        return _iban(rng)
    if kind == "us_ssn":
        return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == "ipv4":
        return ".".join(str(rng.randint(10, 255)) for _ in range(4))
    if kind == "ipv6":
        return f"2001:db8::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"
    alphabet = string.ascii_letters + digits
    return rng.choice(
        (
            "AKIA" + "".join(rng.choice(string.ascii_uppercase + digits) for _ in range(16)),
            "ghp_" + "".join(rng.choice(alphabet) for _ in range(36)),
            "tok_" + "".join(rng.choice(alphabet) for _ in range(40)),
        )
    )


def make_texts(count: int, seed: int = 11) -> tuple[list[str], list[tuple[int, str, int, int]]]:
    """``count`` texts and the planted items as (text index, kind, start, end)."""
    rng = random.Random(seed)
    texts: list[str] = []
    planted: list[tuple[int, str, int, int]] = []
    for i in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
        if rng.random() < 0.3:
            words += " " + rng.choice(NOISE)
        if rng.random() < 0.1:
            kind = rng.choice(PII_KINDS)
            item = make_pii(kind, rng)
            head = words[: rng.randint(0, 120)].rstrip() + " "
            planted.append((i, kind, len(head), len(head) + len(item)))
            words = head + item + " " + rng.choice(WORDS)
        texts.append(words[:280])
    return texts, planted


def main() -> int:
    """Time the detector and print throughput and recall (exit 0: the figures are the output)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 texts, 3 runs")
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    count, runs = (10_000, 3) if args.quick else (args.texts, args.runs)
    texts, planted = make_texts(count)
    detector = PiiDetector()
    timings = []
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        results = [detector.find(text) for text in texts]
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings)
    rate = count / median
    print(f"PiiDetector.find, {count:,} texts (<= 280 chars), {len(planted):,} planted items")
    print("no peer library compared (none is a dependency); one core, median of", runs, "runs")
    print(f"{'measure':<28}{'value':>14}")
    print(f"{'median time (s)':<28}{median:>14.3f}")
    print(f"{'texts/s (median run)':<28}{rate:>14,.0f}")
    print(f"{'texts/s (best run)':<28}{count / min(timings):>14,.0f}")
    print(f"{'target texts/s (rules+PII)':<28}{TARGET_TEXTS_PER_S:>14,}")
    flagged = sum(1 for found in results if found)
    print(f"{'texts with findings':<28}{flagged:>14,}")
    # Findings that cover no planted item: noise (dates, order numbers, versions) flagged.
    spans = {i: (s, e) for i, _, s, e in planted}
    stray = sum(
        1
        for i, found in enumerate(results)
        for f in found
        if i not in spans or not f.start <= spans[i][0] < spans[i][1] <= f.end
    )
    print(f"{'findings on no planted PII':<28}{stray:>14,}")
    print(f"\n{'kind':<14}{'planted':>9}{'found':>9}{'recall':>9}")
    for kind in PII_KINDS:
        items = [p for p in planted if p[1] == kind]
        found = sum(
            any(f.kind == kind and f.start <= s and e <= f.end for f in results[i])
            for i, _, s, e in items
        )
        recall = found / len(items) if items else 1.0
        print(f"{kind:<14}{len(items):>9}{found:>9}{recall:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
