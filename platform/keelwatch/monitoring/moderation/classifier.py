"""A linear text classifier as plain data: a TF-IDF bag of words, one or more linear models
(one per calibrated fold) and each fold's calibration, scoring texts to the probability of the
positive class exactly as scikit-learn's ``CalibratedClassifierCV(LinearSVC)`` over a
``TfidfVectorizer`` does (``predict_proba(...)[:, 1]``), without scikit-learn's per-call input
validation, which costs milliseconds per call for one text.

Two paths give the same numbers: a plain-Python one (a dict of per-word weights) for a few
texts, and a vectorized one (one sparse matrix product for the batch) for many. The scorer is a
:data:`~keelwatch.monitoring.moderation.pipeline.Scorer`: calling it with texts returns
``{category: probabilities}``, so it plugs into
:class:`~keelwatch.monitoring.moderation.pipeline.ClassifierFilter`. Loading a pickled model and
converting it belongs to ``monitoring.service.moderators``; nothing here reads files.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np
from scipy import sparse
from scipy.special import expit

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.moderation.findings import Category

#: Batches up to this size take the plain-Python path (no array set-up cost).
SMALL_BATCH = 8
_NORMS = ("l2", "l1", None)
#: scikit-learn's default token pattern, and a faster one that finds the same tokens: greedy
#: ``\w\w+`` always starts and ends on a word boundary when it matches.
_DEFAULT_TOKENS = r"(?u)\b\w\w+\b"
_FAST_TOKENS = r"\w\w+"
# A batch is tokenized as one string, its texts joined by this word (a token of the default
# pattern); a batch in which a text holds it is tokenized text by text instead.
_SEPARATOR = "kwxbatchxseparatorxkw"
# ASCII word characters (``\w``: letters, digits, underscore) kept, every other byte a space.
_ASCII_WORDS = bytes(
    b if chr(b).isascii() and (chr(b).isalnum() or chr(b) == "_") else ord(" ") for b in range(256)
)


@dataclass(frozen=True)
class SigmoidCalibration:
    """Platt scaling: ``p = 1 / (1 + exp(a * d + b))`` of the decision value ``d``."""

    a: float
    b: float


@dataclass(frozen=True)
class IsotonicCalibration:
    """A non-decreasing step function: linear interpolation between ``(x[i], y[i])``, clipped
    to the ends (scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.x or len(self.x) != len(self.y):
            raise InvalidInputError("isotonic calibration needs as many y as x values (>= 1)")
        if any(b < a for a, b in zip(self.x, self.x[1:], strict=False)):
            raise InvalidInputError("isotonic calibration x values must be ascending")


Calibration = SigmoidCalibration | IsotonicCalibration


@dataclass(frozen=True)
class CalibratedLinearModel:
    """One fold: decision ``d = x . coef + intercept`` on the vectorized text, then its
    calibration to a probability."""

    coef: tuple[float, ...]
    intercept: float
    calibration: Calibration


@dataclass(frozen=True)
class TfidfVocabulary:
    """What a word-level ``TfidfVectorizer`` (or ``CountVectorizer``: ``idf`` None) needs to
    vectorize a text: the token pattern, lower-casing, the vocabulary (stop words already
    removed: they never count), idf weights and the row normalization."""

    vocabulary: Mapping[str, int]
    idf: tuple[float, ...] | None
    token_pattern: str = r"(?u)\b\w\w+\b"
    lowercase: bool = True
    norm: str | None = "l2"
    sublinear_tf: bool = False
    binary: bool = False

    def __post_init__(self) -> None:
        if self.norm not in _NORMS:
            raise InvalidInputError(f"norm must be one of l2, l1 or None, not {self.norm!r}")
        size = len(self.vocabulary)
        if self.idf is not None and len(self.idf) < size:
            raise InvalidInputError(f"{len(self.idf)} idf weights for {size} vocabulary words")
        if re.compile(self.token_pattern).groups > 1:
            raise InvalidInputError("token_pattern may capture at most one group")


class LinearTextScorer:
    """Scores texts with a vectorizer and folds of calibrated linear models; the probability of
    the positive class is the mean over folds, as ``CalibratedClassifierCV.predict_proba``.

    ``scorer(texts)`` returns ``{category: [p, ...]}`` (a pipeline Scorer);
    :meth:`probabilities` returns the bare array.
    """

    def __init__(
        self,
        vocabulary: TfidfVocabulary,
        folds: Sequence[CalibratedLinearModel],
        *,
        category: Category = Category.PROFANITY,
    ) -> None:
        if not folds:
            raise InvalidInputError("a linear text scorer needs at least one model")
        n_features = max(vocabulary.vocabulary.values(), default=-1) + 1
        for index, fold in enumerate(folds):
            if len(fold.coef) < n_features:
                raise InvalidInputError(
                    f"model {index} has {len(fold.coef)} coefficients for {n_features} features"
                )
        self.vocabulary = vocabulary
        self.folds = tuple(folds)
        self.category = category
        default = vocabulary.token_pattern == _DEFAULT_TOKENS
        self._findall = re.compile(_FAST_TOKENS if default else vocabulary.token_pattern).findall
        self._joinable = default and _SEPARATOR not in vocabulary.vocabulary
        self._lower = vocabulary.lowercase
        width = max(len(fold.coef) for fold in folds)
        idf = np.ones(width) if vocabulary.idf is None else np.asarray(vocabulary.idf, float)
        coef = np.array([np.asarray(fold.coef, float) for fold in folds])  # (folds, features)
        self._idf = idf
        self._coef_t = np.ascontiguousarray(coef.T)  # (features, folds)
        self._intercepts = np.array([fold.intercept for fold in folds], dtype=float)
        self._index = dict(vocabulary.vocabulary)
        self._index_joined = {**self._index, _SEPARATOR: -2}
        # The same for ASCII texts split as bytes (see _ascii_tokens).
        self._ascii_index = {
            word.encode("ascii"): i
            for word, i in self._index.items()
            if word.isascii() and len(word) > 1
        }
        self._ascii_index[_SEPARATOR.encode("ascii")] = -2
        # The plain-Python path: per word, its idf and its coefficient in every fold.
        self._weights: dict[str, tuple[float, tuple[float, ...]]] = {
            word: (float(idf[i]), tuple(float(c) for c in coef[:, i]))
            for word, i in vocabulary.vocabulary.items()
        }
        self._isotonic = [
            (np.asarray(f.calibration.x), np.asarray(f.calibration.y))
            if isinstance(f.calibration, IsotonicCalibration)
            else None
            for f in self.folds
        ]

    def __call__(self, texts: Sequence[str]) -> dict[Category, list[float]]:
        """``{category: probabilities}``, one per text."""
        return {self.category: self.probabilities(texts).tolist()}

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """The positive class's probability for each text (float64 array)."""
        if isinstance(texts, str):
            raise InvalidInputError("texts must be a sequence of str, not one str")
        if set(map(type, texts)) - {str}:  # C-level for the batch; name the first bad one
            for index, text in enumerate(texts):
                if not isinstance(text, str):
                    raise InvalidInputError(
                        f"text {index} must be a str, not {type(text).__name__}"
                    )
        if len(texts) <= SMALL_BATCH:
            return np.array([self._one(text) for text in texts], dtype=float)
        return self._batch(texts)

    # ------------------------------------------------------------------ one text at a time

    def _one(self, text: str) -> float:
        tokens = self._findall(text.lower() if self._lower else text)
        if not tokens:
            return self._calibrated_mean([float(b) for b in self._intercepts])
        weights = self._weights
        vocab = self.vocabulary
        sums = [0.0] * len(self.folds)
        norm = 0.0
        for word, count in Counter(tokens).items():
            entry = weights.get(word)
            if entry is None:
                continue
            tf = 1.0 if vocab.binary else float(count)
            if vocab.sublinear_tf:
                tf = math.log(tf) + 1.0
            value = tf * entry[0]
            if vocab.norm == "l2":
                norm += value * value
            elif vocab.norm == "l1":
                norm += abs(value)
            for k, c in enumerate(entry[1]):
                sums[k] += value * c
        if vocab.norm == "l2":
            norm = math.sqrt(norm)
        scale = 1.0 if vocab.norm is None or norm == 0.0 else norm
        decisions = [s / scale + float(b) for s, b in zip(sums, self._intercepts, strict=True)]
        return self._calibrated_mean(decisions)

    def _calibrated_mean(self, decisions: Sequence[float]) -> float:
        total = 0.0
        for fold, d in zip(self.folds, decisions, strict=True):
            calibration = fold.calibration
            if isinstance(calibration, SigmoidCalibration):
                total += _sigmoid(-(calibration.a * d + calibration.b))
            else:
                total += _interpolate(calibration.x, calibration.y, d)
        return total / len(self.folds)

    # ------------------------------------------------------------------ a batch at once

    def _joined_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """(row, column) of every token, tokenizing the batch as one string (one C-level
        regex scan); None when a text holds the separator word."""
        joined = f" {_SEPARATOR} ".join(texts)
        if self._lower:
            joined = joined.lower()
        if joined.count(_SEPARATOR) != len(texts) - 1:
            return None
        tokens = self._findall(joined)
        columns = np.fromiter(
            map(self._index_joined.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens)
        )
        rows = np.cumsum(columns == -2)
        return rows, columns

    def _ascii_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`_joined_tokens` for ASCII texts without a regex: for ASCII, ``\\w\\w+``'s
        tokens are the runs of word characters, so one ``bytes.translate`` (every other byte a
        space) and a split find them; a one-character run is no token, and no vocabulary word
        either, so looking it up finds nothing."""
        separator = f" {_SEPARATOR} "
        joined = separator.join(texts)
        if self._lower:
            joined = joined.lower()
        if joined.count(_SEPARATOR) != len(texts) - 1:
            return None
        tokens = joined.encode("ascii").translate(_ASCII_WORDS).split()
        columns = np.fromiter(
            map(self._ascii_index.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens)
        )
        rows = np.cumsum(columns == -2)
        return rows, columns

    def _batch_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every token of the batch: ASCII texts and the others tokenized
        apart (a regex over a string holding one emoji runs on four bytes per character)."""
        if not self._joinable:
            return self._tokens_one_by_one(texts)
        ascii_flags = list(map(str.isascii, texts))
        if all(ascii_flags):
            found = self._ascii_tokens(texts)
            return found if found is not None else self._tokens_one_by_one(texts)
        parts = []
        for wanted in (True, False):
            where = [i for i, flag in enumerate(ascii_flags) if flag is wanted]
            if not where:
                continue
            group = [texts[i] for i in where]
            found = self._ascii_tokens(group) if wanted else self._joined_tokens(group)
            rows, columns = found if found is not None else self._tokens_one_by_one(group)
            parts.append((np.asarray(where, dtype=np.int64)[rows], columns))
        return (
            np.concatenate([rows for rows, _ in parts]),
            np.concatenate([columns for _, columns in parts]),
        )

    def _tokens_one_by_one(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        lowered = map(str.lower, texts) if self._lower else iter(texts)
        tokens = list(map(self._findall, lowered))
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(texts))
        columns = np.fromiter(
            map(self._index.get, chain.from_iterable(tokens), repeat(-1)),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        return np.repeat(np.arange(len(texts), dtype=np.int64), lengths), columns

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        n = len(texts)
        rows, columns = self._batch_tokens(texts)
        known = columns >= 0
        rows, columns = rows[known], columns[known]
        # COO -> CSR sums the repeated (row, column) pairs: the term counts.
        matrix = sparse.csr_matrix(
            (np.ones(rows.shape[0]), (rows, columns)), shape=(n, self._coef_t.shape[0])
        )
        matrix.sum_duplicates()
        vocab = self.vocabulary
        if vocab.binary:
            matrix.data[:] = 1.0
        if vocab.sublinear_tf:
            np.log(matrix.data, out=matrix.data)
            matrix.data += 1.0
        matrix.data *= self._idf[matrix.indices]
        if vocab.norm is not None:
            row_of = np.repeat(np.arange(n), np.diff(matrix.indptr))
            if vocab.norm == "l2":
                norms = np.sqrt(np.bincount(row_of, matrix.data * matrix.data, minlength=n))
            else:
                norms = np.bincount(row_of, np.abs(matrix.data), minlength=n)
            norms[norms == 0.0] = 1.0
            matrix.data /= norms[row_of]
        decisions = np.asarray(matrix @ self._coef_t) + self._intercepts  # (texts, folds)
        mean = np.zeros(n)
        for k, fold in enumerate(self.folds):
            calibration = fold.calibration
            if isinstance(calibration, SigmoidCalibration):
                mean += expit(-(calibration.a * decisions[:, k] + calibration.b))
            else:
                xs, ys = self._isotonic[k]  # type: ignore[misc]
                mean += np.interp(np.clip(decisions[:, k], xs[0], xs[-1]), xs, ys)
        mean /= len(self.folds)
        return mean


def _sigmoid(z: float) -> float:
    """``1 / (1 + exp(-z))`` without overflow for large ``|z|``."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Linear interpolation of ``(xs, ys)`` at ``x``, clipped to the ends (as ``np.interp``)."""
    if x <= xs[0]:
        return float(ys[0])
    if x >= xs[-1]:
        return float(ys[-1])
    j = bisect.bisect_right(xs, x) - 1
    x0, x1, y0, y1 = xs[j], xs[j + 1], ys[j], ys[j + 1]
    if x1 == x0:
        return float(y0)
    return float((y1 - y0) / (x1 - x0) * (x - x0) + y0)
