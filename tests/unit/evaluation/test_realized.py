"""Realized performance, pure part: windows, task inference, the coverage/rows verdict and the
metrics on joined rows (compared with scikit-learn on the same rows), and the signals."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.realized import (
    LABEL_COVERAGE,
    LABELLED_ROWS,
    SIGNAL_NAMES,
    LabelledOutput,
    infer_task,
    parse_window,
    realized_performance,
    realized_signals,
    window_label,
)

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("30m", 1800), ("7d", 604800), ("90s", 90), ("3600", 3600), (120, 120)],
)
def test_windows_parse(text: str | int, seconds: int) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "24 hours", "-1h", "1.5h", "h"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="window"):
        parse_window(text)


def test_one_label_per_window_length() -> None:
    assert [window_label(s) for s in (86400, 3600, 604800, 1800, 90)] == [
        "24h",
        "1h",
        "168h",
        "30m",
        "90s",
    ]
    assert window_label(parse_window("1d")) == window_label(parse_window("24h"))


def test_task_inference() -> None:
    assert infer_task(["a", "b"], ["a", "a"]) == "classification"
    assert infer_task([True, False], [True, True]) == "classification"
    assert infer_task([0, 1, 2], [1.0, 2.0, 0.0]) == "classification"
    assert infer_task([0.5, 1.25], [0.4, 1.0]) == "regression"
    assert infer_task(list(range(100)), list(range(100))) == "regression"  # too many classes


def _classified(rng: np.random.Generator, n: int, *, proba: bool) -> list[LabelledOutput]:
    classes = ["cat", "dog", "eel"]
    truth = rng.choice(classes, size=n)
    rows = []
    for label in truth:
        scores = rng.dirichlet([1.0, 1.0, 1.0])
        scores[classes.index(label)] += 0.6 * rng.random()  # a model better than chance
        scores = scores / scores.sum()
        outputs: dict[str, object] = {"prediction": classes[int(np.argmax(scores))]}
        if proba:
            outputs.update({f"proba_{c}": float(p) for c, p in zip(classes, scores, strict=True)})
        rows.append(LabelledOutput(outputs, str(label)))
    return rows


def test_classification_metrics_match_sklearn_on_the_joined_rows() -> None:
    rows = _classified(np.random.default_rng(7), 400, proba=True)
    result = realized_performance(1000, rows, min_coverage=0.2, min_rows=50)
    assert (result.verdict, result.task, result.labelled, result.predictions) == (
        "ok",
        "classification",
        400,
        1000,
    )
    assert result.coverage == pytest.approx(0.4)
    y_true = [r.label for r in rows]
    y_pred = [r.outputs["prediction"] for r in rows]
    proba = np.array([[r.outputs[f"proba_{c}"] for c in ("cat", "dog", "eel")] for r in rows])
    m = result.metrics
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert m["precision_macro"] == pytest.approx(
        precision_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert m["recall_weighted"] == pytest.approx(
        recall_score(y_true, y_pred, average="weighted", zero_division=0)
    )
    assert m["roc_auc"] == pytest.approx(
        roc_auc_score(y_true, proba, multi_class="ovr", average="macro")
    )
    assert m["log_loss"] == pytest.approx(log_loss(y_true, proba, labels=["cat", "dog", "eel"]))
    assert "ece" in m


def test_without_probabilities_there_are_no_probability_metrics() -> None:
    rows = _classified(np.random.default_rng(8), 200, proba=False)
    result = realized_performance(200, rows, min_coverage=0.2, min_rows=50)
    assert result.verdict == "ok"
    assert not {"roc_auc", "log_loss", "ece"} & result.metrics.keys()
    y_true = [r.label for r in rows]
    y_pred = [r.outputs["prediction"] for r in rows]
    assert result.metrics["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_integer_classes_logged_as_floats_match_their_labels() -> None:
    # JSON may bring an int class back as 1.0 on one side and 1 on the other.
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=120)
    flips = rng.random(120) < 0.2
    pred = np.where(flips, 1 - truth, truth)
    rows = [
        LabelledOutput({"prediction": float(p)}, int(t)) for t, p in zip(truth, pred, strict=True)
    ]
    result = realized_performance(120, rows, min_coverage=0.2, min_rows=50)
    assert result.task == "classification"
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert result.metrics["f1_macro"] == pytest.approx(f1_score(truth, pred, average="macro"))


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(11)
    truth = rng.normal(10, 3, size=300)
    pred = truth + rng.normal(0, 1, size=300)
    rows = [LabelledOutput({"y_hat": float(p)}, float(t)) for t, p in zip(truth, pred, strict=True)]
    result = realized_performance(300, rows, min_coverage=0.2, min_rows=50)
    assert (result.verdict, result.task) == ("ok", "regression")
    assert result.metrics["mae"] == pytest.approx(mean_absolute_error(truth, pred))
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(np.mean((truth - pred) ** 2)))
    assert result.metrics["r2"] == pytest.approx(r2_score(truth, pred))


@pytest.mark.parametrize(
    ("predictions", "labelled", "min_coverage", "min_rows"),
    [
        (1000, 150, 0.2, 50),  # 15 % coverage < 20 %
        (100, 40, 0.2, 50),  # 40 % coverage but 40 rows < 50
        (0, 0, 0.2, 50),  # nothing logged
    ],
)
def test_below_the_minimums_is_insufficient_data_never_a_verdict(
    predictions: int, labelled: int, min_coverage: float, min_rows: int
) -> None:
    rows = _classified(np.random.default_rng(1), labelled, proba=True)
    result = realized_performance(predictions, rows, min_coverage=min_coverage, min_rows=min_rows)
    assert result.verdict == "insufficient_data"
    assert result.metrics == {}
    assert result.labelled == labelled
    assert result.coverage == pytest.approx(labelled / predictions if predictions else 0.0)
    assert "coverage" in result.reason
    signals = realized_signals(
        result, model="m", version="1", window_s=86400, observed_at=AT, source="s"
    )
    assert {s.name for s in signals} == {LABEL_COVERAGE, LABELLED_ROWS}


def test_exactly_at_the_minimums_gives_a_verdict() -> None:
    rows = _classified(np.random.default_rng(2), 50, proba=False)
    assert realized_performance(250, rows, min_coverage=0.2, min_rows=50).verdict == "ok"


def test_explicit_task_overrides_the_guess() -> None:
    rows = [LabelledOutput({"prediction": float(i % 3)}, float((i + 1) % 3)) for i in range(60)]
    guessed = realized_performance(60, rows, min_coverage=0.2, min_rows=50)
    forced = realized_performance(60, rows, task="regression", min_coverage=0.2, min_rows=50)
    assert guessed.task == "classification" and "f1_macro" in guessed.metrics
    assert forced.task == "regression" and "mae" in forced.metrics


def test_bad_inputs_name_the_problem() -> None:
    text_labels = [LabelledOutput({"prediction": 1.5}, "high") for _ in range(60)]
    with pytest.raises(InvalidInputError, match="regression needs numeric labels, got str"):
        realized_performance(60, text_labels, task="regression", min_coverage=0.2, min_rows=50)
    two_outputs = [LabelledOutput({"a": 1, "b": 2}, 1) for _ in range(60)]
    with pytest.raises(InvalidInputError, match=r"columns: a, b"):
        realized_performance(60, two_outputs, min_coverage=0.2, min_rows=50)
    with pytest.raises(InvalidInputError, match="task"):
        realized_performance(60, text_labels, task="ranking", min_coverage=0.2, min_rows=50)  # type: ignore[arg-type]


def test_signals_carry_model_version_window_and_the_champion_alias() -> None:
    rows = _classified(np.random.default_rng(5), 100, proba=True)
    result = realized_performance(100, rows, min_coverage=0.2, min_rows=50)
    signals = realized_signals(
        result,
        model="m",
        version="3",
        window_s=86400,
        observed_at=AT,
        source="realized_result:1",
        alias="champion",
    )
    by_name = {s.name: s for s in signals}
    assert by_name["realized.f1_macro"].value == pytest.approx(result.metrics["f1_macro"])
    assert by_name[LABEL_COVERAGE].value == 1.0 and by_name[LABELLED_ROWS].value == 100
    assert set(by_name) <= SIGNAL_NAMES
    assert {"realized.roc_auc", "realized.log_loss", "realized.ece"} <= set(by_name)
    assert all(
        s.labels == {"model": "m", "version": "3", "window": "24h", "alias": "champion"}
        for s in signals
    )
    plain = realized_signals(
        result, model="m", version="2", window_s=3600, observed_at=AT, source="x"
    )
    assert all(s.labels == {"model": "m", "version": "2", "window": "1h"} for s in plain)
