"""The bias-audit report page: the banner states the stored verdict, every violating gap is in
the violations table, undefined numbers read "undefined" (never 0), charts are real PNGs,
hostile names are escaped, and a large audit stays small and quick.

Results are built by hand as ``AuditResult`` objects (the audit's computation is tested on its
own) with gaps computed from the groups' metrics the way the audit defines them, so the
numbers on the page are ones a real audit could produce.
"""

from __future__ import annotations

import base64
import itertools
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keelwatch.monitoring.fairness.results import (
    BINARY_GROUP_METRICS,
    RATIO_GAPS,
    AuditConfig,
    AuditResult,
    Gap,
    GroupStats,
    SliceResult,
)
from keelwatch.monitoring.service.fairness_report import (
    MAX_CHART_GROUPS,
    audit_chart_png,
    chart_groups,
    render_audit_report,
    report_charts,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Half-width of every hand-made interval: wide enough that a gap of 0.12 is *not* a violation
#: (its interval reaches below 0.1) while a gap of 0.21 is.
HALF_WIDTH = 0.04
_GAP_SOURCES = {
    "demographic_parity_difference": ("selection_rate",),
    "demographic_parity_ratio": ("selection_rate",),
    "equal_opportunity_difference": ("tpr",),
    "equalized_odds_difference": ("tpr", "fpr"),
}

GroupRow = tuple[tuple[str, ...], int, Mapping[str, float | None]]


def make_group(key: tuple[str, ...], count: int, metrics: Mapping[str, float | None], config):
    """A group with intervals for its defined metrics when it is sufficient, and a reason
    for each undefined one."""
    sufficient = count >= config.min_group_size
    ci = {
        m: (v - HALF_WIDTH, v + HALF_WIDTH)
        for m, v in metrics.items()
        if v is not None and sufficient
    }
    undefined = {m: "no positive labels" for m, v in metrics.items() if v is None}
    return GroupStats(key, count, sufficient, dict(metrics), undefined, ci)


def make_gap(metric: str, groups: Sequence[GroupStats], config: AuditConfig) -> Gap:
    """The gap as the audit defines it (Fairlearn's between_groups) over sufficient groups."""
    threshold, direction = config.threshold_for(metric)
    spreads: list[tuple[float, str, str]] = []
    for source in _GAP_SOURCES[metric]:
        values = [
            (v, g.name) for g in groups if g.sufficient and (v := g.metrics.get(source)) is not None
        ]
        if len(values) < 2:
            return Gap(
                metric, None, None, None, threshold, direction, False,
                reason=f"fewer than two groups of {config.min_group_size}+ rows define {source}",
            )  # fmt: skip
        high, low = max(values), min(values)
        if metric in RATIO_GAPS:
            spreads.append((low[0] / high[0], high[1], low[1]))
        else:
            spreads.append((high[0] - low[0], high[1], low[1]))
    value, top, bottom = max(spreads)
    ci_low, ci_high = value - HALF_WIDTH, value + HALF_WIDTH
    violation = ci_high < threshold if direction == "below" else ci_low > threshold
    return Gap(metric, value, ci_low, ci_high, threshold, direction, violation, (top, bottom))


def make_result(
    slices: Mapping[tuple[str, ...], Sequence[GroupRow]], config: AuditConfig | None = None
) -> AuditResult:
    """An AuditResult over ``slices`` (attributes → groups), gaps computed from the groups."""
    config = config or AuditConfig(resamples=400)
    built = []
    for attributes, rows in slices.items():
        groups = tuple(make_group(key, count, metrics, config) for key, count, metrics in rows)
        present = {m for _, _, metrics in rows for m in metrics}
        gaps = tuple(
            make_gap(metric, groups, config)
            for metric, sources in _GAP_SOURCES.items()
            if set(sources) <= present
        )
        built.append(SliceResult(attributes, groups, gaps))
    comparisons = sum(1 for s in built for g in s.gaps if g.value is not None)
    level = 1 - (1 - config.confidence) / max(comparisons, 1)
    attributes = tuple(dict.fromkeys(a for s in slices for a in s))
    rows_total = sum(count for _, count, _ in next(iter(slices.values())))
    return AuditResult(
        "binary", rows_total, True, True, attributes, tuple(built), comparisons, level, config
    )


def rates(selection: float, tpr: float | None, fpr: float) -> dict[str, float | None]:
    return {"selection_rate": selection, "tpr": tpr, "fpr": fpr}


def violation_result() -> dict[str, Any]:
    """Women are selected at 0.31, men at 0.52: a demographic-parity gap of 0.21 whose whole
    interval lies above 0.1. The non-binary group (12 rows) is insufficient, and its tpr is
    undefined (no positive labels)."""
    return make_result(
        {
            ("gender",): [
                (("female",), 480, rates(0.31, 0.62, 0.12)),
                (("male",), 508, rates(0.52, 0.81, 0.22)),
                (("nonbinary",), 12, rates(0.25, None, 0.25)),
            ],
            ("age_band",): [
                (("18-29",), 310, rates(0.40, 0.70, 0.15)),
                (("30-49",), 420, rates(0.43, 0.73, 0.17)),
                (("50+",), 270, rates(0.41, 0.71, 0.16)),
            ],
        }
    ).to_dict()


def pass_result() -> dict[str, Any]:
    """Selection rates 0.40 and 0.44: every gap's interval reaches below its threshold."""
    return make_result(
        {
            ("gender",): [
                (("female",), 495, rates(0.40, 0.70, 0.15)),
                (("male",), 505, rates(0.44, 0.74, 0.17)),
            ]
        }
    ).to_dict()


def insufficient_result() -> dict[str, Any]:
    """Forty rows over three groups: no group reaches 30 rows, so no gap is judged."""
    return make_result(
        {
            ("gender",): [
                (("female",), 22, rates(0.30, 0.60, 0.10)),
                (("male",), 14, rates(0.50, None, 0.20)),
                (("nonbinary",), 4, rates(0.25, None, 0.25)),
            ]
        }
    ).to_dict()


def banner(page: str) -> tuple[str, str]:
    """(data-verdict, the big word) of the page's verdict banner."""
    match = re.search(
        r"<section id='verdict' [^>]*data-verdict='([^']*)'><b class='big'>([^<]*)", page
    )
    assert match is not None, "no verdict banner"
    return match.group(1), match.group(2)


def test_the_results_are_what_their_names_say() -> None:
    # The fixtures below would test nothing if they did not hold the verdict they claim.
    assert violation_result()["verdict"] == "violation"
    assert pass_result()["verdict"] == "pass"
    assert insufficient_result()["verdict"] == "insufficient_data"


def test_the_banner_states_the_stored_verdict() -> None:
    expected = {
        "violation": (violation_result(), "VIOLATION", "4 of 8 judged gaps violate"),
        "pass": (pass_result(), "PASS", "None of the 4 judged gaps"),
        "insufficient_data": (insufficient_result(), "INSUFFICIENT DATA", "at least 30 rows"),
    }
    for verdict, (result, word, sentence) in expected.items():
        page = render_audit_report(result, title="churn v3")
        assert banner(page) == (verdict, word)
        assert f"v-{verdict}" in page
        assert sentence in page
        assert f"<title>Keelwatch bias audit: {word} &ndash; churn v3</title>" in page


def test_every_violating_gap_is_in_the_violations_table() -> None:
    result = violation_result()
    page = render_audit_report(result, title="churn v3")
    table = page.split("<table id='violations'>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class='violation' data-slice='([^']*)' data-metric='([^']*)'", table)
    expected = [
        (s["slice"], g["metric"]) for s in result["slices"] for g in s["gaps"] if g["violation"]
    ]
    # A 0.21 gap in selection rates (0.596 as a ratio) and 0.19 in true-positive rates; the
    # age bands differ by 0.03 and stay out.
    assert (
        rows
        == expected
        == [
            ("gender", "demographic_parity_difference"),
            ("gender", "demographic_parity_ratio"),
            ("gender", "equal_opportunity_difference"),
            ("gender", "equalized_odds_difference"),
        ]
    )
    assert "female" in table and "male" in table  # the groups behind the value
    assert "&gt; 0.100 violates" in table and "&lt; 0.800 violates" in table
    # The slices' own gaps tables flag the same gaps, and only them.
    flagged = re.findall(r"data-slice='([^']*)' data-metric='([^']*)' data-violation='true'", page)
    assert flagged == expected
    assert page.count("data-violation='false'") == 4
    assert "No gap violates its threshold." in render_audit_report(pass_result(), title="t")


def test_undefined_metrics_read_undefined_never_zero() -> None:
    page = render_audit_report(violation_result(), title="churn v3")
    row = re.search(r"<tr class='insufficient' data-group='nonbinary'.*?</tr>", page)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
    # group, count, status, then selection_rate, tpr, fpr (the audit's metric order)
    assert cells[:3] == ["nonbinary", "12", "insufficient data"]
    assert cells[4].startswith("<span class='undef'>undefined</span>")
    assert "no positive labels" in cells[4]
    assert cells[3] == "0.250" and cells[5] == "0.250"
    # A gap no slice can judge says why, and its value cells read "undefined".
    insufficient = render_audit_report(insufficient_result(), title="t")
    gap_row = re.search(r"data-metric='demographic_parity_difference'.*?</tr>", insufficient)
    assert gap_row is not None
    assert gap_row.group(0).count(">undefined<") == 3  # value, CI low, CI high
    assert "fewer than two groups of 30+ rows define selection_rate" in gap_row.group(0)
    assert "not judged" in gap_row.group(0)


def test_charts_are_embedded_pngs_one_per_group_metric() -> None:
    result = violation_result()
    page = render_audit_report(result, title="churn v3")
    charts = report_charts(page)
    assert sorted(charts) == sorted(
        (s, m) for s in ("gender", "age_band") for m in ("selection_rate", "tpr", "fpr")
    )
    for png in charts.values():
        assert png.startswith(PNG_SIGNATURE)
    sources = re.findall(r"src='data:image/png;base64,([^']*)'", page)
    assert len(sources) == len(charts)
    assert all(base64.b64decode(s).startswith(PNG_SIGNATURE) for s in sources)
    # Nothing is fetched: no scripts, no external addresses.
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_a_chart_is_the_groups_metric_drawn() -> None:
    from io import BytesIO

    import matplotlib.image

    gender = violation_result()["slices"][0]
    png = audit_chart_png(gender, "tpr")
    image = matplotlib.image.imread(BytesIO(png), format="png")
    assert image.shape[0] > 60 and image.shape[1] == 480  # 6 in at 80 dpi
    # Two defined bars are drawn in the bar colour; the undefined one adds none.
    bar_blue = np.all(np.abs(image[..., :3] - np.array([0x4C, 0x78, 0xA8]) / 255) < 0.02, axis=-1)
    rows_with_bar = np.flatnonzero(bar_blue.any(axis=1))
    bands = 1 + int(np.count_nonzero(np.diff(rows_with_bar) > 1))
    assert bands == 2
    # The insufficient group of selection_rate is hatched in its own colour, not the bar's.
    selection = matplotlib.image.imread(BytesIO(audit_chart_png(gender, "selection_rate")))
    grey = np.all(np.abs(selection[..., :3] - np.array([0xDD, 0xE1, 0xE6]) / 255) < 0.02, axis=-1)
    assert grey.sum() > 300  # a bar; the legend's swatch alone is about 70 pixels


def test_hostile_names_are_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    result = make_result(
        {
            (hostile,): [
                (("<img src=x onerror=alert(2)>",), 400, rates(0.30, 0.60, 0.10)),
                (("'quoted' & \"double\"",), 420, rates(0.50, 0.80, 0.20)),
                (("$100k+",), 410, rates(0.45, 0.75, 0.18)),  # mathtext must not parse it
                (("two\nlines",), 405, rates(0.42, 0.72, 0.16)),
            ]
        }
    ).to_dict()
    page = render_audit_report(result, title="<b>model</b>", subtitle="window <i>1</i>")
    assert "<script" not in page and "<img src=x" not in page and "<b>model" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#x27;quoted&#x27; &amp; &quot;double&quot;" in page
    assert "window &lt;i&gt;1&lt;/i&gt;" in page
    charts = report_charts(page)  # the parser reads escaped attributes back as the names
    assert (hostile, "selection_rate") in charts


def test_a_stored_result_re_renders_identically() -> None:
    import json

    result = violation_result()
    stored = json.loads(json.dumps(result))
    assert render_audit_report(stored, title="t", subtitle="s") == render_audit_report(
        result, title="t", subtitle="s"
    )


def large_result(slices: int = 7, groups: int = 60) -> dict[str, Any]:
    """Three attributes crossed into seven slices, each padded to ``groups`` groups with all
    eight binary metrics, some groups too small and some tprs undefined."""
    rng = np.random.default_rng(7)
    attributes = ("gender", "age_band", "region")
    combos = [c for r in (1, 2, 3) for c in itertools.combinations(attributes, r)][:slices]
    built: dict[tuple[str, ...], list[GroupRow]] = {}
    for combo in combos:
        rows: list[GroupRow] = []
        for index in range(groups):
            key = tuple(f"{a}-{index}-{j}" for j, a in enumerate(combo))
            metrics: dict[str, float | None] = {
                m: float(rng.uniform(0.05, 0.95)) for m in BINARY_GROUP_METRICS
            }
            if index % 9 == 0:
                metrics["tpr"] = None
            rows.append((key, int(rng.integers(5, 400)), metrics))
        built[combo] = rows
    return make_result(built).to_dict()


def test_a_large_audit_renders_quickly_and_small() -> None:
    result = large_result()
    started = time.perf_counter()
    page = render_audit_report(result, title="churn v3")
    elapsed = time.perf_counter() - started
    charts = report_charts(page)
    assert len(charts) == 7 * len(BINARY_GROUP_METRICS)
    assert len(page.encode()) < 2_000_000, f"{len(page.encode()):,} bytes"
    assert elapsed < 30, f"{elapsed:.1f}s"  # a few seconds on a laptop; 30 leaves CI slack
    assert page.count("the 40 most extreme of 60 groups are drawn") == len(charts)
    # The tables keep every group.
    assert page.count("data-group=") == 7 * 60


def test_a_crowded_chart_keeps_the_extremes() -> None:
    slice_dict = large_result(slices=1)["slices"][0]
    shown, omitted = chart_groups(slice_dict, "selection_rate")
    assert (len(shown), omitted) == (MAX_CHART_GROUPS, 60 - MAX_CHART_GROUPS)
    sufficient = [g for g in slice_dict["groups"] if g["sufficient"]]
    top = max(sufficient, key=lambda g: g["metrics"]["selection_rate"])
    bottom = min(sufficient, key=lambda g: g["metrics"]["selection_rate"])
    names = {g["group"] for g in shown}
    assert top["group"] in names and bottom["group"] in names
    # Dropped groups are no further from the median than any kept sufficient one.
    values = sorted(g["metrics"]["selection_rate"] for g in sufficient)
    median = values[len(values) // 2]
    kept = [abs(g["metrics"]["selection_rate"] - median) for g in shown if g["sufficient"]]
    dropped = [
        abs(g["metrics"]["selection_rate"] - median) for g in sufficient if g["group"] not in names
    ]
    assert not dropped or max(dropped) <= min(kept)
