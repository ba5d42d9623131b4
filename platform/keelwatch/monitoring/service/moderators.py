"""Moderators built from settings: the rule filter (the lexicon's blocklists), the PII
detector, the configured classifier and the policy.

The classifiers come from outside the pure domain, so they are loaded here:

* ``profanity-check``: alt-profanity-check's model, shipped inside its wheel (a TF-IDF
  vectorizer and a ``CalibratedClassifierCV`` over ``LinearSVC``), read from the installed
  package's files (never downloaded) and converted into the plain-data
  :class:`~keelwatch.monitoring.moderation.classifier.LinearTextScorer`, which gives the same
  probabilities without scikit-learn's per-call overhead. Built once per process.
* ``models:/name/version``: a registered MLflow text classifier, loaded by the caller's
  ``model_loader`` (which knows the tracking and registry URIs: nothing here touches MLflow's
  process-global ones), called on a DataFrame with one ``text`` column; its output columns
  named after taxonomy categories become scores (:class:`MlflowTextScorer`).
* ``none``: rules and PII only.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.classifier import (
    CalibratedLinearModel,
    IsotonicCalibration,
    LinearTextScorer,
    SigmoidCalibration,
    TfidfVocabulary,
)
from keelwatch.monitoring.moderation.findings import Category, parse_category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import ClassifierFilter, Moderator, TextFilter
from keelwatch.monitoring.moderation.policy import ModerationPolicy
from keelwatch.monitoring.moderation.rules import DEFAULT_PROFANITY, Blocklist, RuleFilter
from keelwatch.settings import ModerationSettings

#: The embedded classifier's name in settings and in findings' sources.
PROFANITY_CHECK = "profanity-check"
NO_CLASSIFIER = "none"
#: Column of the DataFrame a registered text classifier is called with.
TEXT_COLUMN = "text"

ModelLoader = Callable[[str], Any]
"""Loads a model URI (``models:/name/version``) into an object with ``predict(DataFrame)``."""

_lock = threading.Lock()
_profanity_scorer: LinearTextScorer | None = None
_default_moderator: Moderator | None = None


# --------------------------------------------------------------------------- the embedded model


def profanity_check_files() -> tuple[Path, Path]:
    """The vectorizer and model files inside the installed ``alt-profanity-check`` package,
    found without importing it (its ``__init__`` loads both models itself)."""
    import importlib.util

    spec = importlib.util.find_spec("profanity_check")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError(
            "classifier profanity-check needs the alt-profanity-check package; install it "
            "or set moderation.classifier to none"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    vectorizer, model = data / "vectorizer.joblib", data / "model.joblib"
    for path in (vectorizer, model):
        if not path.is_file():
            raise InvalidInputError(f"alt-profanity-check is installed without {path.name}")
    return vectorizer, model


def load_profanity_check() -> tuple[Any, Any]:
    """alt-profanity-check's fitted vectorizer and model, unpickled from the package's files."""
    import joblib  # type: ignore[import-untyped]

    vectorizer_file, model_file = profanity_check_files()
    return joblib.load(vectorizer_file), joblib.load(model_file)


def scorer_from_sklearn(
    vectorizer: Any, model: Any, *, category: Category = Category.PROFANITY
) -> LinearTextScorer:
    """The plain-data scorer equal to ``model.predict_proba(vectorizer.transform(texts))[:, 1]``
    for a word-unigram ``TfidfVectorizer`` / ``CountVectorizer`` and a binary
    ``CalibratedClassifierCV`` over a linear model (sigmoid or isotonic calibration);
    InvalidInputError names what is not supported."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    if not isinstance(vectorizer, CountVectorizer):
        raise InvalidInputError(
            f"vectorizer {type(vectorizer).__name__} is not a Count/TfidfVectorizer"
        )
    params = vectorizer.get_params()
    unsupported = {
        "analyzer": params["analyzer"] != "word",
        "ngram_range": tuple(params["ngram_range"]) != (1, 1),
        "preprocessor": params["preprocessor"] is not None,
        "tokenizer": params["tokenizer"] is not None,
        "strip_accents": params["strip_accents"] is not None,
    }
    bad = [name for name, flag in unsupported.items() if flag]
    if bad:
        raise InvalidInputError(f"vectorizer setting(s) not supported: {', '.join(bad)}")
    stop_words = vectorizer.get_stop_words() or frozenset()
    # Stop words are dropped before the vocabulary lookup: leaving them out of the vocabulary
    # gives the same counts.
    vocabulary = {
        str(word): int(index)
        for word, index in vectorizer.vocabulary_.items()
        if word not in stop_words
    }
    tfidf = isinstance(vectorizer, TfidfVectorizer)
    idf = tuple(float(v) for v in vectorizer.idf_) if tfidf and vectorizer.use_idf else None
    words = TfidfVocabulary(
        vocabulary=vocabulary,
        idf=idf,
        token_pattern=str(params["token_pattern"]),
        lowercase=bool(params["lowercase"]),
        norm=params["norm"] if tfidf else None,
        sublinear_tf=bool(params["sublinear_tf"]) if tfidf else False,
        binary=bool(params["binary"]),
    )
    if not isinstance(model, CalibratedClassifierCV) or len(model.classes_) != 2:
        raise InvalidInputError(
            f"model {type(model).__name__} is not a binary CalibratedClassifierCV"
        )
    folds = []
    for calibrated in model.calibrated_classifiers_:
        estimator = calibrated.estimator
        coef = getattr(estimator, "coef_", None)
        intercept = getattr(estimator, "intercept_", None)
        if coef is None or intercept is None or coef.shape[0] != 1:
            raise InvalidInputError(
                f"calibrated estimator {type(estimator).__name__} is not a binary linear model"
            )
        if calibrated.method == "sigmoid":
            fitted = calibrated.calibrators[0]
            calibration: SigmoidCalibration | IsotonicCalibration = SigmoidCalibration(
                float(fitted.a_), float(fitted.b_)
            )
        elif calibrated.method == "isotonic":
            fitted = calibrated.calibrators[0]
            calibration = IsotonicCalibration(
                tuple(float(v) for v in fitted.X_thresholds_),
                tuple(float(v) for v in fitted.y_thresholds_),
            )
        else:
            raise InvalidInputError(f"calibration method {calibrated.method!r} is not supported")
        dense = coef.toarray() if hasattr(coef, "toarray") else coef
        folds.append(
            CalibratedLinearModel(
                coef=tuple(float(v) for v in dense[0]),
                intercept=float(intercept[0]),
                calibration=calibration,
            )
        )
    return LinearTextScorer(words, folds, category=category)


def profanity_check_scorer() -> LinearTextScorer:
    """The embedded classifier as a plain-data scorer, converted once per process."""
    global _profanity_scorer
    with _lock:
        if _profanity_scorer is None:
            _profanity_scorer = scorer_from_sklearn(*load_profanity_check())
        return _profanity_scorer


# --------------------------------------------------------------------------- registered models


class MlflowTextScorer:
    """A registered text classifier as a pipeline Scorer: ``predict`` on a DataFrame with one
    ``text`` column; each output column named after a taxonomy category (``violence``,
    ``harassment/threatening``...) is that category's score; other columns are ignored."""

    def __init__(self, model: Any, *, name: str) -> None:
        if not callable(getattr(model, "predict", None)):
            raise InvalidInputError(f"classifier {name} has no predict method")
        self.model = model
        self.name = name

    def __call__(self, texts: Sequence[str]) -> dict[Category, list[float]]:
        """``{category: scores}`` from the model's output columns."""
        import numpy as np
        import pandas as pd

        raw = self.model.predict(pd.DataFrame({TEXT_COLUMN: list(texts)}))
        if isinstance(raw, dict):
            raw = pd.DataFrame(raw)
        if not isinstance(raw, pd.DataFrame):
            raise InvalidInputError(
                f"classifier {self.name} returned {type(raw).__name__}, not a table with "
                "columns named after moderation categories"
            )
        scores: dict[Category, list[float]] = {}
        for column in raw.columns:
            try:
                category = parse_category(str(column))
            except InvalidInputError:
                continue
            values = pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype=float)
            if values.shape[0] != len(texts) or not np.isfinite(values).all():
                raise InvalidInputError(
                    f"classifier {self.name} column {str(column)[:40]!r}: expected "
                    f"{len(texts)} finite scores"
                )
            previous = scores.get(category)
            merged = values if previous is None else np.maximum(previous, values)
            scores[category] = merged.tolist()  # sub-categories merge: the highest wins
        if not scores:
            shown = ", ".join(repr(str(c)[:40]) for c in list(raw.columns)[:20])
            raise InvalidInputError(
                f"classifier {self.name} has no output column named after a moderation "
                f"category (columns: {shown or 'none'}); name them e.g. violence, harassment"
            )
        return scores


def mlflow_model_loader(tracking_uri: str, registry_uri: str = "") -> ModelLoader:
    """A loader for ``models:/name/version`` against these URIs (never MLflow's global ones):
    the version's artifacts are located through a client for ``registry_uri``, downloaded with
    ``tracking_uri`` when remote, and loaded with ``mlflow.pyfunc``."""

    def load(model_uri: str) -> Any:
        import tempfile
        from urllib.parse import urlparse

        import mlflow.artifacts
        import mlflow.pyfunc
        from mlflow.tracking import MlflowClient

        name, version = parse_model_uri(model_uri)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
        location = client.get_model_version_download_uri(name, version)
        if urlparse(location).scheme in ("", "file"):
            return mlflow.pyfunc.load_model(location)
        with tempfile.TemporaryDirectory(prefix="keelwatch-model-") as folder:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=folder, tracking_uri=tracking_uri
            )
            return mlflow.pyfunc.load_model(local)

    return load


def parse_model_uri(model_uri: str) -> tuple[str, str]:
    """``(name, version)`` of ``models:/name/version``; InvalidInputError otherwise."""
    prefix = "models:/"
    rest = model_uri[len(prefix) :] if model_uri.startswith(prefix) else ""
    name, _, version = rest.rpartition("/")
    if not name or not version.isdigit():
        raise InvalidInputError(
            f"classifier {model_uri[:80]!r}: use profanity-check, none or models:/name/version"
        )
    return name, version


# --------------------------------------------------------------------------- moderators


def default_blocklists() -> tuple[Blocklist, ...]:
    """The lexicon's blocklists per hazard category when that module exists, else the
    default profanity list."""
    try:
        lexicon = importlib.import_module("keelwatch.monitoring.moderation.lexicon")
    except ModuleNotFoundError as exc:
        if exc.name != "keelwatch.monitoring.moderation.lexicon":
            raise
        return (DEFAULT_PROFANITY,)
    return tuple(lexicon.DEFAULT_BLOCKLISTS)


def build_moderator(
    moderation: ModerationSettings, *, model_loader: ModelLoader | None = None
) -> Moderator:
    """Rules, PII and the configured classifier under the configured policy.

    ``moderation.classifier`` is ``profanity-check`` (the embedded model), ``none``, or
    ``models:/name/version``, which needs ``model_loader`` (e.g. :func:`mlflow_model_loader`
    with the settings' URIs). The registered model is probed once with a short text, so a
    model whose output has no category column fails here, not on every batch.
    """
    policy = ModerationPolicy.from_overrides(moderation.thresholds)
    filters: list[TextFilter] = [RuleFilter(default_blocklists()), PiiDetector()]
    choice = moderation.classifier.strip()
    if choice == PROFANITY_CHECK:
        filters.append(ClassifierFilter(profanity_check_scorer(), name=PROFANITY_CHECK))
    elif choice.startswith("models:/"):
        name, version = parse_model_uri(choice)
        if model_loader is None:
            raise InvalidInputError(
                f"classifier {choice}: a registered model needs a model loader (MLflow URIs)"
            )
        scorer = MlflowTextScorer(model_loader(choice), name=f"{name}/{version}")
        scorer(["keelwatch moderation probe"])
        filters.append(ClassifierFilter(scorer, name=f"{name}/{version}"))
    elif choice != NO_CLASSIFIER:
        parse_model_uri(choice)  # raises, naming the valid choices
    return Moderator(filters, policy, max_chars=moderation.max_text_chars)


def default_moderator() -> Moderator:
    """The moderator of the default settings (rules, PII, profanity-check), one per process."""
    global _default_moderator
    if _default_moderator is None:
        moderator = build_moderator(ModerationSettings())
        with _lock:
            if _default_moderator is None:
                _default_moderator = moderator
    return _default_moderator
