"""The champion/challenger gate: policy parsing, point values against scikit-learn, and the
paired bootstrap's behaviour on generated data (noise never promotes, a better model does,
the interval covers the true difference about as often as it says)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.calibration import expected_calibration_error
from keelwatch.monitoring.evaluation.gate import VersionEvaluation, decide_gate
from keelwatch.monitoring.evaluation.gate_policy import parse_gate_policy

EXAMPLE: dict[str, Any] = {
    "dataset": "credit-holdout",
    "metric_confidence": 0.95,
    "bootstrap_samples": 1000,
    "min_rows": 200,
    "any_of": [
        {
            "all_of": [
                {"metric": "f1_macro", "max_drop": 0.01},
                {"metric": "latency_p95_s", "min_improvement": 0.20},
            ]
        },
        {
            "all_of": [
                {"metric": "f1_macro", "min_gain": 0.0},
                {"metric": "latency_p95_s", "max_regression": 0.10},
            ]
        },
    ],
}


def _policy(*conditions: dict[str, Any], **options: Any) -> Any:
    return parse_gate_policy({"all_of": list(conditions), "bootstrap_samples": 500, **options})


def _noisy(
    rng: np.random.Generator, truth: npt.NDArray[np.int64], k: int, keep: float
) -> npt.NDArray[np.int64]:
    return np.where(rng.random(truth.size) < keep, truth, rng.integers(0, k, truth.size))


def _version(
    version: str,
    truth: npt.NDArray[Any],
    pred: npt.NDArray[Any],
    *,
    proba: npt.NDArray[np.float64] | None = None,
    classes: tuple[str, ...] | None = None,
    latencies: npt.NDArray[np.float64] | None = None,
    metrics: dict[str, float] | None = None,
) -> VersionEvaluation:
    return VersionEvaluation(
        version=version,
        metrics=metrics or {},
        y_true=truth,
        y_pred=pred,
        proba=proba,
        classes=classes,
        latencies_s=latencies if latencies is not None else np.zeros(0),
    )


# --------------------------------------------------------------------------- policy


def test_example_policy_parses_and_round_trips() -> None:
    policy = parse_gate_policy(EXAMPLE)
    assert policy.dataset == "credit-holdout"
    assert policy.dataset_version is None
    assert policy.metrics == ("f1_macro", "latency_p95_s")
    assert [len(a.conditions) for a in policy.any_of] == [2, 2]
    assert policy.any_of[0].conditions[1].relative
    assert parse_gate_policy(policy.as_dict()) == policy
    pinned = parse_gate_policy({**EXAMPLE, "dataset": "credit-holdout@3"})
    assert (pinned.dataset, pinned.dataset_version) == ("credit-holdout", 3)
    assert parse_gate_policy(pinned.as_dict()) == pinned
    assert parse_gate_policy({**EXAMPLE, "dataset": "credit-holdout:3"}) == pinned


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            {"any_of": [{"all_of": [{"metric": "f2", "max_drop": 0.1}]}]},
            "any_of[0].all_of[0].metric",
        ),
        ({"any_of": [{"all_of": [{"metric": "f1_macro", "max_drop": "x"}]}]}, "max_drop"),
        ({"any_of": [{"all_of": [{"metric": "f1_macro", "max_drop": float("nan")}]}]}, "max_drop"),
        ({"any_of": [{"all_of": [{"metric": "f1_macro", "min_gain": -1}]}]}, "min_gain"),
        ({"any_of": [{"all_of": [{"metric": "f1_macro"}]}]}, "any_of[0].all_of[0]"),
        ({"any_of": [{"all_of": [{"metric": "f1_macro", "max_dorp": 1}]}]}, "max_dorp"),
        ({"any_of": []}, "any_of"),
        ({"metric_confidence": 1.5}, "metric_confidence"),
        ({"bootstrap_samples": 10}, "bootstrap_samples"),
        ({"bootstrap_samples": True}, "bootstrap_samples"),
        ({"min_rows": 0}, "min_rows"),
        ({"dataset": "x@zero"}, "dataset"),
        ({"threshold": 1}, "threshold"),
    ],
)
def test_bad_policies_name_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(key)):
        parse_gate_policy({**EXAMPLE, **change})


def test_policy_needs_any_of_or_all_of() -> None:
    with pytest.raises(InvalidInputError, match="any_of or all_of"):
        parse_gate_policy({"dataset": "d"})


# --------------------------------------------------------------------------- point values


def test_point_values_match_scikit_learn_classification() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 600)
    champ_pred = _noisy(rng, truth, 3, 0.6)
    chall_pred = _noisy(rng, truth, 3, 0.8)
    raw = rng.gamma(0.7, size=(600, 3))
    proba = raw / raw.sum(axis=1, keepdims=True)
    classes = ("0", "1", "2")
    names = ["accuracy", "f1_macro", "precision_weighted", "log_loss", "roc_auc", "ece"]
    # 100 samples: roc_auc resamples call scikit-learn once each (the slow one)
    policy = _policy(
        *({"metric": m, "max_drop": 1.0} for m in names), min_rows=10, bootstrap_samples=100
    )
    decision = decide_gate(
        policy,
        _version("1", truth, champ_pred, proba=proba[:, ::-1], classes=classes[::-1]),
        _version("2", truth, chall_pred, proba=proba, classes=classes),
    )
    by_metric = {c.metric: c for c in decision.comparisons}
    expected_f1 = f1_score(truth, chall_pred, average="macro") - f1_score(
        truth, champ_pred, average="macro"
    )
    assert by_metric["f1_macro"].difference == pytest.approx(expected_f1, abs=1e-12)
    assert by_metric["f1_macro"].challenger == pytest.approx(
        f1_score(truth, chall_pred, average="macro"), abs=1e-12
    )
    assert by_metric["accuracy"].champion == pytest.approx(accuracy_score(truth, champ_pred))
    assert by_metric["precision_weighted"].challenger == pytest.approx(
        precision_score(truth, chall_pred, average="weighted", zero_division=0)
    )
    # the champion's columns were given reversed; alignment must undo that
    assert by_metric["log_loss"].champion == pytest.approx(log_loss(truth, proba), rel=1e-9)
    assert by_metric["roc_auc"].champion == pytest.approx(
        roc_auc_score(truth, proba, multi_class="ovr"), rel=1e-9
    )
    assert by_metric["ece"].challenger == pytest.approx(
        expected_calibration_error(truth, proba, [0, 1, 2]), rel=1e-9
    )
    assert by_metric["f1_macro"].ci_low <= expected_f1 <= by_metric["f1_macro"].ci_high


def test_point_values_match_scikit_learn_regression() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=400)
    champ = truth + rng.normal(scale=0.5, size=400)
    chall = truth + rng.normal(scale=0.3, size=400)
    policy = _policy(
        {"metric": "mae", "max_drop": 0.0},
        {"metric": "rmse", "min_gain": 0.05},
        {"metric": "r2", "min_gain": 0.05},
    )
    decision = decide_gate(policy, _version("1", truth, champ), _version("2", truth, chall))
    by_metric = {c.metric: c for c in decision.comparisons}
    assert by_metric["mae"].champion == pytest.approx(mean_absolute_error(truth, champ))
    assert by_metric["rmse"].challenger == pytest.approx(root_mean_squared_error(truth, chall))
    assert by_metric["r2"].challenger == pytest.approx(r2_score(truth, chall))
    assert decision.outcome == "promote", decision.reasons


# --------------------------------------------------------------------------- decisions


def test_identical_models_never_promote_on_min_gain() -> None:
    policy = _policy({"metric": "f1_macro", "min_gain": 0.0}, {"metric": "accuracy", "min_gain": 0})
    for seed in range(10):
        rng = np.random.default_rng(seed)
        truth = rng.integers(0, 2, 300)
        pred = _noisy(rng, truth, 2, 0.7)
        decision = decide_gate(
            policy, _version("1", truth, pred), _version("2", truth, pred), seed=seed
        )
        assert decision.outcome == "reject"
        assert all(c.ci_low == c.ci_high == 0.0 for c in decision.comparisons)


def test_equally_good_models_rarely_promote() -> None:
    # Two different models of the same quality: a 95 % interval's lower bound exceeds 0 in
    # about 2.5 % of trials; 40 trials allow a few but never most.
    policy = _policy({"metric": "accuracy", "min_gain": 0.0})
    promoted = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        truth = rng.integers(0, 2, 400)
        decision = decide_gate(
            policy,
            _version("1", truth, _noisy(rng, truth, 2, 0.6)),
            _version("2", truth, _noisy(rng, truth, 2, 0.6)),
            seed=seed,
        )
        promoted += decision.outcome == "promote"
    assert promoted <= 4


def test_clearly_better_model_promotes_and_worse_is_rejected() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 500)
    weak, strong = _noisy(rng, truth, 3, 0.5), _noisy(rng, truth, 3, 0.9)
    policy = _policy({"metric": "f1_macro", "max_drop": 0.01})
    up = decide_gate(policy, _version("1", truth, weak), _version("2", truth, strong))
    down = decide_gate(policy, _version("1", truth, strong), _version("2", truth, weak))
    assert up.outcome == "promote"
    assert down.outcome == "reject"
    assert up.reasons[0].startswith("promote: challenger v2 over champion v1")
    line = re.compile(
        r"^\[1\] f1_macro: challenger \S+ vs champion \S+, diff [+-]\S+ \[95% CI [+-]\S+, "
        r"[+-]\S+\], max_drop 0\.01: lower bound >= -0\.01: (pass|fail)$"
    )
    assert line.match(up.reasons[1]), up.reasons[1]
    assert down.reasons[1].endswith(": fail")


def test_paired_interval_covers_the_true_difference() -> None:
    # Champion right with p=0.70, challenger with p=0.75 (independently per row): the true
    # accuracy difference is 0.05. A 90 % interval should cover it in about 90 % of datasets.
    policy = _policy({"metric": "accuracy", "max_drop": 0.0}, metric_confidence=0.9)
    covered = 0
    trials = 120
    for seed in range(trials):
        rng = np.random.default_rng(1000 + seed)
        truth = np.zeros(400, dtype=np.int64)
        champ = np.where(rng.random(400) < 0.70, 0, 1)
        chall = np.where(rng.random(400) < 0.75, 0, 1)
        decision = decide_gate(
            policy, _version("1", truth, champ), _version("2", truth, chall), seed=seed
        )
        c = decision.comparisons[0]
        covered += c.ci_low <= 0.05 <= c.ci_high
    assert 0.80 <= covered / trials <= 0.97


def test_latency_conditions_bootstrap_the_samples() -> None:
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, 300)
    pred = _noisy(rng, truth, 2, 0.8)
    slow = rng.normal(0.010, 0.0005, 40)
    fast = rng.normal(0.006, 0.0003, 40)
    policy = _policy(
        {"metric": "f1_macro", "max_drop": 0.01},
        {"metric": "latency_p95_s", "min_improvement": 0.2},
    )
    faster = decide_gate(
        policy,
        _version("1", truth, pred, latencies=slow),
        _version("2", truth, pred, latencies=fast),
    )
    assert faster.outcome == "promote", faster.reasons
    same = decide_gate(
        policy,
        _version("1", truth, pred, latencies=slow),
        _version("2", truth, pred, latencies=rng.normal(0.010, 0.0005, 40)),
    )
    assert same.outcome == "reject"
    assert "latency_p95_s" in same.reasons[2] and "(lower is better)" in same.reasons[2]
    assert same.reasons[2].endswith(": fail")


def test_exact_metrics_and_any_of() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 300)
    pred = _noisy(rng, truth, 2, 0.8)
    policy = parse_gate_policy(
        {
            "bootstrap_samples": 200,
            "any_of": [
                {"all_of": [{"metric": "accuracy", "min_gain": 0.05}]},
                {
                    "all_of": [
                        {"metric": "accuracy", "max_drop": 0.0},
                        {"metric": "model_size_bytes", "min_improvement": 0.5},
                    ]
                },
            ],
        }
    )
    decision = decide_gate(
        policy,
        _version("1", truth, pred, metrics={"model_size_bytes": 1000.0}),
        _version("2", truth, pred, metrics={"model_size_bytes": 400.0}),
    )
    assert decision.outcome == "promote"
    assert "alternative 2 holds" in decision.reasons[0]
    assert [c.passed for c in decision.comparisons] == [False, True, True]
    missing = decide_gate(policy, _version("1", truth, pred), _version("2", truth, pred))
    assert missing.outcome == "insufficient_data"
    assert "has no model_size_bytes" in missing.reasons[0]


def test_too_few_rows_is_insufficient_data() -> None:
    rng = np.random.default_rng(6)
    truth = rng.integers(0, 2, 50)
    policy = _policy({"metric": "accuracy", "max_drop": 1.0})
    decision = decide_gate(policy, _version("1", truth, truth), _version("2", truth, truth))
    assert decision.outcome == "insufficient_data"
    assert decision.reasons == ("insufficient data: 50 rows, the policy needs at least 200",)


def test_inputs_that_cannot_be_compared_raise() -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 2, 300)
    with pytest.raises(InvalidInputError, match="no predicted probabilities"):
        decide_gate(
            _policy({"metric": "log_loss", "max_drop": 0.1}),
            _version("1", truth, truth),
            _version("2", truth, truth),
        )
    with pytest.raises(InvalidInputError, match="different rows"):
        decide_gate(
            _policy({"metric": "accuracy", "max_drop": 0.1}),
            _version("1", truth, truth),
            _version("2", truth[::-1], truth),
        )
    with pytest.raises(InvalidInputError, match="same type"):
        decide_gate(
            _policy({"metric": "accuracy", "max_drop": 0.1}),
            _version("1", truth, truth),
            _version("2", truth, truth.astype(str)),
        )


def test_same_seed_same_decision() -> None:
    rng = np.random.default_rng(8)
    truth = rng.integers(0, 2, 300)
    a, b = _noisy(rng, truth, 2, 0.7), _noisy(rng, truth, 2, 0.72)
    policy = _policy({"metric": "f1_macro", "max_drop": 0.01})
    first = decide_gate(policy, _version("1", truth, a), _version("2", truth, b), seed=3)
    again = decide_gate(policy, _version("1", truth, a), _version("2", truth, b), seed=3)
    assert first == again


@pytest.mark.parametrize("k", [2, 4])
def test_resampled_roc_auc_matches_scikit_learn_sample_weight(k: int) -> None:
    # The bootstrap's ROC-AUC is a weighted Mann-Whitney statistic; with the resample counts as
    # sample weights it must equal scikit-learn's figure (rounded scores force ties).
    from keelwatch.monitoring.evaluation.gate import _proba_statistic

    rng = np.random.default_rng(9)
    truth = rng.integers(0, k, 300)
    raw = np.round(rng.gamma(0.7, size=(300, k)), 1) + 0.05
    proba = raw / raw.sum(axis=1, keepdims=True)
    weights = rng.multinomial(300, np.full(300, 1 / 300), size=5).astype(np.float64)
    got = _proba_statistic("roc_auc", truth, proba)(weights)
    for row, value in zip(weights, got, strict=True):
        if k == 2:
            expected = roc_auc_score(truth, proba[:, 1], sample_weight=row)
        else:
            expected = roc_auc_score(
                truth, proba, multi_class="ovr", average="macro", sample_weight=row
            )
        assert value == pytest.approx(expected, rel=1e-12)
