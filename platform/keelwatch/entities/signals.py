"""Signals: every number an alerting rule can watch, as one plain value.

A signal is one observation of a named series: ``name`` says what was measured, ``labels`` say
of what (model, version, monitor, column, ...), ``observed_at`` when, and ``source`` where it
came from (``drift_result:<id>``, ``job:<id>``). A series is all signals with the same name and
the same labels; :func:`labels_fingerprint` names it.

Naming scheme: dotted, lower case, ``<producer>.<subject>.<quantity>``, e.g.
``drift.column.p_value``, ``drift.dataset.drifted``, ``ops.queue.depth``, ``anomaly.ewma``.
Booleans are stored as ``1.0`` (true) and ``0.0`` (false). The full list is in
``docs/alerting.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from keelwatch.errors import InvalidInputError

#: ``<producer>.<subject>[.<quantity>...]``: lower-case words joined by dots.
SIGNAL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
#: Label names as Prometheus and Alertmanager accept them.
LABEL_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Longest signal name and label value stored (the table's column widths).
MAX_NAME_LENGTH = 128
MAX_SOURCE_LENGTH = 255


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """SHA-256 (hex) of the labels sorted by name: the id of a series whatever the key order."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Signal:
    """One observation of a series: ``name`` with ``labels`` had ``value`` at ``observed_at``.

    Construction validates what storage and rules rely on and raises
    :class:`~keelwatch.errors.InvalidInputError` naming the field: a dotted lower-case name, a
    finite value, a timezone-aware time, string label names and values.
    """

    name: str
    value: float
    labels: Mapping[str, str]
    observed_at: datetime
    source: str = ""
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.name) > MAX_NAME_LENGTH or not SIGNAL_NAME_PATTERN.match(self.name):
            raise InvalidInputError(
                f"invalid signal name {self.name[:MAX_NAME_LENGTH]!r}: use dotted lower-case "
                "words such as 'drift.column.p_value'"
            )
        if isinstance(self.value, bool):  # True is an int: store it as the 1.0 it means
            object.__setattr__(self, "value", 1.0 if self.value else 0.0)
        if not isinstance(self.value, int | float) or not math.isfinite(self.value):
            raise InvalidInputError(
                f"signal {self.name!r}: value must be a finite number, got "
                f"{type(self.value).__name__}"
            )
        object.__setattr__(self, "value", float(self.value))
        if self.observed_at.tzinfo is None:
            raise InvalidInputError(f"signal {self.name!r}: observed_at must be timezone-aware")
        for key, val in self.labels.items():
            if not isinstance(key, str) or not LABEL_NAME_PATTERN.match(key):
                raise InvalidInputError(f"signal {self.name!r}: invalid label name {key!r}")
            if not isinstance(val, str):
                raise InvalidInputError(
                    f"signal {self.name!r}: label {key!r} must be a string, "
                    f"got {type(val).__name__}"
                )
        if len(self.source) > MAX_SOURCE_LENGTH:
            raise InvalidInputError(f"signal {self.name!r}: source longer than 255 characters")
        object.__setattr__(self, "labels", dict(sorted(self.labels.items())))
        object.__setattr__(self, "fingerprint", labels_fingerprint(self.labels))
