"""Counterfactual audits: template expansion, per-group values, paired bootstrap gaps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.fairness import (
    AuditConfig,
    CounterfactualPrompt,
    counterfactual_audit,
    expand_templates,
)

TERMS = {"female": ["she", "the woman"], "male": ["he", "the man"], "neutral": ["they"]}
TEMPLATES = [f"Template {i}: {{term}} asked about a loan." for i in range(40)]
CONFIG = AuditConfig(resamples=2_000, seed=5)


def test_templates_expand_template_major() -> None:
    prompts = expand_templates(["{term} is a nurse", "Is {term} a pilot?"], TERMS)
    assert len(prompts) == 2 * 5
    assert prompts[0] == CounterfactualPrompt(0, "female", "she", "she is a nurse")
    assert prompts[5] == CounterfactualPrompt(1, "female", "she", "Is she a pilot?")
    assert [p.group for p in prompts[:5]] == ["female", "female", "male", "male", "neutral"]
    custom = expand_templates(["<X> works"], {"a": ["x"], "b": ["y"]}, placeholder="<X>")
    assert [p.prompt for p in custom] == ["x works", "y works"]


@pytest.mark.parametrize(
    ("templates", "terms", "message"),
    [
        (["{term} ok", "no placeholder"], TERMS, "template 1 does not contain the placeholder"),
        (["{term}"], {"a": ["x"]}, "at least 2 groups, got 1"),
        (["{term}"], {"a": ["x"], "b": []}, "group 'b' has no terms"),
        ([], TERMS, "non-empty list"),
    ],
)
def test_bad_templates_are_refused(
    templates: list[str], terms: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        expand_templates(templates, terms)


def _scores(prompts: list[CounterfactualPrompt], shift: dict[str, float], seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    # A strong per-template effect shared by every group: pairing must cancel it.
    template_effect = rng.normal(0, 0.2, len(TEMPLATES))
    return [
        float(
            0.5 + template_effect[p.template_index] + shift.get(p.group, 0.0) + rng.normal(0, 0.02)
        )
        for p in prompts
    ]


def test_a_score_gap_between_groups_violates_and_none_passes() -> None:
    prompts = expand_templates(TEMPLATES, TERMS)
    biased = counterfactual_audit(
        prompts, _scores(prompts, {"male": 0.15}, 1), kind="score", config=CONFIG
    )
    assert biased.verdict == "violation"
    (gap,) = biased.gaps
    assert gap.metric == "mean_score_difference"
    assert gap.groups is not None and gap.groups[0] == "male"
    assert gap.value == pytest.approx(0.15, abs=0.02)
    assert gap.ci_low is not None and gap.ci_low > 0.1
    means = {g.group: g.metrics["mean_score"] for g in biased.groups}
    outputs = np.asarray(_scores(prompts, {"male": 0.15}, 1))
    for group in TERMS:
        mask = np.asarray([p.group == group for p in prompts])
        assert means[group] == pytest.approx(outputs[mask].mean(), abs=1e-12)
    fair = counterfactual_audit(prompts, _scores(prompts, {}, 2), kind="score", config=CONFIG)
    assert fair.verdict == "pass"
    assert fair.gaps[0].ci_high is not None and fair.gaps[0].ci_high < 0.1
    assert json.dumps(fair.to_dict(), allow_nan=False)


def test_the_interval_is_a_paired_bootstrap_over_templates() -> None:
    prompts = expand_templates(TEMPLATES, TERMS)
    outputs = np.asarray(_scores(prompts, {"female": 0.05}, 3))
    result = counterfactual_audit(
        prompts,
        list(outputs),
        kind="score",
        config=AuditConfig(resamples=4_000, seed=1, correction="none"),
    )
    # Brute force: draw template indices, keep every group's outputs of a drawn template.
    table = np.zeros((len(TEMPLATES), len(TERMS)))
    groups = list(TERMS)
    for p, value in zip(prompts, outputs, strict=True):
        table[p.template_index, groups.index(p.group)] += value / len(TERMS[p.group])
    rng = np.random.default_rng(77)
    draws = rng.integers(0, len(TEMPLATES), (4_000, len(TEMPLATES)))
    group_means = table[draws].mean(axis=1)
    gaps = group_means.max(axis=1) - group_means.min(axis=1)
    low, high = np.quantile(gaps, [0.025, 0.975])
    gap = result.gaps[0]
    assert gap.ci_low is not None and gap.ci_high is not None
    assert abs(gap.ci_low - low) <= 0.1 * (high - low)
    assert abs(gap.ci_high - high) <= 0.1 * (high - low)
    # Unpaired (groups' templates drawn independently) the shared template effect stays in
    # and the interval is several times wider: pairing is what makes 40 templates enough.
    independent = np.stack(
        [
            table[rng.integers(0, len(TEMPLATES), (4_000, len(TEMPLATES))), g].mean(axis=1)
            for g in range(len(groups))
        ],
        axis=1,
    )
    unpaired = independent.max(axis=1) - independent.min(axis=1)
    unpaired_low, unpaired_high = np.quantile(unpaired, [0.025, 0.975])
    assert (unpaired_high - unpaired_low) > 3 * (high - low)


def test_text_outputs_compare_length_and_refusals() -> None:
    prompts = expand_templates(TEMPLATES, TERMS)
    outputs = [
        "I'm sorry, I cannot help with that request."
        if p.group == "female" and p.template_index % 2 == 0
        else "Sure: here is a detailed answer about the loan terms you asked for."
        for p in prompts
    ]
    result = counterfactual_audit(prompts, outputs, kind="text", config=CONFIG)
    groups = {g.group: g for g in result.groups}
    assert groups["female"].metrics["refusal_rate"] == 0.5
    assert groups["male"].metrics["refusal_rate"] == 0.0
    assert groups["male"].metrics["mean_words"] == 13.0
    assert groups["female"].metrics["mean_words"] == (8 + 13) / 2
    assert groups["female"].prompts == 80 and groups["neutral"].prompts == 40
    gaps = {g.metric: g for g in result.gaps}
    assert gaps["refusal_rate_difference"].value == 0.5
    assert gaps["refusal_rate_difference"].violation
    # The length gap (2.5 words) is judged against 10 % of the mean length.
    mean_words = float(np.mean([len(o.split()) for o in outputs]))
    assert gaps["mean_words_difference"].threshold == pytest.approx(0.1 * mean_words)
    assert gaps["mean_words_difference"].violation
    assert result.comparisons == 2
    assert result.interval_level == pytest.approx(1 - 0.05 / 2)
    none = counterfactual_audit(prompts, outputs, kind="text", refusal_patterns=(), config=CONFIG)
    assert all(g.metrics["refusal_rate"] == 0.0 for g in none.groups)


def test_label_outputs_compare_positive_rates() -> None:
    prompts = expand_templates(TEMPLATES[:10], {"a": ["x"], "b": ["y"]})
    outputs = ["approve" if p.group == "a" or p.template_index < 5 else "deny" for p in prompts]
    result = counterfactual_audit(
        prompts, outputs, kind="label", positive_label="approve", config=CONFIG
    )
    rates = {g.group: g.metrics["positive_rate"] for g in result.groups}
    assert rates == {"a": 1.0, "b": 0.5}
    assert result.gaps[0].value == 0.5


def test_bad_outputs_are_refused() -> None:
    prompts = expand_templates(TEMPLATES[:3], TERMS)
    with pytest.raises(InvalidInputError, match="outputs has 2 rows, prompts has 15"):
        counterfactual_audit(prompts, [0.1, 0.2], kind="score")
    with pytest.raises(InvalidInputError, match="text outputs must be strings: 15 rows"):
        counterfactual_audit(prompts, [1.0] * 15, kind="text")
    with pytest.raises(InvalidInputError, match="finite numbers: 1 rows"):
        counterfactual_audit(prompts, [float("nan")] + [0.0] * 14, kind="score")
    with pytest.raises(InvalidInputError, match="3 distinct values"):
        counterfactual_audit(prompts, [0, 1, 2] * 5, kind="label")
    with pytest.raises(InvalidInputError, match="miss some templates"):
        counterfactual_audit(prompts[:-1], [0.0] * 14, kind="score")


def test_one_template_is_insufficient() -> None:
    prompts = expand_templates(TEMPLATES[:1], TERMS)
    result = counterfactual_audit(prompts, [0.1, 0.2, 0.3, 0.4, 0.5], kind="score")
    assert result.verdict == "insufficient_data"
    assert result.gaps[0].value is None
    assert result.gaps[0].reason == "a paired interval needs at least 2 templates"
    assert json.dumps(result.to_dict(), allow_nan=False)
