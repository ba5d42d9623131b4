"""Keelwatch's HTML drift report agrees with the verdict, column by column, and stays small."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keelwatch.monitoring.drift import DriftReport, build_profile, compute_drift
from keelwatch.monitoring.drift.report import column_verdict, role_verdict
from keelwatch.monitoring.service.html_report import (
    column_pictures,
    render_drift_report,
    summarise_report,
)

SIZE_CAP_BYTES = 300_000


class _Attributes(HTMLParser):
    """Collects the data-* attributes of every element that has a data-column or data-role."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.cards: list[dict[str, str]] = []
        self.roles: dict[str, str] = {}
        self.headline: str | None = None
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-column" in a:
            self.rows.append(a)
        elif tag == "div" and "data-column" in a:
            self.cards.append(a)
        elif tag == "li" and "data-role" in a:
            self.roles[a["data-role"]] = a["data-verdict"]
        elif tag == "section" and a.get("id") == "verdict":
            self.headline = a["data-verdict"]


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(7)})
    frame["x0"] += shift
    frame["plan"] = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    frame["flag"] = rng.integers(0, 2, n).astype(float)
    frame["score"] = 1 / (1 + np.exp(-frame["x0"]))
    return frame


def _render(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[DriftReport, str, str]:
    profile = build_profile(reference, roles={"score": "prediction"})
    report = compute_drift(profile, current)
    result = {**summarise_report(report), "model_name": "credit", "model_version": "3"}
    page = render_drift_report(
        result, column_pictures(profile, current), second_opinion="evidently_second_opinion.html"
    )
    return report, result["status"], page


def _parse(page: str) -> _Attributes:
    parser = _Attributes()
    parser.feed(page)
    return parser


@pytest.mark.parametrize("shift", [0.0, 0.6], ids=["stable", "shifted"])
def test_report_states_the_verdict_first_and_agrees_column_by_column(shift: float) -> None:
    reference, current = _frame(4000, seed=1), _frame(3000, seed=2, shift=shift)
    report, status, page = _render(reference, current)
    assert (status == "drift") == (shift > 0)
    parsed = _parse(page)

    assert parsed.headline == ("DRIFT" if shift else "NO DRIFT")
    # The headline is the first thing in the body: nothing but the title comes before it.
    body = page.split("<body>", 1)[1]
    assert body.index("id='verdict'") < body.index("<table")
    assert parsed.roles == {
        "feature": role_verdict(report.dataset_drifted),
        "prediction": role_verdict(report.prediction_drifted),
    }
    assert parsed.roles["feature"] == ("DRIFT" if shift else "NO DRIFT")
    by_column = {row["data-column"]: row for row in parsed.rows}
    assert list(by_column) == [c.column for c in report.columns]
    for column in report.columns:
        row = by_column[column.column]
        assert row["data-verdict"] == column_verdict(column.status, column.drifted)
        assert row["data-role"] == column.role and row["data-status"] == column.status
    drifted = {r["data-column"] for r in parsed.rows if r["data-verdict"] == "drift"}
    assert drifted == set(report.drifted_columns)
    if shift:
        assert {"x0", "score"} <= drifted
    # A picture per column, with the same verdict; no script, nothing fetched.
    assert {c["data-column"]: c["data-verdict"] for c in parsed.cards} == {
        r["data-column"]: r["data-verdict"] for r in parsed.rows
    }
    assert "svg" in parsed.tags and "rect" in parsed.tags
    assert "script" not in parsed.tags and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in page
    assert "independent second opinion" in page
    assert len(page.encode()) < SIZE_CAP_BYTES


def test_untested_columns_read_insufficient_data_and_nothing_tested_is_no_verdict() -> None:
    reference = _frame(2000, seed=1)
    profile = build_profile(reference, roles={"score": "prediction"})
    window = pd.DataFrame({"x0": [0.1, 0.2], "plan": ["basic", "pro"]})
    report = compute_drift(profile, window)
    result = summarise_report(report)
    assert result["status"] == "insufficient_data"
    parsed = _parse(render_drift_report(result, column_pictures(profile, window)))
    assert parsed.headline == "INSUFFICIENT DATA"
    assert parsed.roles == {"feature": "INSUFFICIENT DATA", "prediction": "INSUFFICIENT DATA"}
    verdicts = {r["data-column"]: r["data-verdict"] for r in parsed.rows}
    assert verdicts["x0"] == "insufficient data"
    assert verdicts["x1"] == "missing in current"
    assert "no drift" not in verdicts.values()


def test_a_window_too_small_to_test_has_a_headline_and_no_columns() -> None:
    result: dict[str, Any] = {
        "status": "insufficient_data",
        "detail": "window has 3 rows; the monitor needs at least 100",
        "columns": {},
        "dataset_drift": None,
    }
    page = render_drift_report(result)
    parsed = _parse(page)
    assert parsed.headline == "INSUFFICIENT DATA" and parsed.rows == []
    assert "needs at least 100" in page
    assert "No second-opinion report" in page


def test_many_categories_and_wide_frames_stay_small() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    frame = pd.DataFrame({f"n{i}": rng.normal(size=n) for i in range(30)})
    frame["city"] = rng.choice([f"city-{i}" for i in range(500)], n)
    profile = build_profile(frame)
    report = compute_drift(profile, frame.sample(5000, random_state=1))
    pictures = column_pictures(profile, frame.sample(5000, random_state=1))
    assert len(pictures["city"].labels) == 13  # 12 bars and one "488 other"
    page = render_drift_report(summarise_report(report), pictures)
    assert len(page.encode()) < SIZE_CAP_BYTES
