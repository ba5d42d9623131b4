"""The moderation pipeline: filters find spans, the policy decides, redaction makes the text
that may be kept. Fails closed: a text that cannot be moderated (not text, invalid UTF-8, too
long, a filter that raised) is sent to ``review`` with a reason, never passed through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import compress
from typing import NamedTuple, Protocol

import numpy as np

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category, Finding
from keelwatch.monitoring.moderation.policy import Decision, ModerationPolicy
from keelwatch.monitoring.moderation.redaction import placeholder, redact

_ALLOW = Decision.ALLOW
#: Longest text moderated by default; longer ones go to review (the cap is configurable).
DEFAULT_MAX_CHARS = 20_000


class TextFilter(Protocol):
    """Anything that finds spans in texts: rules, PII detectors, classifiers."""

    def find_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings of each text, in order (spans of that text)."""
        ...


#: ``Finding.kind`` of a classifier's whole-text findings.
CLASSIFIER_KIND = "classifier"

Scorer = Callable[[Sequence[str]], Mapping[Category, Sequence[float]]]
"""Scores a batch of texts: per category, one probability in [0, 1] per text."""


class ClassifierFilter:
    """A text classifier as a filter: a category scoring at least ``min_score`` gives a finding
    spanning the whole text, sourced ``classifier:<name>``."""

    def __init__(self, scorer: Scorer, *, name: str, min_score: float = 0.5) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise InvalidInputError("classifier min_score must be in [0, 1]")
        self._scorer = scorer
        self.source = f"classifier:{name}"
        self.min_score = min_score

    def find_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """One whole-text finding per category over ``min_score``, per non-empty text."""
        findings: list[list[Finding]] = [[] for _ in texts]
        scored = list(compress(range(len(texts)), map(str.strip, texts)))
        if not scored:
            return findings
        scores = self._scorer([texts[i] for i in scored])
        for category, values in scores.items():
            if len(values) != len(scored):
                raise InvalidInputError(
                    f"{self.source} returned {len(values)} {category.value} scores "
                    f"for {len(scored)} texts"
                )
            clipped = np.clip(np.asarray(values, dtype=float), 0.0, 1.0)
            # Only the texts over min_score cost a step of their own.
            for k in np.flatnonzero(clipped >= self.min_score).tolist():
                i = scored[k]
                findings[i].append(
                    Finding(
                        category, 0, len(texts[i]), float(clipped[k]), self.source, CLASSIFIER_KIND
                    )
                )
        return findings


class ModerationResult(NamedTuple):
    """The verdict on one text.

    ``findings`` are spans of the original text (every finding, including those below every
    threshold); ``redacted`` is the text with each finding that called for redact or more
    replaced by its placeholder, the only form a blocked text is ever kept in; ``error`` says
    why a text could not be moderated (its decision is then ``review``). A named tuple rather
    than a dataclass: a batch makes one per text, and most are a plain allow.
    """

    decision: Decision
    findings: tuple[Finding, ...]
    redacted: str
    error: str = ""

    @property
    def categories(self) -> tuple[Category, ...]:
        """Categories of the findings, each once, in taxonomy order."""
        present = {f.category for f in self.findings}
        return tuple(c for c in Category if c in present)

    @property
    def released(self) -> str | None:
        """The text that may leave the system: the redacted text for allow and redact, nothing
        for review (until a person approves) and block."""
        if self.decision in (Decision.ALLOW, Decision.REDACT):
            return self.redacted
        return None


class Moderator:
    """Filters plus a policy. :meth:`moderate_many` runs each filter once over the batch."""

    def __init__(
        self,
        filters: Sequence[TextFilter],
        policy: ModerationPolicy | None = None,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if max_chars <= 0:
            raise InvalidInputError("max_chars must be positive")
        self.filters = tuple(filters)
        self.policy = policy or ModerationPolicy()
        self.max_chars = max_chars

    def moderate(self, text: object) -> ModerationResult:
        """The verdict on one text (str, or UTF-8 bytes)."""
        return self.moderate_many([text])[0]

    def moderate_many(self, texts: Sequence[object]) -> list[ModerationResult]:
        """The verdict on each text, in order; never raises for a bad text."""
        clean = self._all_valid(texts)
        if clean is not None:
            return self._moderate_valid(clean)
        results: list[ModerationResult | None] = [None] * len(texts)
        valid: list[int] = []
        accepted: list[str] = []
        for i, raw in enumerate(texts):
            text, problem = _as_text(raw, self.max_chars)
            if problem:
                results[i] = _failed(problem)
            else:
                valid.append(i)
                accepted.append(text)
        for i, result in zip(valid, self._moderate_valid(accepted), strict=True):
            results[i] = result
        return [r for r in results if r is not None]

    def _all_valid(self, texts: Sequence[object]) -> list[str] | None:
        """``texts`` as a list when every one is a moderatable str (checked with C-level
        steps over the whole batch, the common case); None when one needs a closer look."""
        if not texts or set(map(type, texts)) != {str}:
            return None
        batch: list[str] = list(texts)  # type: ignore[arg-type]
        if max(map(len, batch)) > self.max_chars:
            return None
        joined = "".join(batch)
        if "\x00" in joined:
            return None
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return batch

    def _moderate_valid(self, clean: list[str]) -> list[ModerationResult]:
        """The verdicts on texts already checked by :func:`_as_text`."""
        per_text: list[list[Finding]] = [[] for _ in clean]
        failed: dict[int, str] = {}
        for text_filter in self.filters:
            try:
                found = text_filter.find_many(clean)
            except Exception:  # noqa: BLE001 - one bad text must not sink the batch: retry singly
                found = self._one_by_one(text_filter, clean, failed)
            # Most texts have no finding: only those that do cost a step here.
            for j in compress(range(len(found)), found):
                per_text[j].extend(found[j])
        results = [
            self._verdict(text, findings) if findings else ModerationResult(_ALLOW, (), text)
            for text, findings in zip(clean, per_text, strict=True)
        ]
        for j, reason in failed.items():
            results[j] = _failed(reason)
        return results

    def _one_by_one(
        self, text_filter: TextFilter, texts: Sequence[str], failed: dict[int, str]
    ) -> list[list[Finding]]:
        out: list[list[Finding]] = []
        for j, text in enumerate(texts):
            try:
                out.append(text_filter.find_many([text])[0])
            except Exception as exc:  # noqa: BLE001 - fail closed, naming the filter and error type
                failed.setdefault(
                    j, f"filter {type(text_filter).__name__} failed ({type(exc).__name__})"
                )
                out.append([])
        return out

    def _verdict(self, text: str, findings: list[Finding]) -> ModerationResult:
        if not findings:
            return ModerationResult(Decision.ALLOW, (), text)
        findings.sort(key=lambda f: (f.start, f.end))
        decisions = [self.policy.decide_finding(f) for f in findings]
        # A classifier scores the whole text, so it cannot say what to redact: where the text
        # has spans of that category (a rule's word) those are redacted, and where it has none
        # a person decides rather than the whole text turning into one placeholder.
        spanned = {f.category for f in findings if f.kind != CLASSIFIER_KIND}
        for k, (finding, decided) in enumerate(zip(findings, decisions, strict=True)):
            if finding.kind == CLASSIFIER_KIND and decided is Decision.REDACT:
                decisions[k] = Decision.ALLOW if finding.category in spanned else Decision.REVIEW
        decision = max(decisions, key=lambda d: d.severity)
        # A blocked text is kept only redacted, whole-text findings included; otherwise only
        # spans are replaced.
        actionable = [
            f
            for f, d in zip(findings, decisions, strict=True)
            if d is not Decision.ALLOW and (f.kind != CLASSIFIER_KIND or decision is Decision.BLOCK)
        ]
        return ModerationResult(decision, tuple(findings), redact(text, actionable))


def review_view(text: str, findings: Sequence[Finding]) -> tuple[str, tuple[Finding, ...]]:
    """What a reviewer sees: ``text`` with its PII redacted but other findings in clear, and
    those findings' spans moved onto the redacted text (a finding overlapping PII is dropped,
    as is a whole-text classifier finding, which highlights nothing)."""
    pii = sorted((f for f in findings if f.category is Category.PII), key=lambda f: f.start)
    # PII detectors return disjoint spans; keep only disjoint ones so shifts add up.
    disjoint: list[Finding] = []
    for finding in pii:
        if not disjoint or finding.start >= disjoint[-1].end:
            disjoint.append(finding)
    shown = redact(text, disjoint)
    moved: list[Finding] = []
    for finding in findings:
        if finding.category is Category.PII or finding.kind == CLASSIFIER_KIND:
            continue
        if any(p.start < finding.end and finding.start < p.end for p in disjoint):
            continue
        shift = sum(
            len(placeholder(p)) - (p.end - p.start) for p in disjoint if p.end <= finding.start
        )
        moved.append(
            Finding(
                finding.category,
                finding.start + shift,
                finding.end + shift,
                finding.score,
                finding.source,
                finding.kind,
            )
        )
    return shown, tuple(moved)


def _as_text(raw: object, max_chars: int) -> tuple[str, str]:
    """(text, "") for a moderatable input; ("", reason) otherwise. Reasons name the type,
    length or byte offset, never the content."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as err:
            return "", f"invalid UTF-8 at byte {err.start}"
    if not isinstance(raw, str):
        return "", f"not text: {type(raw).__name__}"
    if len(raw) > max_chars:
        return "", f"text of {len(raw)} characters exceeds the {max_chars}-character limit"
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as err:  # lone surrogates, e.g. from a surrogateescape decode
        return "", f"invalid Unicode (a lone surrogate) at character {err.start}"
    if "\x00" in raw:
        return "", "binary data (NUL characters)"
    return raw, ""


def _failed(reason: str) -> ModerationResult:
    """Fail closed: a person looks at what could not be moderated; nothing is kept in clear."""
    return ModerationResult(Decision.REVIEW, (), "", error=reason)
