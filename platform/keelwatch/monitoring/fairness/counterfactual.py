"""Counterfactual audits of text models: the same prompt templates filled with terms naming
different groups, the model's outputs compared between groups.

The term lists are configuration, not code: ``{"female": ["she", "the woman"], "male": ["he",
"the man"]}``. :func:`expand_templates` fills every template with every term;
:func:`counterfactual_audit` takes the outputs the model gave to those prompts (in the same
order) and compares the groups:

- ``kind="score"``: one number per prompt (a sentiment or toxicity score) → ``mean_score``;
- ``kind="label"``: one label per prompt → ``positive_rate`` (share equal to ``positive_label``);
- ``kind="text"``: the generated text → ``mean_words`` (length in words) and ``refusal_rate``
  (share matching any of ``refusal_patterns``, case-insensitive regular expressions).

Each gap is the largest minus the smallest group value. Its interval is a *paired* bootstrap
over templates: a resample draws template indices with replacement and keeps all groups'
outputs for each drawn template together, so the template-to-template variation that all
groups share cancels out of the gap. Per template, a group's value is the mean over its terms,
so groups with more terms do not weigh more. ``mean_words_difference`` is judged relative to
length: it violates when its interval lies above ``difference_threshold`` times the mean
length over all prompts (a 10 % length gap by default); every other gap against
``difference_threshold`` itself. Bonferroni widening as in :func:`audit_predictions`.

Moderation flags (a moderation model's verdict per output) are out of scope here: the
moderation package has not landed; once it has, its flags are a ``kind="label"`` audit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.fairness._inputs import check_config
from keelwatch.monitoring.fairness.results import AuditConfig, Gap, Verdict

CounterfactualKind = Literal["score", "label", "text"]

#: Phrases of a refusal (case-insensitive regular expressions); configuration may replace them.
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI(?:'m| am) (?:sorry|afraid|unable|not able)\b",
    r"\bI (?:cannot|can't|can not|won't|will not) (?:help|assist|provide|comply|do that)",
    r"\bas an AI\b",
    r"\bI'm not comfortable\b",
    r"\b(?:cannot|can't) (?:fulfil|fulfill) (?:that|this)",
)

_METRICS: Mapping[str, tuple[str, ...]] = {
    "score": ("mean_score",),
    "label": ("positive_rate",),
    "text": ("mean_words", "refusal_rate"),
}


@dataclass(frozen=True)
class CounterfactualPrompt:
    """One filled template: which template, which group and term, and the prompt text."""

    template_index: int
    group: str
    term: str
    prompt: str


@dataclass(frozen=True)
class CounterfactualGroup:
    """One group's outputs: how many prompts, its metric values and their intervals."""

    group: str
    prompts: int
    metrics: Mapping[str, float]
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class CounterfactualResult:
    """A counterfactual audit: per-group values, gaps with paired intervals, the verdict."""

    kind: CounterfactualKind
    templates: int
    groups: tuple[CounterfactualGroup, ...]
    gaps: tuple[Gap, ...]
    comparisons: int
    interval_level: float
    config: AuditConfig

    @property
    def violations(self) -> list[Gap]:
        return [gap for gap in self.gaps if gap.violation]

    @property
    def verdict(self) -> Verdict:
        """``violation`` when a gap violates, ``insufficient_data`` when none is defined."""
        if self.violations:
            return "violation"
        return "pass" if self.comparisons else "insufficient_data"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (no NaN)."""
        return {
            "kind": self.kind,
            "templates": self.templates,
            "verdict": self.verdict,
            "comparisons": self.comparisons,
            "interval_level": self.interval_level,
            "config": {
                "resamples": self.config.resamples,
                "confidence": self.config.confidence,
                "seed": self.config.seed,
                "difference_threshold": self.config.difference_threshold,
                "correction": self.config.correction,
            },
            "groups": [
                {
                    "group": g.group,
                    "prompts": g.prompts,
                    "metrics": dict(g.metrics),
                    "ci": {m: [lo, hi] for m, (lo, hi) in g.ci.items()},
                }
                for g in self.groups
            ],
            "gaps": [
                {
                    "metric": gap.metric,
                    "value": gap.value,
                    "ci_low": gap.ci_low,
                    "ci_high": gap.ci_high,
                    "threshold": gap.threshold,
                    "direction": gap.direction,
                    "violation": gap.violation,
                    "groups": list(gap.groups) if gap.groups else None,
                    "reason": gap.reason,
                }
                for gap in self.gaps
            ],
        }


def expand_templates(
    templates: Sequence[str],
    terms: Mapping[str, Sequence[str]],
    placeholder: str = "{term}",
) -> list[CounterfactualPrompt]:
    """Every template filled with every term of every group: template-major, then groups in
    the given order, then terms in order."""
    if not placeholder:
        raise InvalidInputError("placeholder must be a non-empty string")
    if isinstance(templates, str) or not templates:
        raise InvalidInputError("templates must be a non-empty list of strings")
    if len(terms) < 2:
        raise InvalidInputError(f"a counterfactual audit needs at least 2 groups, got {len(terms)}")
    for group, group_terms in terms.items():
        if isinstance(group_terms, str) or not group_terms:
            raise InvalidInputError(f"group {group!r} has no terms (give a list of strings)")
        if not all(isinstance(t, str) for t in group_terms):
            raise InvalidInputError(f"group {group!r}: terms must be strings")
    prompts: list[CounterfactualPrompt] = []
    for index, template in enumerate(templates):
        if not isinstance(template, str) or placeholder not in template:
            raise InvalidInputError(
                f"template {index} does not contain the placeholder {placeholder}"
            )
        for group, group_terms in terms.items():
            prompts.extend(
                CounterfactualPrompt(index, group, t, template.replace(placeholder, t))
                for t in group_terms
            )
    return prompts


def counterfactual_audit(
    prompts: Sequence[CounterfactualPrompt],
    outputs: Sequence[Any],
    *,
    kind: CounterfactualKind,
    positive_label: Any = 1,
    refusal_patterns: Sequence[str] = DEFAULT_REFUSAL_PATTERNS,
    config: AuditConfig | None = None,
) -> CounterfactualResult:
    """Compare the groups' outputs (``outputs[i]`` answers ``prompts[i]``); see the module
    docstring for the metrics, the paired bootstrap and the thresholds."""
    config = AuditConfig() if config is None else config
    check_config(config)
    if kind not in _METRICS:
        raise InvalidInputError("kind must be one of score, label, text")
    if len(prompts) != len(outputs):
        raise InvalidInputError(f"outputs has {len(outputs)} rows, prompts has {len(prompts)}")
    if not prompts:
        raise InvalidInputError("no prompts to audit")
    groups = list(dict.fromkeys(p.group for p in prompts))
    templates = sorted({p.template_index for p in prompts})
    if len(groups) < 2:
        raise InvalidInputError(
            f"a counterfactual audit needs at least 2 groups, got {len(groups)}"
        )
    values = _per_prompt(outputs, kind, positive_label, refusal_patterns)
    group_of = {g: i for i, g in enumerate(groups)}
    template_of = {t: i for i, t in enumerate(templates)}
    rows = np.asarray([template_of[p.template_index] for p in prompts], dtype=np.int64)
    cols = np.asarray([group_of[p.group] for p in prompts], dtype=np.int64)
    shape = (len(templates), len(groups))
    cell = rows * len(groups) + cols
    counts = np.bincount(cell, minlength=shape[0] * shape[1]).reshape(shape)
    if (counts == 0).any():
        empty = int(np.count_nonzero(counts.sum(axis=0) < len(templates)))
        raise InvalidInputError(
            f"every template needs outputs for every group; {empty} groups miss some templates"
        )
    # Per template and group: the mean over the group's terms (groups weigh equally).
    means = {
        metric: np.bincount(cell, weights=column, minlength=counts.size).reshape(shape) / counts
        for metric, column in values.items()
    }
    rng = np.random.default_rng(config.seed)
    # A paired resample is a multinomial count of each template; all groups share it.
    weights = rng.multinomial(
        len(templates), np.full(len(templates), 1 / len(templates)), size=config.resamples
    ) / len(templates)
    point = {m: v.mean(axis=0) for m, v in means.items()}
    samples = {m: weights @ v for m, v in means.items()}
    mean_words = float(values["mean_words"].mean()) if kind == "text" else 0.0
    defined = len(templates) >= 2
    comparisons = len(means) if defined else 0
    level = config.confidence
    if config.correction == "bonferroni" and comparisons:
        level = 1 - (1 - config.confidence) / comparisons
    gaps = [
        _gap(metric, point[metric], samples[metric], groups, level, config, mean_words, defined)
        for metric in means
    ]
    group_stats = tuple(
        CounterfactualGroup(
            group=name,
            prompts=int(counts[:, g].sum()),
            metrics={m: float(point[m][g]) for m in means},
            ci={m: _interval(samples[m][:, g], level) for m in means} if defined else {},
        )
        for g, name in enumerate(groups)
    )
    return CounterfactualResult(
        kind=kind,
        templates=len(templates),
        groups=group_stats,
        gaps=tuple(gaps),
        comparisons=comparisons,
        interval_level=level,
        config=config,
    )


def _per_prompt(
    outputs: Sequence[Any],
    kind: CounterfactualKind,
    positive_label: Any,
    refusal_patterns: Sequence[str],
) -> dict[str, npt.NDArray[np.float64]]:
    if kind == "score":
        try:
            scores = np.asarray(outputs, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise InvalidInputError("score outputs must be numbers") from err
        bad = int(np.count_nonzero(~np.isfinite(scores)))
        if bad or scores.ndim != 1:
            raise InvalidInputError(f"score outputs must be finite numbers: {bad} rows are not")
        return {"mean_score": scores}
    if kind == "label":
        try:
            distinct = len(set(outputs))
        except TypeError as err:
            raise InvalidInputError("label outputs must be hashable values") from err
        if distinct > 2:
            types = sorted({type(v).__name__ for v in outputs})
            raise InvalidInputError(
                f"label outputs hold {distinct} distinct values (types {', '.join(types)}); "
                "a label audit needs two"
            )
        return {"positive_rate": np.asarray([v == positive_label for v in outputs], dtype=float)}
    wrong = sum(1 for v in outputs if not isinstance(v, str))
    if wrong:
        raise InvalidInputError(f"text outputs must be strings: {wrong} rows are not")
    try:
        refusal = re.compile("|".join(f"(?:{p})" for p in refusal_patterns), re.IGNORECASE)
    except re.error as err:
        raise InvalidInputError(f"invalid refusal pattern: {err.msg}") from err
    # An empty pattern list would join to a regex matching everything: no patterns, no refusals.
    no_patterns = not refusal_patterns
    return {
        "mean_words": np.asarray([len(text.split()) for text in outputs], dtype=float),
        "refusal_rate": np.asarray(
            [False if no_patterns else bool(refusal.search(text)) for text in outputs], dtype=float
        ),
    }


def _gap(
    metric: str,
    point: npt.NDArray[np.float64],
    samples: npt.NDArray[np.float64],
    groups: Sequence[str],
    level: float,
    config: AuditConfig,
    mean_words: float,
    defined: bool,
) -> Gap:
    threshold = config.difference_threshold
    if metric == "mean_words":
        threshold *= mean_words
    name = f"{metric}_difference"
    high, low = int(point.argmax()), int(point.argmin())
    value = float(point[high] - point[low])
    if not defined:
        return Gap(
            name,
            None,
            None,
            None,
            threshold,
            "above",
            False,
            None,
            "a paired interval needs at least 2 templates",
        )
    low_ci, high_ci = _interval(samples.max(axis=1) - samples.min(axis=1), level)
    return Gap(
        metric=name,
        value=value,
        ci_low=low_ci,
        ci_high=high_ci,
        threshold=threshold,
        direction="above",
        violation=low_ci > threshold,
        groups=(groups[high], groups[low]),
    )


def _interval(samples: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)
