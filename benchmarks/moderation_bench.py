"""Content moderation against its peers (issue #11), in one run, on one core.

(a) Speed on generated short texts (at most 280 characters: chat-like sentences over a few
hundred words, ids, prices, dates and versions; about 3% carry profanity, often disguised, 3%
PII, 1% a hazard phrase). Keelwatch's rules (the default lexicons) against ``better-profanity``
(``profanity.contains_profanity``), Keelwatch's PII detection against ``scrubadub``
(``Scrubber().clean``), rules and PII together, the whole pipeline (rules, PII and
alt-profanity-check's classifier) in batches through ``moderate_many`` and one text at a time
(p50 per call), and ``alt-profanity-check``'s ``predict_prob`` batched and one text per call.
Keelwatch's filters run in batches (``find_many``); the peers have no batch call. The slow
peers run on a subset of the same texts (the first N); rates are compared, and the issue's
targets are printed next to the measurements with PASS/MISS, each rate also scaled by the
issue's yardstick (a token-set blocklist lookup, 670,000 texts/s where the targets were set,
timed here on the same texts).

(b) Quality on the labelled set ``tests/data/moderation_eval.jsonl``: precision and recall per
category for Keelwatch (a text is flagged for category c when any finding has category c), for
better-profanity and alt-profanity-check (profanity only; the classifier at 0.5) and scrubadub
(PII: a text is flagged when any filth is found), and recall per planted PII item and kind
(found when a finding of that kind, or a scrubadub filth of the matching type, overlaps it).

Usage: ``python benchmarks/moderation_bench.py [--quick] [--texts N]``
"""

from __future__ import annotations

import os

# One core: no BLAS or OpenMP threads under scikit-learn, before anything imports it.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers")]

from keelwatch.monitoring.moderation.findings import Category  # noqa: E402
from keelwatch.monitoring.moderation.lexicon import DEFAULT_BLOCKLISTS  # noqa: E402
from keelwatch.monitoring.moderation.pii import PiiDetector  # noqa: E402
from keelwatch.monitoring.moderation.pipeline import Moderator  # noqa: E402
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, RuleFilter  # noqa: E402
from keelwatch.monitoring.service.moderators import build_moderator  # noqa: E402
from keelwatch.settings import ModerationSettings  # noqa: E402

EVAL_SET = ROOT / "tests" / "data" / "moderation_eval.jsonl"
SEED = 11
YARDSTICK_TEXTS_PER_S = 670_000
RULES_PII_TARGET = 100_000
RULES_PII_VS_SCRUBADUB = 25.0
PIPELINE_BATCH_TARGET = 50_000
SINGLE_P50_TARGET_MS = 0.2
HAZARD_CATEGORIES = tuple(c.value for c in Category if c is not Category.CUSTOM)
# scrubadub's filth types that are one of our PII kinds.
SCRUBADUB_KINDS = {
    "email": "email",
    "phone": "phone",
    "credit_card": "credit_card",
    "social_security_number": "us_ssn",
    "credential": "secret",
}

# ---------------------------------------------------------------------------------------------
# Generated traffic

SUBJECTS = (
    "I",
    "you",
    "we",
    "the team",
    "my manager",
    "the model",
    "our customer",
    "the new intern",
    "my sister",
    "the support bot",
    "this app",
    "the landlord",
    "the service",
)
VERBS = (
    "needs",
    "wants",
    "asked about",
    "is looking at",
    "forgot",
    "sent",
    "fixed",
    "liked",
    "hated",
    "booked",
    "cancelled",
    "reviewed",
    "shipped",
    "updated",
    "found",
)
OBJECTS = (
    "the quarterly report",
    "a table for four",
    "the flight to Lisbon",
    "our retro notes",
    "a classic cocktail recipe",
    "the Scunthorpe office",
    "a therapist appointment",
    "the assessment form",
    "a new password",
    "the release notes",
    "the invoice",
    "the shell script",
    "a grape juice order",
    "the weekend forecast",
    "the Essex warehouse",
    "the hiking trail map",
    "a lentil soup recipe",
    "the dashboard",
    "a mass email",
    "the cat's vet visit",
    "a bass guitar",
    "the pass rate",
    "an Assassin's Creed bundle",
    "the dataset",
    "a pull request",
)
TAILS = (
    "before Friday",
    "yesterday",
    "again",
    "for the third time",
    "this morning",
    "after lunch",
    "as usual",
    "on 2024-11-30",
    "at 12:30",
    "for $19.99",
    "with version 2.14.1",
    "with order #88213401",
    "in room 4B",
    "thanks a lot",
    "if that's ok",
    "lol",
    "asap please",
    "no rush",
    "and it worked",
    "but it failed",
)
EXTRAS = (
    "Can you help?",
    "What do you think?",
    "Thanks!",
    "Let me know.",
    "Any update?",
    "Great job everyone.",
    "Is it going to rain?",
    "Please summarise this.",
    "Happy birthday \U0001f389",
    "Caf\u00e9 at 9?",
    "\u00dcber cool.",
    "See you soon.",
)
PROFANE = ("fuck", "shit", "bullshit", "asshole", "bitch", "dickhead", "piss", "wanker")
HAZARDS = (
    "you are worthless",
    "kill yourself",
    "I will kill you",
    "I want to end my life",
    "send nudes",
    "buy cocaine",
    "build a bomb",
)


def _obfuscate(word: str, rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return word.translate(str.maketrans("isaeo", "15@30"))
    if kind == 1:
        return word[:2] + word[1] * rng.randint(2, 4) + word[2:]
    if kind == 2:
        return ".".join(word)
    if kind == 3:
        return word.upper()
    return word


def _luhn_card(rng: random.Random) -> str:
    body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, char in enumerate(reversed(digits)):
            value = int(char) * (2 if i % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    raise AssertionError("unreachable")


def _pii(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return f"mail me at user{rng.randrange(10_000)}@example.com"
    if kind == 1:
        return f"call +1 415 555 {rng.randrange(1000, 9999)}"
    if kind == 2:
        return f"card {_luhn_card(rng)}"
    if kind == 3:
        return f"from {rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.7"
    return f"ssn {rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"


def make_texts(count: int) -> list[str]:
    """``count`` chat-like texts of at most 280 characters, seeded."""
    rng = random.Random(SEED)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 4)):
            parts.append(
                f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                f"{rng.choice(TAILS)}."
            )
            if rng.random() < 0.3:
                parts.append(rng.choice(EXTRAS))
        if rng.random() < 0.2:  # ids never seen before, as real traffic has
            parts.append(f"ref {rng.getrandbits(32):x}")
        roll = rng.random()
        if roll < 0.03:
            parts.insert(rng.randrange(len(parts) + 1), _obfuscate(rng.choice(PROFANE), rng))
        elif roll < 0.06:
            parts.append(_pii(rng))
        elif roll < 0.07:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(HAZARDS))
        text = " ".join(parts)
        texts.append(text[:280].rstrip())
    return texts


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Row:
    name: str
    texts: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.texts / self.seconds if self.seconds else float("inf")


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings (other load on a shared machine only ever slows a run)."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


def per_call_ms(texts: Sequence[str], call: Callable[[str], object]) -> list[float]:
    """Milliseconds of each call, one text per call."""
    out = []
    clock = time.perf_counter_ns
    for text in texts:
        began = clock()
        call(text)
        out.append((clock() - began) / 1e6)
    return out


def keelwatch_moderator() -> Moderator:
    """The whole pipeline as the platform builds it from default settings: the default
    lexicons, PII detection and alt-profanity-check's model (scores as ``profanity``)."""
    return build_moderator(ModerationSettings())


def profanity_check_prob() -> Callable[[list[str]], Sequence[float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from profanity_check import predict_prob  # type: ignore[import-untyped]
    return predict_prob  # type: ignore[no-any-return]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def speed(args: argparse.Namespace) -> None:
    import scrubadub  # type: ignore[import-untyped]
    from better_profanity import profanity  # type: ignore[import-untyped]

    texts = make_texts(args.texts)
    mean_chars = statistics.fmean(map(len, texts))
    print(
        f"(a) speed: {len(texts):,} generated texts, mean {mean_chars:.0f} chars, "
        f"max {max(map(len, texts))}; best of {args.runs} runs; one core"
    )
    rules = RuleFilter(DEFAULT_BLOCKLISTS)
    profanity_only = RuleFilter([DEFAULT_PROFANITY])
    pii = PiiDetector()
    moderator = keelwatch_moderator()
    predict_prob = profanity_check_prob()
    profanity.load_censor_words()
    scrubber = scrubadub.Scrubber()
    # Warm caches (the rules' known-clean words, compiled patterns) as a running worker has.
    for text in texts[:2000]:
        rules.find(text)
        profanity_only.find(text)
        pii.find(text)
    moderator.moderate_many(texts[:2000])

    batches = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]

    # Keelwatch's filters in batches (find_many, as the pipeline and the workers call them);
    # the peers have no batch call and run text by text.
    def run_rules() -> None:
        for batch in batches:
            rules.find_many(batch)

    def run_profanity_only() -> None:
        for batch in batches:
            profanity_only.find_many(batch)

    def run_pii() -> None:
        for batch in batches:
            pii.find_many(batch)

    def run_rules_pii() -> None:
        for batch in batches:
            rules.find_many(batch)
            pii.find_many(batch)

    # The yardstick for the machine: a token-set blocklist lookup.
    blocklist = frozenset(DEFAULT_PROFANITY.keywords)

    def run_token_set() -> None:
        for text in texts:
            blocklist.isdisjoint(text.lower().split())

    def run_pipeline() -> None:
        for i in range(0, len(texts), args.batch):
            moderator.moderate_many(texts[i : i + args.batch])

    def run_apc() -> None:
        for i in range(0, len(texts), args.batch):
            predict_prob(texts[i : i + args.batch])

    bp_texts = texts[: args.better_profanity_texts]
    scrub_texts = texts[: args.scrubadub_texts]
    token_set = Row("token-set lookup (yardstick)", len(texts), best_of(args.runs, run_token_set))
    rows = [
        Row("Keelwatch rules (default lexicons)", len(texts), best_of(args.runs, run_rules)),
        Row(
            "Keelwatch rules (profanity list only)",
            len(texts),
            best_of(args.runs, run_profanity_only),
        ),
        Row(
            "better-profanity contains_profanity",
            len(bp_texts),
            best_of(1, lambda: [profanity.contains_profanity(t) for t in bp_texts]),
            "subset",
        ),
        Row("Keelwatch PII", len(texts), best_of(args.runs, run_pii)),
        Row(
            "scrubadub Scrubber().clean",
            len(scrub_texts),
            best_of(1, lambda: [scrubber.clean(t) for t in scrub_texts]),
            "subset",
        ),
        Row("Keelwatch rules + PII", len(texts), best_of(args.runs, run_rules_pii)),
        Row(
            f"Keelwatch pipeline, batches of {args.batch}",
            len(texts),
            best_of(args.runs, run_pipeline),
        ),
        Row(
            f"alt-profanity-check, batches of {args.batch}",
            len(texts),
            best_of(args.runs, run_apc),
        ),
    ]
    apc_single = texts[: args.single_classifier_texts]
    apc_ms = per_call_ms(apc_single, lambda t: predict_prob([t]))
    rows.append(Row("alt-profanity-check, one text per call", len(apc_single), sum(apc_ms) / 1e3))
    single = texts[: args.single_texts]
    single_ms = per_call_ms(single, moderator.moderate)
    rows.append(Row("Keelwatch pipeline, one text per call", len(single), sum(single_ms) / 1e3))
    rules_row, prof_row, bp_row, pii_row, scrub_row, both_row, pipe_row = rows[:7]
    print(f"{'':<42} {'texts':>8} {'seconds':>9} {'texts/s':>11}  note")
    for row in [token_set, *rows]:
        line = f"{row.name:<42} {row.texts:>8,} {row.seconds:>9.3f} {row.rate:>11,.0f}  {row.note}"
        print(line.rstrip())
    p50 = statistics.median(single_ms)
    p99 = statistics.quantiles(single_ms, n=100)[98]
    apc_p50 = statistics.median(apc_ms)
    print(
        f"one text per call: Keelwatch pipeline p50 {p50:.3f} ms, p99 {p99:.3f} ms; "
        f"alt-profanity-check p50 {apc_p50:.3f} ms"
    )
    print()
    print("ratios (same texts; peers on the first N of them)")
    print(
        f"  rules (default lexicons) / better-profanity   {rules_row.rate / bp_row.rate:>10,.0f}x"
    )
    print(f"  rules (profanity only) / better-profanity     {prof_row.rate / bp_row.rate:>10,.0f}x")
    print(
        f"  PII / scrubadub                               {pii_row.rate / scrub_row.rate:>10,.1f}x"
    )
    print(
        f"  rules + PII / scrubadub                       {both_row.rate / scrub_row.rate:>10,.1f}x"
    )
    print()
    scale = YARDSTICK_TEXTS_PER_S / token_set.rate
    print(
        f"issue #11 targets (scaled: x{scale:.2f}, the token-set lookup's "
        f"{YARDSTICK_TEXTS_PER_S:,}/s where they were set over its {token_set.rate:,.0f}/s here)"
    )
    checks = (
        (
            f"rules + PII >= {RULES_PII_TARGET:,} texts/s",
            f"{both_row.rate:,.0f}/s, scaled {both_row.rate * scale:,.0f}/s",
            both_row.rate >= RULES_PII_TARGET,
        ),
        (
            f"rules + PII >= {RULES_PII_VS_SCRUBADUB:.0f}x scrubadub",
            f"{both_row.rate / scrub_row.rate:,.1f}x",
            both_row.rate / scrub_row.rate >= RULES_PII_VS_SCRUBADUB,
        ),
        (
            f"pipeline in batches >= {PIPELINE_BATCH_TARGET:,} texts/s",
            f"{pipe_row.rate:,.0f}/s, scaled {pipe_row.rate * scale:,.0f}/s",
            pipe_row.rate >= PIPELINE_BATCH_TARGET,
        ),
        (
            f"pipeline one text p50 <= {SINGLE_P50_TARGET_MS} ms",
            f"{p50:.3f} ms",
            p50 <= SINGLE_P50_TARGET_MS,
        ),
    )
    for label, measured, ok in checks:
        print(f"  {label:<40} {measured:>32}  {verdict(ok)}")


# ---------------------------------------------------------------------------------------------
# Quality on the labelled set


def load_eval_set() -> list[dict[str, object]]:
    with EVAL_SET.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def precision_recall(flags: Sequence[bool], truth: Sequence[bool]) -> tuple[float, float]:
    """Precision and recall of ``flags`` (NaN for an undefined ratio)."""
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    flagged, positive = sum(flags), sum(truth)
    return (tp / flagged if flagged else float("nan"), tp / positive if positive else float("nan"))


def overlaps(spans: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    return any(a < end and start < b for a, b in spans)


def fmt(pr: tuple[float, float] | None) -> str:
    if pr is None:
        return f"{'-':>11}"
    return " ".join("  -  " if value != value else f"{value:.3f}" for value in pr)


def quality() -> bool:
    """Print the quality tables; whether Keelwatch's PII recall is at least scrubadub's."""
    import scrubadub
    from better_profanity import profanity

    records = load_eval_set()
    texts = [str(r["text"]) for r in records]
    labels = [set(r["categories"]) for r in records]  # type: ignore[call-overload]
    results = keelwatch_moderator().moderate_many(texts)
    rules_pii = Moderator([RuleFilter(DEFAULT_BLOCKLISTS), PiiDetector()]).moderate_many(texts)
    profanity.load_censor_words()
    better = [profanity.contains_profanity(t) for t in texts]
    apc = [float(p) >= 0.5 for p in profanity_check_prob()(texts)]
    scrubber = scrubadub.Scrubber()
    filth = [list(scrubber.iter_filth(t)) for t in texts]
    notes: dict[str, int] = {}
    for record in records:
        notes[str(record["note"])] = notes.get(str(record["note"]), 0) + 1
    print(
        f"(b) quality on {EVAL_SET.relative_to(ROOT)}: {len(records)} texts "
        f"({', '.join(f'{n} {k}' for k, n in sorted(notes.items()))})"
    )
    print("precision / recall per category (a text is flagged for c when any finding has c)")
    header = (
        f"{'category':<11} {'n':>4}  {'Keelwatch':>11}  {'rules+PII':>11}  {'better-prof':>11}"
        f"  {'alt-prof-chk':>11}  {'scrubadub':>11}"
    )
    print(header)
    for category in HAZARD_CATEGORIES:
        truth = [category in label for label in labels]
        ours = precision_recall(
            [category in {c.value for c in r.categories} for r in results], truth
        )
        base = precision_recall(
            [category in {c.value for c in r.categories} for r in rules_pii], truth
        )
        bp = precision_recall(better, truth) if category == "profanity" else None
        ap = precision_recall(apc, truth) if category == "profanity" else None
        sc = precision_recall([bool(f) for f in filth], truth) if category == "pii" else None
        print(
            f"{category:<11} {sum(truth):>4}  {fmt(ours)}  {fmt(base)}  {fmt(bp)}  {fmt(ap)}"
            f"  {fmt(sc)}"
        )
    clean = [i for i, label in enumerate(labels) if not label]
    flagged_clean = sum(bool(results[i].findings) for i in clean)
    print(f"clean texts with any Keelwatch finding: {flagged_clean}/{len(clean)}")
    # Recall per planted PII item.
    print()
    print("PII recall per planted item and kind")
    print(f"{'kind':<12} {'items':>5}  {'Keelwatch':>9}  {'scrubadub':>9}")
    found_ours: dict[str, list[bool]] = {}
    found_scrub: dict[str, list[bool]] = {}
    scrub_covers = set(SCRUBADUB_KINDS.values())
    for record, result, record_filth in zip(records, results, filth, strict=True):
        text = str(record["text"])
        for kind, value in record.get("pii_values", []):  # type: ignore[attr-defined]
            start = text.index(value)
            end = start + len(value)
            ours_spans = [(f.start, f.end) for f in result.findings if f.kind == kind]
            theirs = [(f.beg, f.end) for f in record_filth if SCRUBADUB_KINDS.get(f.type) == kind]
            found_ours.setdefault(kind, []).append(overlaps(ours_spans, start, end))
            found_scrub.setdefault(kind, []).append(overlaps(theirs, start, end))
    total_ours = total_scrub = total = 0
    for kind in sorted(found_ours):
        n = len(found_ours[kind])
        ours_n, scrub_n = sum(found_ours[kind]), sum(found_scrub[kind])
        total, total_ours, total_scrub = total + n, total_ours + ours_n, total_scrub + scrub_n
        theirs_text = f"{scrub_n / n:>9.3f}" if kind in scrub_covers else f"{'no det.':>9}"
        print(f"{kind:<12} {n:>5}  {ours_n / n:>9.3f}  {theirs_text}")
    print(f"{'all':<12} {total:>5}  {total_ours / total:>9.3f}  {total_scrub / total:>9.3f}")
    ok = total_ours >= total_scrub
    print(f"Keelwatch PII recall >= scrubadub's on the labelled set: {verdict(ok)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--better-profanity-texts", type=int, default=2_000)
    parser.add_argument("--scrubadub-texts", type=int, default=10_000)
    parser.add_argument("--single-texts", type=int, default=10_000)
    parser.add_argument("--single-classifier-texts", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="10,000 texts, peers on 200/1,000")
    args = parser.parse_args()
    if args.quick:
        args.texts, args.runs = 10_000, 1
        args.better_profanity_texts, args.scrubadub_texts = 200, 1_000
        args.single_texts, args.single_classifier_texts = 2_000, 200
    print(
        f"moderation_bench {datetime.now(UTC).date().isoformat()} python {sys.version.split()[0]}"
    )
    print()
    ok = quality()
    print()
    speed(args)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
