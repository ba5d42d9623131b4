"""PII redaction of the prediction log, for every model, configurable per column
(``settings.privacy``: ``redact_prediction_log`` is the default mode of every string column,
``column_redaction`` overrides it per column name).

Modes: ``pii`` replaces each PII span (e-mail, phone, card, IBAN, SSN, IP, secret) with its
typed placeholder (``[EMAIL]``); ``none`` keeps the value; ``drop`` never stores the column.
Only strings are scanned: numbers, booleans and nulls pass unchanged whatever the mode (``drop``
still drops them). A string the detector cannot scan (over its size limit) is stored as
:data:`UNSCANNABLE`, never in clear: redaction fails closed.

:func:`prediction_log_redactor` builds the callable the inference chunk applies to each logged
row's inputs and outputs (``run_inference_chunk(..., log_redactor=...)``) before the row is
written; :func:`redact_columns` is the function it calls, usable on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from keelwatch.errors import InvalidInputError, KeelwatchError
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.redaction import redact

if TYPE_CHECKING:
    from keelwatch.settings import PrivacySettings

#: The redaction modes of a column.
MODES = ("pii", "none", "drop")
#: What a string the detector cannot scan is stored as (too long to scan: kept out entirely).
UNSCANNABLE = "[REDACTED]"

LogRedactor = Callable[[dict[str, Any]], dict[str, Any]]
"""Redacts one logged row's inputs (or outputs): column → value in, column → value out."""


def redact_columns(
    values: Mapping[str, Any],
    *,
    default: str,
    columns: Mapping[str, str],
    detector: PiiDetector,
) -> dict[str, Any]:
    """``values`` with each column redacted by its mode: ``columns[name]``, else ``default``.

    ``pii``: PII spans of a string value become typed placeholders; ``none``: unchanged;
    ``drop``: the key is removed. Non-string values are never changed (but are dropped under
    ``drop``). An unknown mode raises InvalidInputError naming the column, never its value.
    """
    _check_mode(default, "the default redaction mode")
    for name, mode in columns.items():
        _check_mode(mode, f"column {name!r}")
    redacted: dict[str, Any] = {}
    for name, value in values.items():
        mode = columns.get(name, default)
        if mode == "drop":
            continue
        if mode == "pii" and isinstance(value, str) and value:
            redacted[name] = _redact_text(value, detector)
        else:
            redacted[name] = value
    return redacted


def prediction_log_redactor(
    privacy: PrivacySettings, *, detector: PiiDetector | None = None
) -> LogRedactor | None:
    """The redactor for ``settings.privacy``, or None when nothing is ever changed (default
    ``none`` and no column overrides other than ``none``)."""
    default = privacy.redact_prediction_log
    columns = dict(privacy.column_redaction)
    if default == "none" and all(mode == "none" for mode in columns.values()):
        return None
    _check_mode(default, "privacy.redact_prediction_log")
    for name, mode in columns.items():
        _check_mode(mode, f"privacy.column_redaction column {name!r}")
    scanner = detector or PiiDetector()

    def redactor(values: dict[str, Any]) -> dict[str, Any]:
        return redact_columns(values, default=default, columns=columns, detector=scanner)

    return redactor


def _redact_text(text: str, detector: PiiDetector) -> str:
    try:
        findings = detector.find(text)
        return redact(text, findings) if findings else text
    except KeelwatchError:
        return UNSCANNABLE  # too long to scan: fail closed, keep nothing


def _check_mode(mode: object, where: str) -> None:
    if mode not in MODES:
        raise InvalidInputError(
            f"{where}: redaction mode must be one of {', '.join(MODES)}, not {str(mode)[:20]!r}"
        )
