"""Bias audits on the platform: one model's prediction-log window, its sensitive attributes and
labels, audited per version by the pure audit (``monitoring.fairness``), stored for history,
written as ``fairness.*`` signals, in the caller's transaction; then published (report and
MLflow run) after the commit.

What the worker task ``BIAS_AUDIT_RUN``, the API's ``/audits`` and ``keelwatch audit`` call. The
caller commits, then calls :func:`publish_audit` for each new record and
``alerting.service.after_commit_dispatch`` (rules are evaluated on the new signals here, in the
same transaction, like realized performance).

The window is ``[window_end - window_s, window_end)``; ``window_end`` is the schedule's slot (or
now for a run on demand). Every version that logged predictions in the window is audited (or
only ``version``). Idempotent per (model, version, window, window end, attribute set): a rerun
of a slot finds the stored rows and writes no audit and no signal again.

Where the columns come from, per logged prediction:

- the prediction: output ``prediction``, or the one output that is not ``proba_<class>``;
- the score: output ``proba_<positive label>``, used only when every audited row has it;
- each sensitive attribute: the value recorded for the request id in the side table
  (``storage.attributes``) wins, else the logged input of the same name. A row with neither
  fails the audit of its version (InvalidInputError naming the attribute and the count);
- the label: from ``prediction_labels``. See :data:`LABEL_RULE` for which rows are audited.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from keelwatch.alerting.service import evaluate_or_defer
from keelwatch.alerting.signals import register_signal_names
from keelwatch.entities.signals import Signal
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.monitoring.evaluation.realized import (
    PREDICTION_COLUMN,
    PROBA_PREFIX,
    class_name,
    window_label,
)
from keelwatch.monitoring.fairness.results import AuditConfig
from keelwatch.monitoring.fairness.signals import SIGNAL_NAMES
from keelwatch.monitoring.service.realized import MAX_WINDOW_S, Champion
from keelwatch.storage import bias_audits as store
from keelwatch.storage import ops as ops_store
from keelwatch.storage import realized as realized_store
from keelwatch.storage import signals as signal_store
from keelwatch.storage.attributes import MAX_NAME_LENGTH, attribute_text
from keelwatch.storage.audit import record_audit
from keelwatch.storage.bias_audits import AuditRecord, WindowRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keelwatch.monitoring.fairness.results import AuditResult
    from keelwatch.settings import Settings
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)

# Importing this module makes rules on fairness.* valid (the API and the CLI import it).
register_signal_names(SIGNAL_NAMES)

AUDIT_ACTION = "fairness.audit"
SOURCE_PREDICTION_LOG = "prediction_log"
#: The most attributes one audit slices by (every combination of them is a slice).
MAX_ATTRIBUTES = 8
#: At or above this share of labelled rows, the audit runs on the labelled rows only, with
#: their labels; below it, on every row without labels (prediction-only metrics).
MIN_LABELLED_SHARE = 0.5
LABEL_RULE = (
    "label-based metrics need labels on the rows they describe: when at least half of the "
    "window's predictions of a version have a label, the audit covers the labelled rows only, "
    "with their labels; otherwise it covers every row without labels (selection rate and "
    "scores only). Mixing labelled and unlabelled rows in one audit would compare groups over "
    "different populations."
)


@dataclass(frozen=True)
class BiasAuditOutcome:
    """What one run did."""

    model: str
    window_s: int
    window_end: datetime
    results: list[AuditRecord]
    signals_written: int
    transitions: list[tuple[str, str | None, str]] = field(default_factory=list)
    """(fingerprint, from state, to state) of the alerts the new signals changed."""


def audit_config(settings: Settings, **overrides: Any) -> AuditConfig:
    """The audit settings of ``settings.fairness``, with each non-None override in place of the
    setting of its name (``min_group_size``, ``resamples``, ``confidence``, ``seed``,
    ``difference_threshold``, ``ratio_threshold``, ``correction``, ``max_order``)."""
    fairness = settings.fairness
    values: dict[str, Any] = {
        "min_group_size": fairness.min_group_size,
        "resamples": fairness.resamples,
        "confidence": fairness.confidence,
        "seed": fairness.seed,
        "difference_threshold": fairness.difference_threshold,
        "ratio_threshold": fairness.ratio_threshold,
        "correction": fairness.correction,
        "max_order": fairness.max_order,
    }
    for name, value in overrides.items():
        if name not in values:
            raise InvalidInputError(
                f"unknown audit setting {name!r}: choose from {', '.join(sorted(values))}"
            )
        if value is not None:
            values[name] = value
    return AuditConfig(**values)


def positive_label_setting(text: str) -> Any:
    """``fairness.positive_label`` as a label: an integer when it reads as one, else text."""
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    return stripped


def run_bias_audit(
    session: Session,
    *,
    model: str,
    attributes: Sequence[str],
    window_s: int,
    window_end: datetime,
    champion: Champion | None,
    config: AuditConfig,
    actor: str,
    version: str | None = None,
    positive_label: Any = 1,
    schedule_id: int | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> BiasAuditOutcome:
    """Audit every version of ``model`` (or only ``version``) over
    ``[window_end - window_s, window_end)`` across the slices of ``attributes``, store the
    audits, write their signals and evaluate the rules on them; audited once per run that wrote
    something. See the module docstring for where columns come from and for idempotency, and
    :data:`LABEL_RULE` for which rows are audited (the stored result says which under
    ``population``).

    A window with no predictions audits nothing (an empty outcome), unless ``version`` was
    asked for: then it is an InvalidInputError.
    """
    names = _check_request(model, attributes, window_s, window_end)
    computed_at = now or window_end
    start = window_end - timedelta(seconds=window_s)
    ops_store.lock_tick(session, _lock_key(model, names, window_s, window_end))
    counts = realized_store.predictions_per_version(session, model, start, window_end)
    if version is not None:
        if not counts.get(version):
            raise InvalidInputError(
                f"model {model!r} version {version!r} logged no predictions in the window"
            )
        counts = {version: counts[version]}
    results: list[AuditRecord] = []
    written: list[Signal] = []
    for audited in sorted(counts, key=_version_order):
        existing = store.find_audit(session, model, audited, window_s, window_end, names)
        if existing is not None:
            results.append(replace(existing, already_recorded=True))
            continue
        rows = store.window_rows(session, model, audited, start, window_end)
        result, population = _audit_rows(rows, names, audited, positive_label, config)
        alias = champion.alias if champion is not None and champion.version == audited else None
        record = store.insert_audit(
            session,
            model_name=model,
            model_version=audited,
            source=SOURCE_PREDICTION_LOG,
            window_s=window_s,
            window_end=window_end,
            attributes=names,
            alias=alias,
            verdict=result.verdict,
            rows=result.rows,
            violations=len(result.violations),
            result={**result.to_dict(), "population": population},
            schedule_id=schedule_id,
            computed_at=computed_at,
            computed_by=actor,
        )
        results.append(record)
        written.extend(_signals(result, record, window_label(window_s)))
    signal_store.write_signals(session, written)
    if any(not r.already_recorded for r in results):
        record_audit(
            session,
            actor=actor,
            action=AUDIT_ACTION,
            target=f"model:{model}"[:255],
            reason=reason,
            details={
                "window_s": window_s,
                "window_end": window_end.isoformat(),
                "attributes": list(names),
                "schedule_id": schedule_id,
                "audits": {r.model_version: r.id for r in results if not r.already_recorded},
                "verdicts": {r.model_version: r.verdict for r in results},
            },
            at=computed_at,
        )
    outcome = evaluate_or_defer(session, written, computed_at, what="fairness")
    return BiasAuditOutcome(
        model=model,
        window_s=window_s,
        window_end=window_end,
        results=results,
        signals_written=len(written),
        transitions=[
            (t.fingerprint, t.from_state.value if t.from_state else None, t.to_state.value)
            for t in (outcome.transitions if outcome is not None else [])
        ],
    )


def publish_audit(settings: Settings, db: Database, audit_id: int) -> str | None:
    """After the commit that stored audit ``audit_id``: render its report and log it as an
    MLflow run, then store the run id and the report (its own transaction). Returns the run id.

    MLflow calls are bounded by ``mlflow.request_timeout_s`` and ``mlflow.request_max_retries``.
    MLflow unavailable: a logged warning and None; the report is still stored and the audit
    row stays (publishing again later logs the run). Already published: the stored run id,
    nothing logged twice (a redelivered task)."""
    from keelwatch.monitoring.service.fairness_mlflow import log_audit_run
    from keelwatch.registry._client import apply_http_limits

    # Bounded MLflow calls in any process (MLflow's defaults retry a refused connection for
    # minutes); the registry's client sets the same limits from the same settings.
    apply_http_limits(settings.mlflow.request_timeout_s, settings.mlflow.request_max_retries)
    with db.session() as session:
        record = get_audit(session, audit_id)
    if record.mlflow_run_id is not None and record.has_report:
        return record.mlflow_run_id
    report_html = render_report(record)
    run_id: str | None = record.mlflow_run_id
    if run_id is None:
        try:
            run_id = log_audit_run(
                settings,
                model=record.model_name,
                version=record.model_version,
                result=record.result,
                report_html=report_html,
                audit_id=record.id,
                source=record.source,
                window=window_label(record.window_s) if record.window_s is not None else None,
            )
        except Exception as exc:  # noqa: BLE001 - MLflow down must not lose the stored audit
            logger.warning(
                "bias audit %d: MLflow run not logged (%s); the report is stored",
                audit_id,
                type(exc).__name__,
            )
            run_id = None
    with db.session() as session:
        store.set_publication(session, audit_id, mlflow_run_id=run_id, report_html=report_html)
    return run_id


def list_audits(
    session: Session,
    *,
    model: str | None = None,
    version: str | None = None,
    verdict: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """Stored audits, newest first."""
    return store.list_audits(
        session, model_name=model, model_version=version, verdict=verdict, limit=limit
    )


def get_audit(session: Session, audit_id: int) -> AuditRecord:
    """One stored audit; NotFoundError when there is none with this id."""
    record = store.get_audit(session, audit_id)
    if record is None:
        raise NotFoundError(f"no bias audit with id {audit_id}")
    return record


def audit_report_html(session: Session, audit_id: int) -> str:
    """The audit's HTML report: the stored one, else rendered now from the stored result."""
    stored = store.get_report_html(session, audit_id)
    if stored is not None:
        return stored
    return render_report(get_audit(session, audit_id))


def render_report(record: AuditRecord) -> str:
    """Render the report of a stored audit (title: model, version, window)."""
    from keelwatch.monitoring.service.fairness_report import render_audit_report

    title = f"Bias audit: {record.model_name} version {record.model_version}"
    if record.window_s is not None and record.window_end is not None:
        start = record.window_end - timedelta(seconds=record.window_s)
        subtitle = (
            f"Prediction log, {start.isoformat()} to {record.window_end.isoformat()} "
            f"({window_label(record.window_s)}); attributes: {', '.join(record.attributes)}"
        )
    else:
        subtitle = f"Source: {record.source}; attributes: {', '.join(record.attributes)}"
    if record.alias:
        subtitle += f"; alias {record.alias}"
    return render_audit_report(record.result, title=title, subtitle=subtitle)


# ----------------------------------------------------------------------------- internals


def _check_request(
    model: str, attributes: Sequence[str], window_s: int, window_end: datetime
) -> tuple[str, ...]:
    if not model:
        raise InvalidInputError("model must be a non-empty name")
    if window_end.tzinfo is None:
        raise InvalidInputError("window_end must be timezone-aware")
    if not 0 < window_s <= MAX_WINDOW_S:
        raise InvalidInputError(f"window must be 1 to {MAX_WINDOW_S} seconds, got {window_s}")
    if isinstance(attributes, str):
        raise InvalidInputError("attributes must be a list of names, not one string")
    names = tuple(dict.fromkeys(a.strip() for a in attributes if isinstance(a, str)))
    if len(names) != len(attributes) or not all(names):
        raise InvalidInputError("attributes must be distinct, non-empty names")
    if not names:
        raise InvalidInputError("a bias audit needs at least one sensitive attribute")
    if len(names) > MAX_ATTRIBUTES:
        raise InvalidInputError(
            f"{len(names)} attributes; a bias audit slices by at most {MAX_ATTRIBUTES}"
        )
    if any(len(name) > MAX_NAME_LENGTH for name in names):
        raise InvalidInputError(f"attribute names are at most {MAX_NAME_LENGTH} characters")
    return names


def _audit_rows(
    rows: Sequence[WindowRow],
    attributes: Sequence[str],
    version: str,
    positive_label: Any,
    config: AuditConfig,
) -> tuple[AuditResult, dict[str, Any]]:
    """The audit of one version's rows (see :data:`LABEL_RULE`) and what it covered."""
    import numpy as np

    from keelwatch.monitoring.fairness.audit import audit_predictions
    from keelwatch.monitoring.service.audit_files import positive_label_of

    labelled_rows = sum(1 for row in rows if row.labelled)
    use_labels = labelled_rows > 0 and labelled_rows >= MIN_LABELLED_SHARE * len(rows)
    audited = [row for row in rows if row.labelled] if use_labels else list(rows)
    column = _prediction_column(audited, version)
    y_pred = np.asarray([row.outputs[column] for row in audited])
    label = positive_label_of(y_pred, positive_label)
    if y_pred.dtype.kind == "U" and not isinstance(label, str):
        label = class_name(label)  # text predictions "1"/"0": the label 1 is "1"
    score_column = f"{PROBA_PREFIX}{class_name(label)}"
    scores = [row.outputs.get(score_column) for row in audited]
    scored = all(_finite_number(value) for value in scores)
    result = audit_predictions(
        {name: _sensitive(audited, name, version) for name in attributes},
        y_pred,
        y_true=np.asarray([row.label for row in audited]) if use_labels else None,
        score=np.asarray(scores, dtype=float) if scored and audited else None,
        positive_label=label,
        config=config,
    )
    population = {
        "logged_rows": len(rows),
        "labelled_rows": labelled_rows,
        "audited_rows": len(audited),
        "audited": "labelled_rows" if use_labels else "all_rows",
        "prediction_column": column,
        "score_column": score_column if scored and audited else None,
        "rule": LABEL_RULE,
    }
    return result, population


def _prediction_column(rows: Sequence[WindowRow], version: str) -> str:
    """``prediction``, or the one output column that is not a probability."""
    columns: set[str] = set()
    for row in rows:
        columns.update(name for name in row.outputs if not name.startswith(PROBA_PREFIX))
    if PREDICTION_COLUMN in columns:
        chosen = PREDICTION_COLUMN
    elif len(columns) == 1:
        chosen = next(iter(columns))
    else:
        named = ", ".join(sorted(columns)[:10]) or "none"
        raise InvalidInputError(
            f"version {version}: logged outputs have no {PREDICTION_COLUMN!r} column and not "
            f"exactly one other column to read predictions from (columns: {named})"
        )
    missing = sum(1 for row in rows if row.outputs.get(chosen) is None)
    if missing:
        raise InvalidInputError(
            f"version {version}: {missing} audited predictions have no output {chosen!r}"
        )
    return chosen


def _sensitive(rows: Sequence[WindowRow], name: str, version: str) -> list[str]:
    """One attribute's value per row: the side table's, else the logged input's."""
    values: list[str] = []
    missing = 0
    for row in rows:
        value = row.attributes.get(name)
        if value is None:
            value = _input_value(row.inputs.get(name))
        if value is None:
            missing += 1
            continue
        values.append(value)
    if missing:
        raise InvalidInputError(
            f"sensitive attribute {name!r}: {missing} of {len(rows)} audited predictions of "
            f"version {version} have no value (neither recorded for the request id nor logged "
            "as an input)"
        )
    return values


def _input_value(value: Any) -> str | None:
    text = attribute_text(value)
    if text is None and isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return text


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _signals(result: AuditResult, record: AuditRecord, window: str) -> list[Signal]:
    from keelwatch.monitoring.fairness.signals import audit_signals

    if record.window_end is None:  # pragma: no cover - prediction-log audits have a window
        raise ValueError("a prediction-log audit has a window end")
    return audit_signals(
        result,
        model=record.model_name,
        version=record.model_version,
        observed_at=record.window_end,
        source=f"bias_audit:{record.id}",
        window=window,
        alias=record.alias,
    )


def _version_order(version: str) -> tuple[int, str]:
    """Numeric versions in number order (MLflow's are), anything else after them by name."""
    return (int(version), "") if version.isdigit() else (2**63, version)


def _lock_key(model: str, attributes: Sequence[str], window_s: int, window_end: datetime) -> int:
    """A signed 64-bit advisory-lock key for one model's slot (two runs of it serialise)."""
    text = (
        f"bias_audit:{model}:{store.attributes_key(attributes)}:{window_s}:{window_end.isoformat()}"
    )
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
