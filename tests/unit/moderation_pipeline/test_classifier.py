"""The plain-data linear text scorer against scikit-learn itself: alt-profanity-check's shipped
model (``profanity_check.predict_prob``) and small calibrated models fitted here (sigmoid and
isotonic, TF-IDF and counts), on thousands of generated texts, both paths, to 1e-9."""

from __future__ import annotations

import random
import string
from typing import Any

import numpy as np
import pytest

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.classifier import SMALL_BATCH, LinearTextScorer
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pipeline import ClassifierFilter
from keelwatch.monitoring.service.moderators import (
    load_profanity_check,
    profanity_check_scorer,
    scorer_from_sklearn,
)

TOLERANCE = 1e-9
EXTRA = ["the", "and", "FUCK", "Sh1t", "you're", "x", "ΟΔΟΣ", "straße", "İstanbul", "__", "a_b",
         "e-mail", "don't", "42", "\u00e9t\u00e9", "\U0001f600", "\n", "...",
         "kwxbatchxseparatorxkw"]  # fmt: skip


def generated_texts(vocabulary: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = vocabulary + EXTRA
    texts = []
    for _ in range(count):
        picked = [rng.choice(words) for _ in range(rng.randint(0, 30))]
        if rng.random() < 0.2:
            picked.append("".join(rng.choices(string.printable, k=rng.randint(1, 20))))
        texts.append(rng.choice((" ", "  ", ", ", "")).join(picked))
    return [*texts, "", "   ", "!!!", "ΣΑΣ ΣΑΣ", "a", "A" * 300]


@pytest.fixture(scope="module")
def profanity_model() -> tuple[Any, Any]:
    return load_profanity_check()


def test_the_embedded_model_matches_predict_prob(profanity_model: tuple[Any, Any]) -> None:
    from profanity_check import predict_prob  # type: ignore[import-untyped]

    vectorizer, _ = profanity_model
    vocabulary = sorted(vectorizer.vocabulary_)
    texts = generated_texts(vocabulary, 4_000, seed=1)
    expected = predict_prob(texts)
    scorer = profanity_check_scorer()
    batch = scorer.probabilities(texts)
    assert np.abs(batch - expected).max() <= TOLERANCE
    singles = np.array([scorer.probabilities([t])[0] for t in texts[:1_500]])
    assert np.abs(singles - expected[:1_500]).max() <= TOLERANCE
    small = scorer.probabilities(texts[:SMALL_BATCH])  # the plain-Python path for a few
    assert np.abs(small - expected[:SMALL_BATCH]).max() <= TOLERANCE
    # A batch holding the separator word as part of a text is tokenized text by text.
    tricky = [*texts[:50], "kwxbatchxseparatorxkw fuck", *texts[50:60]]
    assert np.abs(scorer.probabilities(tricky) - predict_prob(tricky)).max() <= TOLERANCE
    assert profanity_check_scorer() is scorer  # converted once per process


def test_the_scorer_is_a_pipeline_scorer() -> None:
    scorer = profanity_check_scorer()
    scores = scorer(["you are a fucking idiot", "have a lovely day"])
    assert list(scores) == [Category.PROFANITY]
    profane, clean = scores[Category.PROFANITY]
    assert profane > 0.9 > 0.1 > clean
    found = ClassifierFilter(scorer, name="profanity-check").find_many(
        ["you are a fucking idiot", "have a lovely day", "   "]
    )
    assert [len(f) for f in found] == [1, 0, 0]
    assert found[0][0].source == "classifier:profanity-check"


def fitted(method: str, tfidf: bool, **vectorizer_options: Any) -> tuple[Any, Any]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.svm import LinearSVC

    rng = random.Random(7)
    good = ["lovely", "day", "thanks", "great", "model", "report", "team", "coffee", "sunny"]
    bad = ["awful", "idiot", "hate", "stupid", "terrible", "ugly", "worst", "dumb", "rude"]
    texts, labels = [], []
    for _ in range(400):
        label = rng.random() < 0.5
        pool = bad if label else good
        words = rng.choices(pool, k=rng.randint(2, 8)) + rng.choices(good + bad, k=2)
        texts.append(" ".join(words))
        labels.append(int(label))
    vectorizer_class = TfidfVectorizer if tfidf else CountVectorizer
    vectorizer = vectorizer_class(**vectorizer_options).fit(texts)
    model = CalibratedClassifierCV(LinearSVC(), method=method, cv=3)
    model.fit(vectorizer.transform(texts), labels)
    return vectorizer, model


@pytest.mark.parametrize(
    ("method", "tfidf", "options"),
    [
        ("sigmoid", True, {}),
        ("isotonic", True, {"sublinear_tf": True, "stop_words": "english"}),
        ("isotonic", True, {"norm": "l1", "lowercase": False}),
        ("sigmoid", False, {"binary": True}),
        ("sigmoid", True, {"token_pattern": r"(?u)\b\w+\b", "norm": None}),
    ],
)
def test_fitted_models_match_scikit_learn(method: str, tfidf: bool, options: Any) -> None:
    vectorizer, model = fitted(method, tfidf, **options)
    scorer = scorer_from_sklearn(vectorizer, model, category=Category.HARASSMENT)
    texts = generated_texts(sorted(vectorizer.vocabulary_), 1_500, seed=3)
    expected = model.predict_proba(vectorizer.transform(texts))[:, 1]
    assert np.abs(scorer.probabilities(texts) - expected).max() <= TOLERANCE
    singles = np.array([scorer.probabilities([t])[0] for t in texts[:300]])
    assert np.abs(singles - expected[:300]).max() <= TOLERANCE
    assert list(scorer(texts[:2])) == [Category.HARASSMENT]


def test_unsupported_models_are_refused_with_a_reason() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer, model = fitted("sigmoid", True, ngram_range=(1, 2))
    with pytest.raises(InvalidInputError, match="ngram_range"):
        scorer_from_sklearn(vectorizer, model)
    plain = TfidfVectorizer().fit(["aa bb", "cc dd"])
    with pytest.raises(InvalidInputError, match="not a binary CalibratedClassifierCV"):
        scorer_from_sklearn(plain, LogisticRegression())
    with pytest.raises(InvalidInputError, match="Count/TfidfVectorizer"):
        scorer_from_sklearn(object(), LogisticRegression())


def test_bad_texts_are_refused_naming_the_type() -> None:
    scorer = profanity_check_scorer()
    with pytest.raises(InvalidInputError, match="not one str"):
        scorer.probabilities("one text")
    with pytest.raises(InvalidInputError, match="text 1 must be a str, not bytes"):
        scorer.probabilities(["fine", b"bytes"])  # type: ignore[list-item]
    assert scorer.probabilities([]).shape == (0,)


def test_a_scorer_needs_a_model_with_enough_coefficients() -> None:
    from keelwatch.monitoring.moderation.classifier import (
        CalibratedLinearModel,
        SigmoidCalibration,
        TfidfVocabulary,
    )

    words = TfidfVocabulary(vocabulary={"a": 0, "b": 1}, idf=(1.0, 1.0))
    with pytest.raises(InvalidInputError, match="1 coefficients for 2 features"):
        LinearTextScorer(words, [CalibratedLinearModel((1.0,), 0.0, SigmoidCalibration(1, 0))])
    with pytest.raises(InvalidInputError, match="at least one model"):
        LinearTextScorer(words, [])
    with pytest.raises(InvalidInputError, match="norm"):
        TfidfVocabulary(vocabulary={}, idf=None, norm="max")
