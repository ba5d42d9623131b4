"""Prometheus counters of content moderation, set where texts are moderated (the workers).

``keelwatch_moderation_texts_total{model,version,direction,decision}`` counts moderated texts
by decision; ``keelwatch_moderation_findings_total{model,version,direction,category,decision}``
counts texts with at least one finding of a category, by the text's decision (a text with
three e-mail addresses counts once under ``pii``), so ``findings / texts`` is the share of
texts a category touched.

They live on the process's default registry like the workers' own series
(``keelwatch_workers.metrics``): with ``worker.metrics_multiproc_dir`` set, the worker exports
``PROMETHEUS_MULTIPROC_DIR`` before any of this is imported, so pool processes write their
counts to files that the worker's endpoint aggregates. :func:`count_tallies` is called after
the commit that stored the tallies, and counts only tallies that commit inserted: a rerun chunk
(``replaced``/``unchanged``) adds nothing, so a counter never counts a text twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from keelwatch.entities.moderation import ModerationTally

#: Key of ``ModerationTally.detail`` that says what storing the tally did (see
#: ``storage.moderation_tallies.save_tally``).
RECORDED_KEY = "recorded"

MODERATION_TEXTS = Counter(
    "keelwatch_moderation_texts",
    "Texts moderated (model inputs and outputs, API checks), by decision.",
    ["model", "version", "direction", "decision"],
)
MODERATION_FINDINGS = Counter(
    "keelwatch_moderation_findings",
    "Moderated texts with at least one finding of a category, by the text's decision.",
    ["model", "version", "direction", "category", "decision"],
)


def count_tallies(tallies: Iterable[ModerationTally]) -> int:
    """Add newly inserted tallies to the counters (call after their commit); returns how many
    tallies were counted."""
    counted = 0
    for tally in tallies:
        if tally.detail.get(RECORDED_KEY) != "inserted":
            continue
        counted += 1
        labels = (tally.model_name, tally.model_version, tally.direction)
        for decision, texts in tally.decisions.items():
            if texts:
                MODERATION_TEXTS.labels(*labels, decision).inc(texts)
        for category, by_decision in tally.categories.items():
            for decision, texts in by_decision.items():
                if texts:
                    MODERATION_FINDINGS.labels(*labels, category, decision).inc(texts)
    return counted
