"""One word for an untested column in every view: ``insufficient data``."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import keelwatch.cli.monitors as cli_monitors
from keelwatch.entities.monitors import DriftResult, DriftStatus
from keelwatch.monitoring.drift import build_profile, compute_drift
from keelwatch.monitoring.drift.report import STATUS_WORDS, column_verdict
from keelwatch.monitoring.service.html_report import render_drift_report, summarise_report


def _result() -> DriftResult:
    rng = np.random.default_rng(0)
    reference = build_profile(
        pd.DataFrame({"age": rng.normal(size=500), "plan": rng.choice(["a", "b"], 500)})
    )
    # age has values, plan is empty: plan is untested, age is tested.
    window = pd.DataFrame({"age": rng.normal(size=300), "plan": np.full(300, None, dtype=object)})
    verdict = summarise_report(compute_drift(reference, window))
    now = datetime.now(UTC)
    return DriftResult(
        id=1, monitor_id=1, job_id="j" * 36, model_name="m", model_version="1",
        status=DriftStatus(verdict["status"]), dataset_drift=verdict["dataset_drift"],
        share_drifted=verdict["share_drifted"], window_rows=300, mode="in_process",
        started_at=now, finished_at=now, columns=verdict["columns"], report=verdict,
    )  # fmt: skip


def test_column_verdict_words() -> None:
    assert column_verdict("insufficient_data", False) == "insufficient data"
    assert column_verdict("ok", True) == "drift"
    assert column_verdict("ok", False) == "no drift"
    assert column_verdict("missing_in_current", False) == STATUS_WORDS["missing_in_current"]


def test_monitors_show_and_the_html_report_say_insufficient_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _result()
    assert result.columns["plan"]["status"] == "insufficient_data"
    console = Console(width=120, record=True, markup=False)
    monkeypatch.setattr(cli_monitors, "console", console)
    cli_monitors.print_result(result)
    text = console.export_text()
    plan_row = next(line for line in text.splitlines() if "│ plan" in line)
    assert "insufficient data" in plan_row and "insufficient_data" not in plan_row
    page = render_drift_report(result.report)
    assert "data-column='plan' data-role='feature' data-status='insufficient_data' " in page
    assert "data-verdict='insufficient data'" in page
