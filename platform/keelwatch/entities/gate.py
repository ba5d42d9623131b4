"""Champion/challenger gate policies (one per model) and gate decisions (one per check job)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class GatePolicyRecord:
    """A model's stored gate policy: the policy data as parsed and normalised."""

    model_name: str
    policy: dict[str, Any]
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class GateDecisionRecord:
    """One gate check's verdict.

    ``outcome`` is the gate's (promote, reject, insufficient_data); ``promoted`` says whether
    the champion alias actually moved (a promote verdict on an unapproved version, where the
    registry requires approval, does not move it; the reasons say so).
    """

    id: int
    job_id: str
    model_name: str
    champion_version: str
    challenger_version: str
    dataset_name: str
    dataset_version: int
    outcome: str
    promoted: bool
    reasons: tuple[str, ...]
    comparisons: tuple[dict[str, Any], ...]
    decided_by: str
    decided_at: datetime
