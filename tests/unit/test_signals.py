"""Signals: the entity's validation, the series fingerprint, and drift results → signals."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from keelwatch.alerting.signals import (
    drift_result_signals,
    register_converter,
    registered_types,
    signals_for,
)
from keelwatch.entities.monitors import DriftResult, DriftStatus
from keelwatch.entities.signals import Signal, labels_fingerprint
from keelwatch.errors import InvalidInputError

AT = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


def _column(name: str, **values: object) -> dict[str, object]:
    column: dict[str, object] = {
        "column": name,
        "kind": "numeric",
        "status": "ok",
        "statistic": "ks",
        "value": 0.2,
        "pvalue": 0.001,
        "qvalue": 0.002,
        "effect_size": 0.2,
        "drifted": True,
        "missing_rate_current": 0.0,
        "role": "feature",
    }
    column.update(values)
    return column


def _result(**overrides: object) -> DriftResult:
    columns = {
        "age": _column("age"),
        "city": _column(
            "city",
            kind="categorical",
            statistic="chisquare",
            value=3.5,
            pvalue=0.4,
            qvalue=0.4,
            effect_size=0.05,
            drifted=False,
            missing_rate_current=0.25,
        ),
        "score": _column("score", role="prediction", statistic="psi", pvalue=None, qvalue=None),
        "income": _column("income", status="insufficient_data", value=None, drifted=False),
    }
    values: dict[str, object] = {
        "id": 7,
        "monitor_id": 3,
        "job_id": "job-1",
        "model_name": "credit",
        "model_version": "2",
        "status": DriftStatus.DRIFT,
        "dataset_drift": True,
        "share_drifted": 0.5,
        "window_rows": 500,
        "mode": "in_process",
        "started_at": AT,
        "finished_at": AT,
        "columns": columns,
        "report": {"monitor": "credit-daily", "prediction_drifted": True, "target_drifted": None},
    }
    values.update(overrides)
    return DriftResult(**values)  # type: ignore[arg-type]


def _by_key(signals: list[Signal]) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("column", "")): s.value for s in signals}


def test_fingerprint_is_sha256_of_sorted_labels_whatever_the_order() -> None:
    expected = hashlib.sha256(
        json.dumps([["a", "1"], ["b", "2"]], separators=(",", ":")).encode()
    ).hexdigest()
    assert labels_fingerprint({"b": "2", "a": "1"}) == expected
    assert labels_fingerprint({"a": "1", "b": "2"}) == expected
    assert labels_fingerprint({"a": "1"}) != expected
    signal = Signal("drift.column.p_value", 0.5, {"b": "2", "a": "1"}, AT)
    assert signal.fingerprint == expected
    assert list(signal.labels) == ["a", "b"]


def test_signal_turns_booleans_into_0_and_1() -> None:
    assert Signal("drift.dataset.drifted", True, {}, AT).value == 1.0
    assert Signal("drift.dataset.drifted", False, {}, AT).value == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Drift"}, "invalid signal name"),
        ({"name": "drift"}, "invalid signal name"),
        ({"name": "drift..p"}, "invalid signal name"),
        ({"value": float("nan")}, "finite number"),
        ({"value": "0.5"}, "finite number, got str"),
        ({"observed_at": AT.replace(tzinfo=None)}, "timezone-aware"),
        ({"labels": {"bad-name": "x"}}, "invalid label name 'bad-name'"),
        ({"labels": {"version": 2}}, "label 'version' must be a string, got int"),
        ({"source": "x" * 300}, "source longer than 255"),
    ],
)
def test_signal_rejects_bad_input_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "name": "drift.column.p_value",
        "value": 0.5,
        "labels": {"model": "credit"},
        "observed_at": AT,
    }
    values.update(kwargs)
    with pytest.raises(InvalidInputError, match=message):
        Signal(**values)  # type: ignore[arg-type]


def test_drift_result_becomes_signals_column_by_column() -> None:
    signals = drift_result_signals(_result())
    assert {s.source for s in signals} == {"drift_result:7"}
    assert {s.observed_at for s in signals} == {AT}
    got = _by_key(signals)
    assert got == {
        ("drift.check.window_rows", ""): 500.0,
        ("drift.check.error", ""): 0.0,
        ("drift.dataset.drifted", ""): 1.0,
        ("drift.dataset.share_drifted", ""): 0.5,
        ("drift.prediction.drifted", ""): 1.0,
        # target_drifted is None (no labels yet): no signal, never a made-up 0
        ("drift.column.statistic", "age"): 0.2,
        ("drift.column.p_value", "age"): 0.001,
        ("drift.column.q_value", "age"): 0.002,
        ("drift.column.effect_size", "age"): 0.2,
        ("drift.column.drifted", "age"): 1.0,
        ("drift.column.missing_rate", "age"): 0.0,
        ("drift.column.statistic", "city"): 3.5,
        ("drift.column.p_value", "city"): 0.4,
        ("drift.column.q_value", "city"): 0.4,
        ("drift.column.effect_size", "city"): 0.05,
        ("drift.column.drifted", "city"): 0.0,
        ("drift.column.missing_rate", "city"): 0.25,
        # PSI has no p-value: statistic, effect size, verdict and missing rate only
        ("drift.column.statistic", "score"): 0.2,
        ("drift.column.effect_size", "score"): 0.2,
        ("drift.column.drifted", "score"): 1.0,
        ("drift.column.missing_rate", "score"): 0.0,
        # income was not tested (insufficient data): no column signals at all
    }
    city = next(
        s for s in signals if s.name == "drift.column.p_value" and s.labels["column"] == "city"
    )
    assert city.labels == {
        "column": "city",
        "model": "credit",
        "monitor": "credit-daily",
        "role": "feature",
        "statistic": "chisquare",
        "version": "2",
    }
    score = next(s for s in signals if s.labels.get("column") == "score")
    assert score.labels["role"] == "prediction"


@pytest.mark.parametrize("status", [DriftStatus.ERROR, DriftStatus.INSUFFICIENT_DATA])
def test_a_check_without_a_verdict_emits_only_its_check_signals(status: DriftStatus) -> None:
    result = _result(status=status, dataset_drift=None, share_drifted=None, window_rows=0)
    got = _by_key(drift_result_signals(result))
    assert got == {
        ("drift.check.window_rows", ""): 0.0,
        ("drift.check.error", ""): 1.0 if status is DriftStatus.ERROR else 0.0,
    }


def test_signals_for_adds_context_labels_without_overriding_the_result() -> None:
    signals = signals_for(_result(), labels={"alias": "champion", "model": "other"})
    assert {s.labels["alias"] for s in signals} == {"champion"}
    assert {s.labels["model"] for s in signals} == {"credit"}
    assert len(signals) == len(drift_result_signals(_result()))


def test_converters_are_a_registry_keyed_by_result_type() -> None:
    @dataclass(frozen=True)
    class ModerationRate:
        model: str
        rate: float

    def convert(result: ModerationRate) -> list[Signal]:
        return [Signal("moderation.flagged.rate", result.rate, {"model": result.model}, AT)]

    with pytest.raises(InvalidInputError, match="no signal converter for results of type"):
        signals_for(ModerationRate("credit", 0.1))
    register_converter(ModerationRate, convert)
    assert ModerationRate in registered_types()
    assert DriftResult in registered_types()
    assert signals_for(ModerationRate("credit", 0.1), labels={"alias": "champion"}) == [
        Signal("moderation.flagged.rate", 0.1, {"alias": "champion", "model": "credit"}, AT)
    ]
    register_converter(ModerationRate, convert)  # the same converter again is harmless
    with pytest.raises(ValueError, match="already registered"):
        register_converter(ModerationRate, lambda _r: [])
