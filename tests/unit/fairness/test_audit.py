"""The audit's behaviour beyond the point estimates: slices and their order, undefined values
(None with a reason, never NaN), input errors, seeded determinism and verdicts."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.fairness import AuditConfig, audit_predictions
from tests.unit.fairness.conftest import AuditData, make_data

QUICK = AuditConfig(resamples=50)


@pytest.fixture(scope="module")
def data() -> AuditData:
    return make_data(3_000, seed=5)


def test_slices_come_singles_first_in_the_given_order(data: AuditData) -> None:
    sensitive = {k: data.sensitive[k] for k in ("tier", "region", "age")}
    result = audit_predictions(sensitive, data.y_pred, config=QUICK)
    assert [s.name for s in result.slices] == [
        "tier",
        "region",
        "age",
        "tier&region",
        "tier&age",
        "region&age",
        "tier&region&age",
    ]
    capped = audit_predictions(sensitive, data.y_pred, config=AuditConfig(max_order=2))
    assert [len(s.attributes) for s in capped.slices] == [1, 1, 1, 2, 2, 2]
    # Groups of a slice in sorted order of their values; the age ints became strings.
    assert [g.key for g in result.slices[2].groups] == [("18",), ("19",), ("20",)]
    assert sum(g.count for g in result.slices[6].groups) == len(data.y_pred)


def test_without_labels_only_the_prediction_gaps(data: AuditData) -> None:
    result = audit_predictions(data.sensitive, data.y_pred, config=QUICK)
    assert not result.labelled and not result.scored
    assert {g.metric for s in result.slices for g in s.gaps} == {
        "demographic_parity_difference",
        "demographic_parity_ratio",
    }
    assert set(result.slices[0].groups[0].metrics) == {"selection_rate"}
    scored = audit_predictions(data.sensitive, data.y_pred, score=data.score, config=QUICK)
    assert set(scored.slices[0].groups[0].metrics) == {"selection_rate", "mean_score"}
    regression = audit_predictions(data.sensitive, data.estimate, config=QUICK)
    assert regression.task == "regression"
    assert [g.metric for g in regression.slices[0].gaps] == ["mean_prediction_difference"]


def test_a_group_without_positive_labels_has_no_tpr_and_no_nan(data: AuditData) -> None:
    y_true = data.y_true.copy()
    y_true[data.sensitive["region"] == "east"] = 0
    result = audit_predictions(
        data.sensitive, data.y_pred, y_true=y_true, score=data.score, config=QUICK
    )
    groups = {g.name: g for g in result.slices[0].groups}
    east = groups["east"]
    assert east.metrics["tpr"] is None
    assert east.undefined == {"tpr": "no positive labels"}
    assert "tpr" not in east.ci
    assert east.metrics["fpr"] is not None
    # The gap compares the groups that define the TPR.
    gaps = {g.metric: g for g in result.slices[0].gaps}
    tprs = [g.metrics["tpr"] for g in groups.values() if g.metrics["tpr"] is not None]
    assert gaps["equal_opportunity_difference"].value == pytest.approx(max(tprs) - min(tprs))
    assert "east" not in (gaps["equal_opportunity_difference"].groups or ())
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert "NaN" not in text
    for slice_result in result.slices:
        for group in slice_result.groups:
            for value in (*group.metrics.values(), *(v for ci in group.ci.values() for v in ci)):
                assert value is None or math.isfinite(value)


def test_gaps_need_two_sufficient_groups(data: AuditData) -> None:
    config = AuditConfig(min_group_size=2_000, resamples=20)
    result = audit_predictions(data.sensitive, data.y_pred, y_true=data.y_true, config=config)
    assert result.comparisons == 0
    assert result.verdict == "insufficient_data"
    gap = result.slices[0].gaps[0]
    assert gap.value is None and gap.ci_low is None and not gap.violation
    assert gap.reason.startswith("fewer than 2 sufficient groups: 0 of 4")
    assert json.dumps(result.to_dict(), allow_nan=False)


def test_one_defining_group_leaves_the_tpr_gaps_undefined(data: AuditData) -> None:
    region = data.sensitive["region"]
    y_true = np.where(region == "north", data.y_true, 0)
    result = audit_predictions({"region": region}, data.y_pred, y_true=y_true, config=QUICK)
    gaps = {g.metric: g for g in result.slices[0].gaps}
    assert gaps["equal_opportunity_difference"].value is None
    assert gaps["equal_opportunity_difference"].reason == (
        "fewer than 2 sufficient groups define tpr"
    )
    assert gaps["equalized_odds_difference"].value is None
    assert gaps["demographic_parity_difference"].value is not None
    assert result.comparisons == sum(1 for g in gaps.values() if g.value is not None)


def test_seeded_results_repeat(data: AuditData) -> None:
    def run(seed: int) -> dict[str, Any]:
        config = AuditConfig(resamples=100, seed=seed)
        result = audit_predictions(
            data.sensitive, data.y_pred, y_true=data.y_true, score=data.score, config=config
        )
        return result.to_dict()

    assert run(3) == run(3)
    first, other = run(3), run(4)
    assert first["slices"] != other["slices"]
    # Only the intervals move with the seed.
    strip = [[(g["metric"], g["value"]) for g in s["gaps"]] for s in first["slices"]]
    assert strip == [[(g["metric"], g["value"]) for g in s["gaps"]] for s in other["slices"]]


def test_strings_bools_and_positive_labels(data: AuditData) -> None:
    words = np.where(data.y_pred == 1, "approve", "deny")
    truth = np.where(data.y_true == 1, "approve", "deny")
    as_words = audit_predictions(
        data.sensitive, words, y_true=truth, positive_label="approve", config=QUICK
    )
    as_ints = audit_predictions(data.sensitive, data.y_pred, y_true=data.y_true, config=QUICK)
    as_bools = audit_predictions(
        data.sensitive, data.y_pred.astype(bool), y_true=data.y_true.astype(bool), config=QUICK
    )
    assert as_words.to_dict() == as_ints.to_dict() == as_bools.to_dict()
    lists = audit_predictions(
        {k: list(v) for k, v in data.sensitive.items()},
        list(data.y_pred),
        y_true=list(data.y_true),
        config=QUICK,
    )
    assert lists.to_dict() == as_ints.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(y_pred=d["y_pred"][:-1]), "rows, y_pred has"),
        (lambda d: d.update(y_true=d["y_true"][:-1]), "y_true has 2999 rows, y_pred has 3000"),
        (lambda d: d.update(score=d["score"][:10]), "score has 10 rows"),
        (
            lambda d: d.update(y_pred=d["y_pred"] + np.arange(3000) % 3, task="binary"),
            "non-binary predictions for a binary audit: 4 distinct values",
        ),
        (
            lambda d: d.update(y_true=d["y_true"] * 2 + np.arange(3000) % 2),
            "non-binary labels for a binary audit: 4 distinct values",
        ),
        (lambda d: d.update(y_true=d["y_true"] + 1), "together hold 3 distinct values"),
        (lambda d: d.update(positive_label="yes"), "positive label (a str)"),
        (lambda d: d.update(score=d["score"] * 2), "probabilities in [0, 1]"),
        (lambda d: d.update(y_pred=np.asarray(["a", "b", "c"] * 1000)), "3 distinct non-numeric"),
        (lambda d: d.update(task="ranking"), "task must be one of"),
        (
            lambda d: d.update(score=np.where(np.arange(3000) < 4, np.nan, d["score"])),
            "score has 4 missing or infinite values",
        ),
        (lambda d: d.update(task="regression", score=d["score"]), "score applies to a binary"),
    ],
)
def test_bad_outcomes_are_refused(data: AuditData, change: object, message: str) -> None:
    kwargs: dict[str, object] = {
        "y_pred": data.y_pred,
        "y_true": data.y_true,
        "score": data.score,
        "task": None,
        "positive_label": 1,
    }
    change(kwargs)  # type: ignore[operator]
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        audit_predictions(data.sensitive, config=QUICK, **kwargs)  # type: ignore[arg-type]


def test_bad_sensitive_attributes_are_refused(data: AuditData) -> None:
    with_none = data.sensitive["region"].astype(object)
    with_none[[3, 9, 27]] = None
    with pytest.raises(InvalidInputError, match=r"'region' is missing \(None/NaN\) in 3 of 3000"):
        audit_predictions({"region": with_none}, data.y_pred)
    with_nan = data.sensitive["age"].astype(float)
    with_nan[5] = np.nan
    with pytest.raises(InvalidInputError, match=r"'age' is missing .* in 1 of 3000"):
        audit_predictions({"age": with_nan}, data.y_pred)
    with pytest.raises(InvalidInputError, match="'tier' has 10 rows, y_pred has 3000"):
        audit_predictions({"tier": data.sensitive["tier"][:10]}, data.y_pred)
    with pytest.raises(InvalidInputError, match="at least one sensitive attribute"):
        audit_predictions({}, data.y_pred)
    with pytest.raises(InvalidInputError, match="must not contain '&'"):
        audit_predictions({"a&b": data.sensitive["tier"]}, data.y_pred)
    with pytest.raises(InvalidInputError, match="no rows to audit"):
        audit_predictions({"a": []}, [])
    # Messages name columns and counts, never the values.
    with pytest.raises(InvalidInputError) as caught:
        audit_predictions({"region": with_none}, data.y_pred)
    assert "north" not in str(caught.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (AuditConfig(resamples=0), "resamples"),
        (AuditConfig(confidence=1.0), "confidence"),
        (AuditConfig(confidence=0.0), "confidence"),
        (AuditConfig(min_group_size=0), "min_group_size"),
        (AuditConfig(max_order=0), "max_order"),
        (AuditConfig(ratio_threshold=math.nan), "ratio_threshold"),
        (AuditConfig(correction="holm"), "correction"),  # type: ignore[arg-type]
    ],
)
def test_bad_configs_are_refused(data: AuditData, config: AuditConfig, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        audit_predictions(data.sensitive, data.y_pred, config=config)


def test_a_biased_model_violates_and_a_fair_one_passes() -> None:
    rng = np.random.default_rng(21)
    rows = 20_000
    group = rng.integers(0, 3, rows)
    band = rng.integers(0, 2, rows)
    y_true = (rng.random(rows) < 0.4).astype(int)
    fair = np.where(rng.random(rows) < 0.85, y_true, 1 - y_true)
    # The biased model approves group 2 far more often whatever the label.
    biased = np.where(group == 2, (rng.random(rows) < 0.7).astype(int), fair)
    sensitive = {"group": group, "band": band}
    config = AuditConfig(resamples=300, seed=1)
    passed = audit_predictions(sensitive, fair, y_true=y_true, config=config)
    assert passed.verdict == "pass", [(s.name, g) for s, g in passed.violations]
    failed = audit_predictions(sensitive, biased, y_true=y_true, config=config)
    assert failed.verdict == "violation"
    flagged = {(s.name, g.metric) for s, g in failed.violations}
    assert ("group", "demographic_parity_difference") in flagged
    assert ("group", "demographic_parity_ratio") in flagged
    assert ("group", "equalized_odds_difference") in flagged
    # Band alone is unaffected: the bias is in the group attribute only.
    assert not any(name == "band" for name, _ in flagged)
    for slice_result, gap in failed.violations:
        assert gap.ci_low is not None and gap.ci_high is not None
        if gap.direction == "above":
            assert gap.ci_low > gap.threshold
        else:
            assert gap.ci_high < gap.threshold
        assert slice_result.name in {"group", "group&band"}


def test_many_cells_are_resampled_in_blocks() -> None:
    # 3,000 groups x 4 outcome cells: the 400 resamples are drawn in two blocks (bounded
    # memory), and every block's rows land in the right place of the samples.
    rng = np.random.default_rng(8)
    rows = 30_000
    shop = rng.integers(0, 3_000, rows)
    y_true = (rng.random(rows) < 0.5).astype(int)
    y_pred = np.where(rng.random(rows) < 0.8, y_true, 1 - y_true)
    config = AuditConfig(resamples=400, min_group_size=5, seed=2)
    first = audit_predictions({"shop": shop}, y_pred, y_true=y_true, config=config)
    again = audit_predictions({"shop": shop}, y_pred, y_true=y_true, config=config)
    assert first.to_dict() == again.to_dict()
    (slice_result,) = first.slices
    assert len(slice_result.groups) == 3_000
    with_ci = [g for g in slice_result.groups if g.ci]
    assert len(with_ci) == sum(g.sufficient for g in slice_result.groups)
    # Every sufficient group's interval brackets its own selection rate (groups of ~10 rows).
    inside = [
        g.ci["selection_rate"][0] <= (g.metrics["selection_rate"] or 0) <= g.ci["selection_rate"][1]
        for g in with_ci
    ]
    assert all(inside)
    spread = [
        g.ci["selection_rate"][0] < g.ci["selection_rate"][1]
        for g in with_ci
        if 0 < (g.metrics["selection_rate"] or 0) < 1
    ]
    assert len(spread) > 2_000
    assert all(spread)
