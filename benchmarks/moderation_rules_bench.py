"""Moderation rules: texts per second of ``RuleFilter.find`` with the default profanity list on
one core, over 100,000 generated short texts (at most 280 characters; about 5% hold an
obfuscated blocklisted word, about 10% hold emoji, accents or fullwidth letters). No peers:
this measures only Keelwatch's own filter. The issue's target is >= 100,000 texts/s for rules
and PII together; this script times the rules alone.

It also reports how many planted words were found and how many clean texts were flagged (the
clean vocabulary includes words such as "classic", "Scunthorpe" and "as" that contain a
keyword), so that speed is never bought with recall.

``--pipeline`` times the issue's three figures instead, on the rule bench's texts and the PII
bench's texts interleaved (half each): rules + PII together (``RuleFilter.find_many`` and
``PiiDetector.find_many`` over batches of 1,000, target >= 100,000 texts/s), the whole pipeline
with the embedded classifier in batches (``Moderator.moderate_many``, the moderator of the
default settings with the lexicon, target >= 50,000 texts/s), and one text at a time through
that pipeline (``Moderator.moderate``, p50 <= 0.2 ms). alt-profanity-check's own
``predict_prob`` and the issue's token-set blocklist lookup (670,000 texts/s where the targets
were set; each figure is also shown scaled by it) are timed on the same texts as yardsticks for
the machine (the issue measured
140,000 texts/s in batches and 230 calls/s one at a time).

Usage: ``python benchmarks/moderation_rules_bench.py [--quick] [--texts N] [--runs N]
[--pipeline]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(Path(__file__).resolve().parent)]

from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, RuleFilter  # noqa: E402

TARGET_TEXTS_PER_S = 100_000
VOCABULARY = """
the model drift alert was raised as the classic pass rate fell in Scunthorpe and Essex we assess
the cocktail of features before glass release a therapist grape shell hello document circumstance
mass assume analysis data pipeline latency p99 at 12:30 on 2024-11-30 is it fine to retrain now or
wait for more labels thanks team 42 tokens cost 0.5 dollars
"""
WORDS = VOCABULARY.split()
PLANTED = ("fuck", "shit", "bitch", "asshole", "cunt", "dick")
DECORATIONS = ("\U0001f600", "caf\u00e9", "na\u0131ve", "\uff46\uff49\uff4e\uff45", "\u00fcber")


def obfuscate(word: str, rng: random.Random) -> str:
    """One of the obfuscations the filter undoes."""
    kind = rng.randrange(6)
    if kind == 0:
        return word.upper()
    if kind == 1:
        return word.translate(str.maketrans("isaeo", "15@30"))
    if kind == 2:
        return word[:2] + word[1] * rng.randint(2, 5) + word[2:]
    if kind == 3:
        return rng.choice((".", " ", "-", "_")).join(word)
    if kind == 4:
        return word.replace("i", "\u0456").replace("c", "\u0441").replace("a", "\u0430")
    return word


def make_texts(count: int) -> tuple[list[str], list[bool]]:
    """Texts and whether each holds a planted word."""
    rng = random.Random(11)
    texts, planted = [], []
    for _ in range(count):
        words = rng.choices(WORDS, k=rng.randint(3, 40))
        # A long tail of tokens never seen before (ids, hashes), as real traffic has.
        words.append(f"id{rng.getrandbits(40):x}")
        if rng.random() < 0.10:
            words.insert(rng.randrange(len(words) + 1), rng.choice(DECORATIONS))
        dirty = rng.random() < 0.05
        if dirty:
            words.insert(rng.randrange(len(words) + 1), obfuscate(rng.choice(PLANTED), rng))
        text = " ".join(words)
        while len(text) > 280:
            words.pop(next(i for i, w in enumerate(words) if w in WORDS))  # never the planted
            text = " ".join(words)
        texts.append(text)
        planted.append(dirty)
    return texts, planted


PIPELINE_TARGETS = {"rules+pii": 100_000.0, "pipeline batches": 50_000.0}
YARDSTICK_TEXTS_PER_S = 670_000
P50_TARGET_MS = 0.2
BATCH = 1_000


def pipeline_texts(count: int) -> list[str]:
    """The rule bench's and the PII bench's texts, interleaved."""
    from moderation_pii_bench import make_texts as make_pii_texts

    rules_texts, _ = make_texts(count - count // 2)
    pii_texts, _ = make_pii_texts(count // 2)
    mixed = [text for pair in zip(rules_texts, pii_texts, strict=False) for text in pair]
    return mixed + rules_texts[len(pii_texts) :]


def run_pipeline(count: int, runs: int) -> int:
    """Print the three figures of issue #11's benchmark (median of ``runs``) and a yardstick."""
    from keelwatch.monitoring.moderation.pii import PiiDetector
    from keelwatch.monitoring.service.moderators import build_moderator, default_blocklists
    from keelwatch.settings import ModerationSettings

    texts = pipeline_texts(count)
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    rules, pii = RuleFilter(default_blocklists()), PiiDetector()
    moderator = build_moderator(ModerationSettings())

    def rate(work: object) -> float:
        times = []
        for _ in range(runs):
            began = time.process_time()
            work()  # type: ignore[operator]
            times.append(time.process_time() - began)
        return len(texts) / statistics.median(times)

    # The yardstick for the machine: a token-set blocklist lookup (670,000 texts/s
    # where the targets were set). Figures are also shown scaled by it to that machine.
    blocklist = frozenset(DEFAULT_PROFANITY.keywords)
    token_set = rate(lambda: [not blocklist.isdisjoint(t.lower().split()) for t in texts])
    scale = YARDSTICK_TEXTS_PER_S / token_set

    # Each batch's results are dropped before the next, as a worker writes a chunk's out:
    # holding all 100,000 texts' findings would time the collector walking them, not the work.
    def run_rules_pii() -> None:
        for batch in batches:
            rules.find_many(batch)
            pii.find_many(batch)

    def run_whole() -> None:
        for batch in batches:
            moderator.moderate_many(batch)

    rules_pii = rate(run_rules_pii)
    whole = rate(run_whole)
    sample = texts[: min(len(texts), 5_000)]
    p50s = []
    for _ in range(runs):
        latencies = []
        for text in sample:
            began = time.perf_counter()
            moderator.moderate(text)
            latencies.append(time.perf_counter() - began)
        p50s.append(statistics.median(latencies) * 1000)
    p50 = statistics.median(p50s)
    decisions: dict[str, int] = {}
    for batch in batches:
        for result in moderator.moderate_many(batch):
            decisions[result.decision.value] = decisions.get(result.decision.value, 0) + 1
    print(f"texts={len(texts):,} (rule bench + PII bench, interleaved) batches of {BATCH:,}")
    print(f"runs={runs}, CPU time of this process (one core), median run")
    print(f"decisions: {decisions}")
    print(f"yardstick: token-set lookup {token_set:,.0f} texts/s here, "
          f"{YARDSTICK_TEXTS_PER_S:,} where the targets were set (scale x{scale:.2f})")  # fmt: skip
    print(f"{'figure':<34} {'here':>12} {'scaled':>12} {'target':>12}")
    for name, value in (("rules+pii", rules_pii), ("pipeline batches", whole)):
        target = PIPELINE_TARGETS[name]
        verdict = "ok" if value >= target else "below"
        scaled = value * scale
        verdict += "" if value >= target else (" (scaled ok)" if scaled >= target else "")
        print(
            f"{name + ' (texts/s)':<34} {value:>12,.0f} {scaled:>12,.0f} {target:>12,.0f} {verdict}"
        )
    verdict = "ok" if p50 <= P50_TARGET_MS else "above"
    label = "one at a time p50 (ms)"
    print(f"{label:<34} {p50:>12.3f} {p50 / scale:>12.3f} {P50_TARGET_MS:>12} {verdict}")
    try:
        from profanity_check import predict_prob  # type: ignore[import-untyped]
    except ImportError:
        return 0
    began = time.process_time()
    for batch in batches:
        predict_prob(batch)
    yard_batch = len(texts) / (time.process_time() - began)
    began = time.process_time()
    for text in sample[:500]:
        predict_prob([text])
    yard_one = 500 / (time.process_time() - began)
    print(f"yardstick: alt-profanity-check predict_prob {yard_batch:,.0f} texts/s in batches, "
          f"{yard_one:,.0f} calls/s one at a time (issue's machine: 140,000 and 230)")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 texts, 3 runs")
    parser.add_argument("--pipeline", action="store_true", help="the issue's three figures")
    args = parser.parse_args()
    if args.quick:
        args.texts, args.runs = 10_000, 3
    if args.pipeline:
        return run_pipeline(args.texts, args.runs)
    texts, planted = make_texts(args.texts)
    rules = RuleFilter([DEFAULT_PROFANITY])
    found = [bool(rules.find(text)) for text in texts]
    hits = sum(f and p for f, p in zip(found, planted, strict=True))
    false_alarms = sum(f and not p for f, p in zip(found, planted, strict=True))
    groups = {
        "all": texts,
        "clean": [t for t, p in zip(texts, planted, strict=True) if not p],
        "planted": [t for t, p in zip(texts, planted, strict=True) if p],
        "non-ascii": [t for t in texts if not t.isascii()],
    }
    print(
        f"texts={len(texts):,} mean chars={statistics.fmean(map(len, texts)):.0f} runs={args.runs}"
    )
    print(f"planted found {hits:,}/{sum(planted):,}; clean texts flagged {false_alarms:,}")
    print("no peers: Keelwatch's own filter only, one core, default profanity list")
    print(f"{'texts':<10} {'count':>8} {'median s':>10} {'texts/s':>12}")
    rate_all = 0.0
    for name, group in groups.items():
        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            for text in group:
                rules.find(text)
            times.append(time.perf_counter() - began)
        seconds = statistics.median(times)
        rate = len(group) / seconds if seconds else float("inf")
        rate_all = rate if name == "all" else rate_all
        print(f"{name:<10} {len(group):>8,} {seconds:>10.3f} {rate:>12,.0f}")
    verdict = "ok" if rate_all >= TARGET_TEXTS_PER_S else "below"
    print(f"rules alone: {rate_all:,.0f} texts/s ({verdict} the {TARGET_TEXTS_PER_S:,}/s budget)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
