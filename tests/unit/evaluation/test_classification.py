"""The classification suite against scikit-learn's own metric functions on generated data."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.classification import classification_metrics


def _proba(rng: np.random.Generator, rows: int, k: int) -> npt.NDArray[np.float64]:
    raw = rng.gamma(0.7, size=(rows, k))
    out: npt.NDArray[np.float64] = raw / raw.sum(axis=1, keepdims=True)
    return out


def _noisy_predictions(
    rng: np.random.Generator, truth: npt.NDArray[np.int64], k: int, keep: float
) -> npt.NDArray[np.int64]:
    wrong = rng.integers(0, k, truth.size)
    return np.where(rng.random(truth.size) < keep, truth, wrong)


def _expected(y_true: object, y_pred: object) -> dict[str, float]:
    out = {"accuracy": accuracy_score(y_true, y_pred)}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        out |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    return {k: float(v) for k, v in out.items()}


def _assert_counts_match(got: dict[str, float], y_true: object, y_pred: object) -> None:
    expected = _expected(y_true, y_pred)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


@pytest.mark.parametrize("labels", ["int", "str"])
def test_binary_matches_sklearn(labels: str) -> None:
    rng = np.random.default_rng(1)
    rows = 5_000
    proba = _proba(rng, rows, 2)
    codes = (rng.random(rows) < proba[:, 1]).astype(np.int64)
    pred_codes = proba.argmax(axis=1)
    names = np.array([3, 7]) if labels == "int" else np.array(["ham", "spam"])
    y_true, y_pred = names[codes], names[pred_codes]

    got = classification_metrics(y_true, y_pred, proba=proba, classes=list(names))

    _assert_counts_match(got.as_dict(), y_true, y_pred)
    assert got.roc_auc == pytest.approx(roc_auc_score(y_true == names[1], proba[:, 1]), abs=1e-12)
    assert got.log_loss == pytest.approx(log_loss(y_true, proba, labels=names), abs=1e-12)
    assert got.classes == tuple(str(n) for n in names)
    assert got.rows == rows
    assert np.array_equal(np.array(got.confusion), confusion_matrix(y_true, y_pred, labels=names))
    assert got.roc_auc is not None
    assert 0.5 < got.roc_auc < 1  # a signal, so the comparison is not trivially 0.5 vs 0.5


@pytest.mark.parametrize("labels", ["int", "str"])
def test_multiclass_matches_sklearn(labels: str) -> None:
    rng = np.random.default_rng(2)
    rows, k = 4_000, 5
    proba = _proba(rng, rows, k)
    truth = np.array([rng.choice(k, p=p) for p in proba])
    predicted = _noisy_predictions(rng, truth, k - 1, keep=0.6)  # class k-1 never predicted
    names = np.array([10, 2, 33, 4, 5]) if labels == "int" else np.array(list("edcba"))
    order = np.argsort(names) if labels == "int" else np.argsort(names.astype(str))
    y_true, y_pred = names[truth], names[predicted]

    # proba columns follow the model's (unsorted) class order; the suite reorders them
    got = classification_metrics(y_true, y_pred, proba=proba, classes=list(names))

    _assert_counts_match(got.as_dict(), y_true, y_pred)
    sorted_names = names[order]
    sorted_proba = proba[:, order]
    assert got.classes == tuple(str(n) for n in sorted_names)
    expected_auc = roc_auc_score(y_true, sorted_proba, multi_class="ovr", labels=sorted_names)
    assert got.roc_auc == pytest.approx(expected_auc, abs=1e-12)
    assert got.log_loss == pytest.approx(
        log_loss(y_true, sorted_proba, labels=sorted_names), abs=1e-12
    )
    assert np.array_equal(
        np.array(got.confusion), confusion_matrix(y_true, y_pred, labels=sorted_names)
    )


def test_without_proba_leaves_probability_metrics_out() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, 500)
    y_pred = _noisy_predictions(rng, y_true, 3, keep=0.7)

    got = classification_metrics(y_true, y_pred)

    assert (got.roc_auc, got.log_loss, got.ece) == (None, None, None)
    assert set(got.as_dict()) == {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
    }
    _assert_counts_match(got.as_dict(), y_true, y_pred)


def test_predicted_class_absent_from_truth_counts_like_sklearn() -> None:
    # "c" is only ever predicted: sklearn averages over the union of labels with zero_division.
    y_true = np.array(["a", "a", "b", "b", "b"])
    y_pred = np.array(["a", "c", "b", "b", "a"])

    got = classification_metrics(y_true, y_pred)

    _assert_counts_match(got.as_dict(), y_true, y_pred)
    assert got.classes == ("a", "b", "c")


def test_float_and_int_labels_name_the_same_classes() -> None:
    got = classification_metrics(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 0]))
    assert got.classes == ("0", "1")
    assert got.accuracy == pytest.approx(2 / 3)


def test_model_classes_given_as_strings_for_int_labels() -> None:
    # ModelOutputs carries classes as strings; integer labels must still match them.
    y_true = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    got = classification_metrics(y_true, proba.argmax(axis=1), proba=proba, classes=("0", "1"))
    assert got.roc_auc == pytest.approx(roc_auc_score(y_true, proba[:, 1]))


def test_roc_auc_undefined_with_one_class_is_left_out_unless_required() -> None:
    y = np.array([1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    assert classification_metrics(y, y, proba=proba, classes=[0, 1]).roc_auc is None
    with pytest.raises(InvalidInputError, match="roc_auc is undefined"):
        classification_metrics(y, y, proba=proba, classes=[0, 1], require=("roc_auc",))


def test_float32_probabilities_that_drift_from_one_are_accepted() -> None:
    rng = np.random.default_rng(4)
    proba = _proba(rng, 1_000, 3).astype(np.float32)
    y = proba.argmax(axis=1)
    assert not np.all(proba.sum(axis=1) == 1)  # the case under test
    got = classification_metrics(y, y, proba=proba, classes=[0, 1, 2])
    wide = proba.astype(np.float64)
    assert got.log_loss == pytest.approx(log_loss(y, wide / wide.sum(axis=1, keepdims=True)))


# ---- bad input: the message names the problem, never the values ----------------------------


def test_label_types_that_disagree_name_both_types() -> None:
    with pytest.raises(InvalidInputError) as err:
        classification_metrics(np.array([101, 202]), np.array(["spam", "ham"]))
    message = str(err.value)
    assert "y_true holds numeric (int64)" in message
    assert "y_pred holds string (<U4)" in message
    assert "spam" not in message and "101" not in message


def test_roc_auc_required_without_probabilities() -> None:
    with pytest.raises(
        InvalidInputError, match=r"^roc_auc needs predicted probabilities; the model gives none$"
    ):
        classification_metrics([0, 1], [0, 1], require=("roc_auc",))


def test_unknown_required_metric() -> None:
    with pytest.raises(InvalidInputError, match="unknown classification metric"):
        classification_metrics([0, 1], [0, 1], require=("auc",))


def test_proba_shape_mismatch() -> None:
    with pytest.raises(InvalidInputError, match=r"proba has shape \(3, 3\); expected \(3, 2\)"):
        classification_metrics([0, 1, 1], [0, 1, 0], proba=np.full((3, 3), 1 / 3), classes=[0, 1])
    with pytest.raises(InvalidInputError, match=r"expected \(3, 2\)"):
        classification_metrics([0, 1, 1], [0, 1, 0], proba=np.full((2, 2), 0.5), classes=[0, 1])


def test_proba_that_are_not_probabilities() -> None:
    with pytest.raises(InvalidInputError, match="must sum to 1; 1 row"):
        classification_metrics([0, 1], [0, 1], proba=[[0.5, 0.5], [0.9, 0.9]], classes=[0, 1])
    with pytest.raises(InvalidInputError, match="1 missing or infinite"):
        classification_metrics([0, 1], [0, 1], proba=[[0.5, 0.5], [np.nan, 1]], classes=[0, 1])


def test_empty_input() -> None:
    with pytest.raises(InvalidInputError, match="y_true is empty"):
        classification_metrics([], [])


def test_length_mismatch() -> None:
    with pytest.raises(InvalidInputError, match="y_true has 3 rows but y_pred has 2"):
        classification_metrics([0, 1, 1], [0, 1])


@pytest.mark.parametrize(
    "y_true",
    [np.array([1.5, np.nan, 2.5, np.nan]), np.array(["yes", None, "no", np.nan], dtype=object)],
)
def test_missing_labels_in_truth(y_true: npt.NDArray[object]) -> None:  # type: ignore[type-var]
    with pytest.raises(InvalidInputError) as err:
        classification_metrics(y_true, y_true)
    message = str(err.value)
    assert message.startswith("y_true has 2 missing")
    assert "1.5" not in message and "yes" not in message


def test_labels_outside_the_model_classes() -> None:
    with pytest.raises(InvalidInputError, match="1 label value\\(s\\) are not among the model's 2"):
        classification_metrics(
            ["a", "b", "c"], ["a", "b", "b"], proba=np.full((3, 2), 0.5), classes=["a", "b"]
        )


def test_string_classes_for_numeric_labels_that_do_not_parse() -> None:
    with pytest.raises(InvalidInputError, match="classes are strings but the labels are numeric"):
        classification_metrics([0, 1], [0, 1], proba=np.full((2, 2), 0.5), classes=["no", "yes"])


def test_mixed_label_types_in_one_column() -> None:
    with pytest.raises(InvalidInputError, match="y_true mixes label types"):
        classification_metrics(np.array([1, "a"], dtype=object), np.array([1, 2]))


def test_model_class_absent_from_the_data_stays_in_confusion_not_in_averages() -> None:
    y_true = np.array([0, 1, 1, 0, 1])
    y_pred = np.array([0, 1, 0, 0, 1])
    proba = np.array([[0.7, 0.2, 0.1]] * 5)
    got = classification_metrics(y_true, y_pred, proba=proba, classes=[0, 1, 2])
    _assert_counts_match(got.as_dict(), y_true, y_pred)
    assert got.classes == ("0", "1", "2")
    assert got.confusion == ((2, 0, 0), (1, 2, 0), (0, 0, 0))
    assert got.roc_auc is None  # class 2 never occurs, so one-vs-rest is undefined for it


def test_label_the_model_never_learnt_counts_as_an_error_without_proba() -> None:
    y_true = np.array(["a", "b", "c", "c"])
    y_pred = np.array(["a", "b", "a", "b"])
    got = classification_metrics(y_true, y_pred, classes=("b", "a"))
    assert got.classes == ("a", "b", "c")
    _assert_counts_match(got.as_dict(), y_true, y_pred)
    ints = classification_metrics([0, 1, 2, 2], [0, 1, 0, 1], classes=("0", "1"))
    assert ints.classes == ("0", "1", "2")
    assert ints.confusion[2] == (1, 1, 0)
