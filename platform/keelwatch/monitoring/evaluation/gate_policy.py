"""Champion/challenger gate policies: what a challenger must show to take the champion alias.

A policy is plain data (YAML/JSON) parsed once into :class:`GatePolicy`::

    dataset: credit-holdout          # evaluation dataset; "name@N" (or name:N) pins version N
    metric_confidence: 0.95          # bootstrap confidence level
    bootstrap_samples: 1000
    min_rows: 200                    # fewer rows -> insufficient_data (never promote)
    any_of:                          # promote when ANY alternative holds (all its conditions)
      - all_of:
          - {metric: f1_macro, max_drop: 0.01}
          - {metric: latency_p95_s, min_improvement: 0.20}

Condition kinds (all thresholds finite and >= 0; "gain" is in the metric's better direction):

- ``max_drop d``: absolute, the challenger may be worse by at most ``d``;
- ``min_gain g``: absolute, the challenger must be better by more than ``g``;
- ``min_improvement r``: relative to the champion, better by at least ``r`` (0.2 = 20 %);
- ``max_regression r``: relative, worse by at most ``r``.

Every condition is judged on the conservative end of the bootstrap confidence interval (see
:mod:`keelwatch.monitoring.evaluation.gate`), so noise alone never promotes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from keelwatch.errors import InvalidInputError

ConditionKind = Literal["max_drop", "min_gain", "min_improvement", "max_regression"]
CONDITION_KINDS: Final[tuple[ConditionKind, ...]] = (
    "max_drop",
    "min_gain",
    "min_improvement",
    "max_regression",
)
#: Kinds whose threshold is a fraction of the champion's value.
RELATIVE_KINDS: Final = frozenset({"min_improvement", "max_regression"})

#: Quality metrics, bootstrapped over rows (paired: both versions on the same resampled rows).
CLASSIFICATION_METRICS: Final = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
    "ece",
)
REGRESSION_METRICS: Final = ("mae", "rmse", "r2")
#: Latency metrics, bootstrapped over each version's per-batch latency samples.
LATENCY_METRICS: Final = ("latency_p50_s", "latency_p95_s")
#: Exact measurements with no sampling noise to bootstrap; read from the evaluations' metrics.
EXACT_METRICS: Final = ("model_size_bytes", "peak_memory_bytes")
KNOWN_METRICS: Final = (
    *CLASSIFICATION_METRICS,
    *REGRESSION_METRICS,
    *LATENCY_METRICS,
    *EXACT_METRICS,
)
LOWER_IS_BETTER: Final = frozenset(
    {"log_loss", "ece", "mae", "rmse", *LATENCY_METRICS, *EXACT_METRICS}
)

DEFAULT_CONFIDENCE: Final = 0.95
DEFAULT_BOOTSTRAP_SAMPLES: Final = 1000
MAX_BOOTSTRAP_SAMPLES: Final = 100_000
DEFAULT_MIN_ROWS: Final = 200

_POLICY_KEYS: Final = frozenset(
    {"dataset", "metric_confidence", "bootstrap_samples", "min_rows", "any_of", "all_of"}
)


@dataclass(frozen=True)
class GateCondition:
    """One requirement on one metric."""

    metric: str
    kind: ConditionKind
    threshold: float

    @property
    def relative(self) -> bool:
        """Whether the threshold is a fraction of the champion's value."""
        return self.kind in RELATIVE_KINDS

    @property
    def lower_is_better(self) -> bool:
        """Whether a smaller value of the metric is the better one."""
        return self.metric in LOWER_IS_BETTER

    def as_dict(self) -> dict[str, object]:
        """The condition as policy data."""
        return {"metric": self.metric, self.kind: self.threshold}


@dataclass(frozen=True)
class GateAlternative:
    """Conditions that must all hold together."""

    conditions: tuple[GateCondition, ...]


@dataclass(frozen=True)
class GatePolicy:
    """What a challenger must show, parsed and checked (see the module docstring)."""

    dataset: str | None
    dataset_version: int | None
    metric_confidence: float
    bootstrap_samples: int
    min_rows: int
    any_of: tuple[GateAlternative, ...]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics the conditions name, each once, in first-use order."""
        seen: dict[str, None] = {}
        for alternative in self.any_of:
            for condition in alternative.conditions:
                seen.setdefault(condition.metric, None)
        return tuple(seen)

    def as_dict(self) -> dict[str, object]:
        """The policy as data that :func:`parse_gate_policy` reads back to an equal policy."""
        dataset: str | None = self.dataset
        if dataset is not None and self.dataset_version is not None:
            dataset = f"{dataset}@{self.dataset_version}"
        return {
            "dataset": dataset,
            "metric_confidence": self.metric_confidence,
            "bootstrap_samples": self.bootstrap_samples,
            "min_rows": self.min_rows,
            "any_of": [
                {"all_of": [c.as_dict() for c in alternative.conditions]}
                for alternative in self.any_of
            ],
        }


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{key} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{key} must be a finite number")
    return number


def _integer(key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{key} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidInputError(f"{key} must be between {low} and {high}, got {value}")
    return value


def _dataset(value: object) -> tuple[str | None, int | None]:
    if value is None:
        return None, None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("dataset must be a dataset name (optionally name@version)")
    # "name@N" as in model references, or "name:N" as in evaluation dataset references
    name, sep, version = value.strip().replace(":", "@", 1).partition("@")
    if not sep:
        return name, None
    if not name or not version.isdigit() or int(version) < 1:
        raise InvalidInputError("dataset must be name, name@N or name:N with a version N >= 1")
    return name, int(version)


def _condition(key: str, data: object) -> GateCondition:
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{key} must be a mapping with metric and one condition")
    unknown = sorted(str(k) for k in data if k != "metric" and k not in CONDITION_KINDS)
    if unknown:
        raise InvalidInputError(
            f"{key}: unknown key(s) {', '.join(unknown)}; known: metric, "
            f"{', '.join(CONDITION_KINDS)}"
        )
    metric = data.get("metric")
    if not isinstance(metric, str):
        raise InvalidInputError(f"{key}.metric must be a metric name")
    if metric not in KNOWN_METRICS:
        raise InvalidInputError(
            f"{key}.metric: unknown metric {metric!r}; known: {', '.join(KNOWN_METRICS)}"
        )
    kinds = [k for k in CONDITION_KINDS if k in data]
    if len(kinds) != 1:
        raise InvalidInputError(
            f"{key} must have exactly one of {', '.join(CONDITION_KINDS)} (has {len(kinds)})"
        )
    kind = kinds[0]
    threshold = _number(f"{key}.{kind}", data[kind])
    if threshold < 0:
        raise InvalidInputError(f"{key}.{kind} must be >= 0 (the direction is in the name)")
    if kind == "min_improvement" and threshold >= 1:
        raise InvalidInputError(f"{key}.{kind} is a fraction (0.2 = 20 %) and must be < 1")
    return GateCondition(metric=metric, kind=kind, threshold=threshold)


def _alternative(key: str, data: object) -> GateAlternative:
    if not isinstance(data, Mapping) or set(data) != {"all_of"}:
        raise InvalidInputError(f"{key} must be a mapping with the single key all_of")
    conditions = data["all_of"]
    if not isinstance(conditions, Sequence) or isinstance(conditions, str) or not conditions:
        raise InvalidInputError(f"{key}.all_of must be a non-empty list of conditions")
    return GateAlternative(
        tuple(_condition(f"{key}.all_of[{i}]", c) for i, c in enumerate(conditions))
    )


def parse_gate_policy(data: Mapping[str, object]) -> GatePolicy:
    """Check and parse policy data; InvalidInputError names the offending key.

    ``any_of`` lists alternatives (``{all_of: [conditions]}``); a policy with a single
    alternative may give its conditions as a top-level ``all_of`` instead.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError("a gate policy must be a mapping")
    unknown = sorted(str(k) for k in data if k not in _POLICY_KEYS)
    if unknown:
        raise InvalidInputError(
            f"unknown gate policy key(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(_POLICY_KEYS))}"
        )
    if ("any_of" in data) == ("all_of" in data):
        raise InvalidInputError("a gate policy needs exactly one of any_of or all_of")
    if "all_of" in data:
        alternatives: tuple[GateAlternative, ...] = (
            _alternative("all_of", {"all_of": data["all_of"]}),
        )
    else:
        raw = data["any_of"]
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise InvalidInputError("any_of must be a non-empty list of {all_of: [...]}")
        alternatives = tuple(_alternative(f"any_of[{i}]", a) for i, a in enumerate(raw))
    confidence = _number("metric_confidence", data.get("metric_confidence", DEFAULT_CONFIDENCE))
    if not 0.5 <= confidence < 1:
        raise InvalidInputError(f"metric_confidence must be in [0.5, 1), got {confidence}")
    name, version = _dataset(data.get("dataset"))
    return GatePolicy(
        dataset=name,
        dataset_version=version,
        metric_confidence=confidence,
        bootstrap_samples=_integer(
            "bootstrap_samples",
            data.get("bootstrap_samples", DEFAULT_BOOTSTRAP_SAMPLES),
            100,
            MAX_BOOTSTRAP_SAMPLES,
        ),
        min_rows=_integer("min_rows", data.get("min_rows", DEFAULT_MIN_ROWS), 1, 10**12),
        any_of=alternatives,
    )
