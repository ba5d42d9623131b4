"""The pieces of an evaluation job that need no services: reading model outputs, the columns a
signature needs, metric keys for MLflow and the signals of a result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model, infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.service.evaluation_mlflow import dataset_digest, metric_key
from keelwatch.monitoring.service.evaluation_runner import (
    ModelOutputs,
    column_type_problems,
    evaluate_outputs,
    evaluation_signals,
    missing_model_columns,
    predict_outputs,
)


def frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    data["y"] = (data["a"] + 0.5 * data["b"] + rng.normal(0, 0.5, rows) > 0).astype(int)
    return data


class SklearnFlavour:
    """The surface of an MLflow PyFuncModel of the sklearn flavour that the runner uses."""

    def __init__(self, model: Any, signature_frame: pd.DataFrame | None = None) -> None:
        self._model = model
        self.metadata = Model(
            signature=infer_signature(signature_frame) if signature_frame is not None else None
        )

    def predict(self, data: pd.DataFrame) -> Any:
        return self._model.predict(data)

    def get_raw_model(self) -> Any:
        return self._model


class FramePredictor:
    """A custom model whose predict returns a frame with prediction and proba_<class>."""

    def predict(self, data: pd.DataFrame) -> pd.DataFrame:
        p = 1 / (1 + np.exp(-data["a"].to_numpy()))
        return pd.DataFrame(
            {"prediction": np.where(p > 0.5, "pos", "neg"), "proba_neg": 1 - p, "proba_pos": p}
        )


def test_sklearn_probabilities_come_from_the_raw_model() -> None:
    data = frame()
    features = data.drop(columns=["y"])
    model = LogisticRegression().fit(features, data["y"])
    outputs = predict_outputs(SklearnFlavour(model), data, label_column="y")
    assert outputs.classes == ("0", "1")
    assert outputs.proba is not None
    np.testing.assert_allclose(outputs.proba, model.predict_proba(features))
    metrics = evaluate_outputs(
        "classification", ["classification", "efficiency"], data["y"].to_numpy(), outputs,
        require=["roc_auc"],
    )  # fmt: skip
    assert set(metrics) == {"classification"}
    got = metrics["classification"]
    assert got["accuracy"] == pytest.approx(accuracy_score(data["y"], model.predict(features)))
    assert got["roc_auc"] == pytest.approx(
        roc_auc_score(data["y"], model.predict_proba(features)[:, 1])
    )


def test_frame_outputs_give_predictions_and_probabilities() -> None:
    data = frame()
    outputs = predict_outputs(FramePredictor(), data, label_column="y")
    assert outputs.classes == ("neg", "pos")
    assert outputs.predictions.tolist()[:3] == [
        "pos" if a > 0 else "neg" for a in data["a"].to_numpy()[:3]
    ]
    assert outputs.proba is not None and outputs.proba.shape == (200, 2)


def test_roc_auc_required_without_probabilities_and_wrong_label_types() -> None:
    outputs = ModelOutputs(np.array([0, 1, 1]), None, None, None)
    with pytest.raises(InvalidInputError, match="roc_auc needs predicted probabilities"):
        evaluate_outputs("classification", ["classification"], np.array([0, 1, 0]), outputs,
                         require=["roc_auc"])  # fmt: skip
    with pytest.raises(InvalidInputError, match="y_true holds string"):
        evaluate_outputs("classification", ["classification"], np.array(["a", "b", "a"]), outputs)


def test_missing_columns_come_from_the_signature() -> None:
    data = frame()
    model = SklearnFlavour(None, signature_frame=data.drop(columns=["y"]))
    assert missing_model_columns(model, data, label_column="y") == []
    assert missing_model_columns(model, data.drop(columns=["b"]), label_column="y") == ["b"]
    # The label is never an input, even when the model's signature names it.
    labelled = SklearnFlavour(None, signature_frame=data)
    assert missing_model_columns(labelled, data, label_column="y") == ["y"]
    assert missing_model_columns(SklearnFlavour(None), data, label_column="y") == []


def test_metric_keys_signals_and_digest() -> None:
    assert metric_key("classification", "f1_macro") == "classification.f1_macro"
    assert metric_key("efficiency", "latency_p95_s@32") == "efficiency.latency_p95_s.batch_32"
    assert dataset_digest("ab" * 32) == ("ab" * 32)[:36]
    signals = evaluation_signals(
        {
            "classification": {"accuracy": 0.9, "ece": float("nan")},
            "efficiency": {"latency_p95_s": 0.01, "latency_p95_s@32": 0.02},
        },
        labels={"model": "m", "version": "3", "dataset": "d"},
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
        source="job:x",
    )
    assert [(s.name, s.value, s.labels["suite"]) for s in signals] == [
        ("evaluation.accuracy", 0.9, "classification"),
        ("evaluation.latency_p95_s", 0.01, "efficiency"),
    ]


def test_column_types_are_checked_against_the_signature() -> None:
    data = frame()
    data["n"] = np.arange(len(data))
    data["s"] = "x"
    model = SklearnFlavour(None, signature_frame=data.drop(columns=["y"]))
    assert column_type_problems(model, data, label_column="y") == []
    wrong = data.assign(a=data["a"].astype(str), n=data["n"] + 0.5, s=1)
    assert column_type_problems(model, wrong, label_column="y") == [
        "column 'a': the model expects double, the dataset holds object",
        "column 'n': the model expects long, the dataset holds float64 "
        "(fractions or missing values)",
        "column 's': the model expects string, the dataset holds int64",
    ]


def test_regression_and_text_suites_go_to_their_metrics() -> None:
    import sacrebleu
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true = np.array([1.0, 2.0, 3.5, 4.0])
    y_pred = np.array([1.5, 1.5, 3.0, 5.0])
    outputs = ModelOutputs(y_pred, None, None, None)
    got = evaluate_outputs("regression", ["regression", "efficiency"], y_true, outputs)
    assert got["regression"]["mae"] == pytest.approx(mean_absolute_error(y_true, y_pred))
    assert got["regression"]["r2"] == pytest.approx(r2_score(y_true, y_pred))

    class Generator:
        def predict(self, data: pd.DataFrame) -> pd.DataFrame:
            assert list(data.columns) == ["prompt"]  # the label never reaches the model
            return pd.DataFrame(
                {
                    "prediction": ["the cat sat on the mat", "a dog ran in the park"],
                    "token_logprobs": [[-0.1, -0.2, -0.3], [-1.0, -0.5]],
                }
            )

    texts = pd.DataFrame({"prompt": ["p1", "p2"], "ref": ["the cat sat on a mat", "a dog ran"]})
    generated = predict_outputs(Generator(), texts, label_column="ref")
    assert generated.token_logprobs == [[-0.1, -0.2, -0.3], [-1.0, -0.5]]
    text = evaluate_outputs("text_generation", ["text_generation"], texts["ref"], generated)
    expected_bleu = sacrebleu.corpus_bleu(list(generated.predictions), [list(texts["ref"])]).score
    assert text["text_generation"]["bleu"] == pytest.approx(expected_bleu)  # 0-100 scale
    # Perplexity: exp of the mean negative log-probability over all tokens.
    assert text["text_generation"]["perplexity"] == pytest.approx(np.exp(2.1 / 5))
