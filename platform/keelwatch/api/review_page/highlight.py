"""A review item's text as HTML with each finding highlighted. Pure: strings in, a string out.

Findings may overlap (a rule and a PII detector, two blocklists), so the text is cut at every
span boundary into segments; each segment covered by at least one finding becomes one
``<mark>`` whose classes name the categories covering it (``cat-violence``, the highest score
first) and whose ``title`` lists those findings (``violence 0.93 rules:violence``).
``data-findings`` holds the indices of the covering findings, so the marks of finding ``i``
joined in order are exactly ``text[start:end]`` (the browser test checks that). Every piece of
text and every attribute is escaped.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from keelwatch.entities.moderation import ReviewFinding

_CLASS_UNSAFE = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class Segment:
    """``text[start:end]`` and the indices of the findings covering all of it (may be none)."""

    start: int
    end: int
    covering: tuple[int, ...]


def category_class(category: str) -> str:
    """The CSS class of a category: ``cat-`` and the name reduced to ``[a-z0-9-]``."""
    slug = _CLASS_UNSAFE.sub("-", category.lower()).strip("-")
    return f"cat-{slug or 'other'}"


def segments(length: int, findings: Sequence[ReviewFinding]) -> list[Segment]:
    """Cut ``[0, length)`` at every finding's start and end (spans clamped to the text, empty
    ones ignored); consecutive segments always differ in their covering findings."""
    spans = []
    for index, finding in enumerate(findings):
        start = min(max(finding.start, 0), length)
        end = min(max(finding.end, 0), length)
        if start < end:
            spans.append((index, start, end))
    cuts = sorted({0, length, *(s for _, s, _ in spans), *(e for _, _, e in spans)})
    out: list[Segment] = []
    for start, end in itertools.pairwise(cuts):
        if start >= end:
            continue
        covering = tuple(i for i, s, e in spans if s <= start and end <= e)
        out.append(Segment(start, end, covering))
    return out


def finding_label(finding: ReviewFinding) -> str:
    """``violence 0.93 rules:violence`` (and the PII kind when there is one)."""
    kind = f" {finding.kind}" if finding.kind and finding.kind != finding.category else ""
    return f"{finding.category} {finding.score:.2f} {finding.source}{kind}"


def highlight(text: str, findings: Sequence[ReviewFinding]) -> str:
    """``text`` as escaped HTML, every segment covered by a finding wrapped in a ``<mark>``."""
    parts: list[str] = []
    for segment in segments(len(text), findings):
        chunk = html.escape(text[segment.start : segment.end], quote=False)
        if not segment.covering:
            parts.append(chunk)
            continue
        covering = sorted(segment.covering, key=lambda i: (-findings[i].score, i))
        classes: list[str] = []
        for index in covering:
            name = category_class(findings[index].category)
            if name not in classes:
                classes.append(name)
        if len(covering) > 1:
            classes.append("overlap")
        title = "; ".join(finding_label(findings[i]) for i in covering)
        indices = " ".join(str(i) for i in sorted(segment.covering))
        parts.append(
            f'<mark class="{" ".join(classes)}" title="{html.escape(title)}" '
            f'data-findings="{indices}">{chunk}</mark>'
        )
    return "".join(parts)
