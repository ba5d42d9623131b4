"""A registered MLflow text classifier in the pipeline: a real scikit-learn pipeline wrapped
as a pyfunc returning ``violence`` and ``harassment`` probabilities, saved and registered in a
temporary MLflow store through an explicit client (MLflow's global URIs are never set), loaded
by :func:`mlflow_model_loader` and mapped onto the taxonomy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.policy import Decision
from keelwatch.monitoring.service.moderators import build_moderator, mlflow_model_loader
from keelwatch.settings import ModerationSettings

pytestmark = pytest.mark.integration

VIOLENT = ["i will hurt you badly", "they will stab him", "shoot them all tonight"]
HARASSING = ["you are worthless trash", "nobody likes you loser", "you pathetic clown"]
CALM = ["lovely weather today", "the report is ready", "thanks for the coffee"]


class CategoryScores:
    """A pyfunc model: one text classifier per category, output columns named after them."""

    def __init__(self, pipelines: dict[str, Any], extra_column: bool) -> None:
        self.pipelines = pipelines
        self.extra_column = extra_column

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:  # noqa: ARG002
        import pandas as pd

        texts = model_input["text"].tolist()
        out = {name: p.predict_proba(texts)[:, 1] for name, p in self.pipelines.items()}
        if self.extra_column:
            out["model_version_note"] = [0.0] * len(texts)
        return pd.DataFrame(out)


def train(positive: list[str]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    negative = [t for t in VIOLENT + HARASSING + CALM if t not in positive]
    texts = (positive * 4) + negative
    labels = [1] * (len(positive) * 4) + [0] * len(negative)
    return make_pipeline(TfidfVectorizer(), LogisticRegression(C=20.0)).fit(texts, labels)


def register(mlflow_uri: str, folder: Path, name: str, pipelines: dict[str, Any]) -> str:
    import mlflow.pyfunc
    from mlflow.pyfunc.model import PythonModel
    from mlflow.tracking import MlflowClient

    class Wrapped(CategoryScores, PythonModel):
        pass

    path = folder / name
    mlflow.pyfunc.save_model(str(path), python_model=Wrapped(pipelines, extra_column=True))
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    client.create_registered_model(name)
    return str(client.create_model_version(name, source=path.as_uri()).version)


def test_a_registered_classifier_scores_onto_the_taxonomy(mlflow_uri: str, tmp_path: Path) -> None:
    import mlflow

    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    pipelines = {"violence": train(VIOLENT), "harassment/threatening": train(HARASSING)}
    version = register(mlflow_uri, tmp_path, "text-safety", pipelines)
    settings = ModerationSettings(
        classifier=f"models:/text-safety/{version}",
        thresholds={"violence": {"review": 0.5, "block": 0.99}},
    )
    moderator = build_moderator(settings, model_loader=mlflow_model_loader(mlflow_uri))
    results = moderator.moderate_many([VIOLENT[0], HARASSING[0], CALM[0]])
    by_category = [
        {f.category: f.score for f in r.findings if f.source.startswith("classifier:")}
        for r in results
    ]
    assert set(by_category[0]) == {Category.VIOLENCE}
    assert set(by_category[1]) == {Category.HARASSMENT}
    assert by_category[2] == {}
    # (the lexicon's rules may block it too; the classifier alone asks for review)
    assert results[0].decision.severity >= Decision.REVIEW.severity
    assert results[0].released is None
    assert results[1].decision.severity >= Decision.REVIEW.severity
    assert results[2].decision is Decision.ALLOW
    # Scores equal the scikit-learn pipelines' own probabilities.
    expected = pipelines["violence"].predict_proba([VIOLENT[0]])[0, 1]
    assert by_category[0][Category.VIOLENCE] == pytest.approx(expected, abs=1e-12)
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before


def test_a_classifier_without_category_columns_is_refused_naming_them(
    mlflow_uri: str, tmp_path: Path
) -> None:
    version = register(mlflow_uri, tmp_path, "sentiment", {"positive": train(CALM)})
    settings = ModerationSettings(classifier=f"models:/sentiment/{version}")
    with pytest.raises(InvalidInputError) as caught:
        build_moderator(settings, model_loader=mlflow_model_loader(mlflow_uri))
    message = str(caught.value)
    assert "no output column named after a moderation category" in message
    assert "'positive'" in message and "'model_version_note'" in message
