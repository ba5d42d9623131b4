"""A bias audit's report: one self-contained HTML page that states the verdict first.

The page is rendered from ``AuditResult.to_dict()`` (the shape the database stores and the API
returns), never from the live objects, so a stored audit re-renders to the same page and the
page cannot disagree with the API, the CLI or the MLflow run. In order:

1. the verdict banner (PASS / VIOLATION / INSUFFICIENT DATA, colour-coded) from
   ``result["verdict"]``, with the count of violating and judged gaps;
2. the settings the verdict depends on (minimum group size, resamples, interval level,
   correction, thresholds and which side of them violates);
3. a summary table of every violating gap;
4. per slice: its gaps (value, interval, threshold, verdict, the two groups behind the value,
   why a gap is undefined), one bar chart per group metric (whiskers are the groups' bootstrap
   intervals; groups below the minimum size are hatched grey and labelled "insufficient data";
   undefined metrics are written "undefined", never drawn as 0) and the groups table.

Charts are PNGs drawn with matplotlib's Agg canvas (no pyplot state, so concurrent renders in
one worker do not share a figure) and embedded as base64 data URIs; CSS is inline and there is
no script, so the file renders offline and in MLflow's artifact preview. A slice with more than
:data:`MAX_CHART_GROUPS` groups charts the most extreme ones and says so; its tables keep all.

Machine-readable ``data-*`` attributes (``data-verdict``, ``data-slice``, ``data-metric``,
``data-violation``) make the page checkable, and :func:`report_charts` reads the embedded
PNGs back (the MLflow run logs the very pictures the page shows).
"""

from __future__ import annotations

import base64
import functools
import html
import math
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from io import BytesIO
from typing import Any

from keelwatch.monitoring.fairness.results import (
    BINARY_GROUP_METRICS,
    REGRESSION_GROUP_METRICS,
)

#: The report's file name in an audit's MLflow run.
REPORT_NAME = "bias_audit.html"
#: Groups drawn per chart; a slice with more charts the most extreme ones (its tables keep all).
MAX_CHART_GROUPS = 40
#: Small on purpose: 7 slices x 8 metrics of 60 groups must stay well under 2 MB of page.
CHART_DPI = 80
PNG_PREFIX = "data:image/png;base64,"

#: The group metrics each gap metric compares: a chart's header lists the gaps built from it.
GAP_SOURCES: Mapping[str, tuple[str, ...]] = {
    "demographic_parity_difference": ("selection_rate",),
    "demographic_parity_ratio": ("selection_rate",),
    "equalized_odds_difference": ("tpr", "fpr"),
    "equal_opportunity_difference": ("tpr",),
    "predictive_parity_difference": ("precision",),
    "calibration_gap_difference": ("calibration_gap",),
    "mean_prediction_difference": ("mean_prediction",),
    "mae_difference": ("mae",),
}
VERDICT_WORDS: Mapping[str, str] = {
    "pass": "PASS",
    "violation": "VIOLATION",
    "insufficient_data": "INSUFFICIENT DATA",
}
UNDEFINED = "undefined"
INSUFFICIENT = "insufficient data"

_BAR = "#4c78a8"
_INSUFFICIENT_FILL = "#dde1e6"
_INSUFFICIENT_EDGE = "#8c959f"
_LABEL_CHARS = 32
_CHART_WIDTH_IN = 6.0


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is undefined (null; NaN never appears, but a
    hand-edited result must not draw a NaN bar either)."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: Any) -> str:
    number = _finite(value)
    if number is None:
        return UNDEFINED
    return f"{number:.3f}" if abs(number) < 1000 else f"{number:,.1f}"


def _percent(level: Any) -> str:
    number = _finite(level)
    return "&ndash;" if number is None else f"{number * 100:.4g}%"


def verdict_word(verdict: Any) -> str:
    """The banner's word for a stored verdict (an unknown one is shown as it is, upper-cased)."""
    return VERDICT_WORDS.get(str(verdict), str(verdict).upper())


def gap_word(gap: Mapping[str, Any]) -> str:
    """``VIOLATION``, ``ok`` or ``not judged`` (no value: too few sufficient groups)."""
    if gap.get("violation"):
        return "VIOLATION"
    return "ok" if _finite(gap.get("value")) is not None else "not judged"


def threshold_text(gap: Mapping[str, Any]) -> str:
    """``> 0.1 violates`` for a difference, ``< 0.8 violates`` for a ratio."""
    sign = "<" if gap.get("direction") == "below" else ">"
    return f"{sign} {_fmt(gap.get('threshold'))} violates"


# --------------------------------------------------------------------------- charts


def chart_metrics(slice_dict: Mapping[str, Any]) -> list[str]:
    """The group metrics a slice's groups carry: the audit's own order, then any others."""
    present: set[str] = set()
    for group in slice_dict.get("groups") or []:
        present.update(str(m) for m in (group.get("metrics") or {}))
    known = [m for m in (*BINARY_GROUP_METRICS, *REGRESSION_GROUP_METRICS) if m in present]
    return known + sorted(present - set(known))


def chart_groups(
    slice_dict: Mapping[str, Any], metric: str, limit: int = MAX_CHART_GROUPS
) -> tuple[list[Mapping[str, Any]], int]:
    """The groups one chart draws (in the slice's order) and how many it leaves out.

    Over ``limit`` groups, the chart keeps the most extreme: first the largest and smallest
    sufficient groups (the pair a difference gap compares), then sufficient groups by their
    distance from the sufficient groups' median, then insufficient ones the same way, then
    groups where the metric is undefined.
    """
    groups: list[Mapping[str, Any]] = list(slice_dict.get("groups") or [])
    if len(groups) <= limit:
        return groups, 0

    def value(index: int) -> float | None:
        return _finite((groups[index].get("metrics") or {}).get(metric))

    sufficient = [i for i in range(len(groups)) if groups[i].get("sufficient")]
    defined = [i for i in sufficient if value(i) is not None]
    values = sorted(v for i in defined if (v := value(i)) is not None)
    median = values[len(values) // 2] if values else 0.0
    pinned = (
        [max(defined, key=lambda i: value(i) or 0.0), min(defined, key=lambda i: value(i) or 0.0)]
        if defined
        else []
    )

    def rank(index: int) -> tuple[int, float, int]:
        number = value(index)
        tier = 0 if index in pinned else (1 if index in sufficient else 2)
        if number is None:
            return 3, 0.0, index
        return tier, -abs(number - median), index

    chosen = set(sorted(range(len(groups)), key=rank)[:limit])
    return [g for i, g in enumerate(groups) if i in chosen], len(groups) - len(chosen)


def _label(group: Mapping[str, Any]) -> str:
    # One line: a label belongs to one row, and a newline would spill into the next.
    name = " ".join(str(group.get("group", "")).split())
    if len(name) > _LABEL_CHARS:
        name = name[: _LABEL_CHARS - 1] + "…"
    # Drawn by Pillow, so a "$" is literal here (matplotlib would read it as mathtext).
    return f"{name} (n={int(group.get('count') or 0):,})"


def audit_chart_png(slice_dict: Mapping[str, Any], metric: str) -> bytes:
    """One slice's ``metric`` per group as a horizontal bar chart (PNG bytes).

    Bars are the point estimates, whiskers the groups' bootstrap intervals (``group["ci"]``);
    insufficient groups are hatched grey with "insufficient data" in their label (they never
    enter a gap); an undefined metric is written "undefined" where its bar would start.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from PIL import Image, ImageDraw

    groups, omitted = chart_groups(slice_dict, metric)
    rows = max(len(groups), 1)
    height = 1.15 + 0.2 * rows + (0.15 if omitted else 0.0)
    figure = Figure(figsize=(_CHART_WIDTH_IN, height), dpi=CHART_DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(groups)))
    drawn: dict[bool, tuple[list[int], list[float]]] = {True: ([], []), False: ([], [])}
    whiskers: tuple[list[int], list[float], list[float]] = ([], [], [])
    undefined_rows: list[int] = []
    extent = [0.0, 0.0]
    for row, group in zip(positions, groups, strict=True):
        number = _finite((group.get("metrics") or {}).get(metric))
        if number is None:
            undefined_rows.append(row)
            continue
        sufficient = bool(group.get("sufficient"))
        drawn[sufficient][0].append(row)
        drawn[sufficient][1].append(number)
        extent = [min(extent[0], number), max(extent[1], number)]
        interval = (group.get("ci") or {}).get(metric)
        if interval is not None and len(interval) == 2:
            low, high = _finite(interval[0]), _finite(interval[1])
            if low is not None and high is not None:
                whiskers[0].append(row)
                whiskers[1].append(low)
                whiskers[2].append(high)
                extent = [min(extent[0], low), max(extent[1], high)]
    axes.barh(drawn[True][0], drawn[True][1], height=0.7, color=_BAR)
    axes.barh(
        drawn[False][0],
        drawn[False][1],
        height=0.7,
        color=_INSUFFICIENT_FILL,
        edgecolor=_INSUFFICIENT_EDGE,
        hatch="///",
        linewidth=0.6,
    )
    if whiskers[0]:
        axes.hlines(whiskers[0], whiskers[1], whiskers[2], color="#1b1f24", linewidth=1.1)
        for ends in (whiskers[1], whiskers[2]):
            axes.plot(ends, whiskers[0], linestyle="none", marker="|", color="#1b1f24", ms=6)
    span = (extent[1] - extent[0]) or 1.0
    low_limit = extent[0] - 0.02 * span if extent[0] < 0 else 0.0
    axes.set_xlim(low_limit, extent[1] + 0.08 * span)
    axes.set_ylim(rows - 0.5, -0.5)  # first group at the top, as in the tables
    for row in undefined_rows:
        axes.text(
            low_limit + 0.01 * span, row, UNDEFINED, va="center", fontsize=8,
            style="italic", color="#57606a",
        )  # fmt: skip
    axes.axvline(0.0, color="#8c959f", linewidth=0.6)
    axes.set_yticks([])
    labels = [
        (_label(group) + ("" if group.get("sufficient") else "  " + INSUFFICIENT), group)
        for group in groups
    ]
    font = _label_font()
    axes.tick_params(axis="x", labelsize=8)
    slice_name = str(slice_dict.get("slice", ""))
    axes.set_title(f"{metric} by {slice_name}".replace("$", r"\$"), fontsize=9, loc="left")
    caption = "bars: estimate · whiskers: bootstrap interval"
    if omitted:
        caption += f"\n{len(groups)} most extreme of {len(groups) + omitted} groups shown"
    # Caption bottom left, legend bottom right: inside the axes they would cover bars.
    figure.text(0.01, 0.01, caption, fontsize=8, ha="left", va="bottom", color="#57606a")
    if drawn[False][0]:
        figure.legend(
            handles=[
                Patch(
                    facecolor=_INSUFFICIENT_FILL, edgecolor=_INSUFFICIENT_EDGE, hatch="///",
                    label="insufficient data (not in gaps)",
                )
            ],
            fontsize=7, loc="lower right", bbox_to_anchor=(0.99, 0.0), frameon=False,
        )  # fmt: skip
    # Fixed margins instead of tight_layout (a tenth of the time for 56 charts); the left one
    # fits the longest group label.
    width_px = _CHART_WIDTH_IN * CHART_DPI
    label_px = max((font.getlength(text) for text, _ in labels), default=0.0)
    figure.subplots_adjust(
        left=min(0.62, (label_px + 12) / width_px),
        right=0.97,
        top=1 - 0.32 / height,
        bottom=(0.55 + (0.15 if omitted else 0.0)) / height,
    )
    raw = BytesIO()
    figure.savefig(raw, format="rgba", dpi=CHART_DPI)
    image = Image.frombytes("RGBA", canvas.get_width_height(), raw.getvalue()).convert("RGB")
    # Group names are drawn by Pillow at the rows' pixel positions: matplotlib rasterises
    # text glyph by glyph from Python, and 40 labels were three quarters of a chart's time.
    draw = ImageDraw.Draw(image)
    left_px = axes.get_window_extent().x0
    for row, (text, group) in enumerate(labels):
        _, y = axes.transData.transform((0.0, row))
        colour = "#1b1f24" if group.get("sufficient") else "#57606a"
        draw.text((left_px - 5, image.height - y), text, fill=colour, font=font, anchor="rm")
    buffer = BytesIO()
    # A 32-colour palette keeps antialiased text and makes the PNG a quarter of RGB's size.
    image.quantize(colors=32).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@functools.cache
def _label_font() -> Any:
    """Matplotlib's own default font (DejaVu Sans) at 8 pt, for Pillow."""
    from matplotlib import font_manager
    from PIL import ImageFont

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return ImageFont.truetype(path, size=round(8 * CHART_DPI / 72))


class _ChartReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[tuple[str, str], bytes] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        source = values.get("src") or ""
        if tag != "img" or "chart" not in (values.get("class") or "").split():
            return
        if source.startswith(PNG_PREFIX):
            key = (values.get("data-slice") or "", values.get("data-metric") or "")
            self.charts[key] = base64.b64decode(source[len(PNG_PREFIX) :])


def report_charts(report_html: str) -> dict[tuple[str, str], bytes]:
    """The PNG charts embedded in a report page, keyed by (slice, group metric)."""
    reader = _ChartReader()
    reader.feed(report_html)
    reader.close()
    return reader.charts


# --------------------------------------------------------------------------- page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24;
max-width:1180px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 8px}
h3{font-size:14px;margin:16px 0 6px}
.verdict{padding:14px 18px;border-radius:8px;margin:12px 0 6px;border:2px solid}
.v-violation{background:#fde8e8;border-color:#c81e1e}
.v-pass{background:#e7f6ec;border-color:#1f7a3d}
.v-insufficient_data{background:#fff6db;border-color:#b7791f}
.v-other{background:#eee;border-color:#555}
.verdict b.big{font-size:26px;letter-spacing:.5px;margin-right:12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;margin-bottom:8px}
th,td{padding:4px 8px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}th{background:#f5f7f9;font-weight:600;white-space:nowrap}
table.settings{width:auto}.meta,.note{color:#57606a}.note{font-size:12px}
.bad{color:#c81e1e;font-weight:600}.good{color:#1f7a3d}.undef{color:#57606a;font-style:italic}
tr.violation td{background:#fff5f5}tr.insufficient td{color:#57606a}
.card{display:inline-block;vertical-align:top;margin:0 14px 18px 0}.card h4{font-size:13px;margin:0}
small{color:#57606a}
"""


def _gap_cells(gap: Mapping[str, Any]) -> str:
    word = gap_word(gap)
    css = {"VIOLATION": "bad", "ok": "good"}.get(word, "undef")
    pair = gap.get("groups")
    pair_text = " vs ".join(str(g) for g in pair) if pair else "&ndash;"
    return (
        f"<td>{_e(gap.get('metric'))}</td>"
        f"<td class='n'>{_fmt(gap.get('value'))}</td>"
        f"<td class='n'>{_fmt(gap.get('ci_low'))}</td>"
        f"<td class='n'>{_fmt(gap.get('ci_high'))}</td>"
        f"<td class='n'>{_e(threshold_text(gap))}</td>"
        f"<td><b class='{css}'>{_e(word)}</b></td>"
        f"<td>{_e(pair_text) if pair else pair_text}</td>"
    )


def _gaps_table(gaps: Sequence[Mapping[str, Any]], slice_name: str) -> str:
    if not gaps:
        return "<p class='note'>No gap metric applies to this slice's data.</p>"
    out = [
        "<table class='gaps'><thead><tr><th>gap metric</th><th>value</th><th>CI low</th>"
        "<th>CI high</th><th>threshold</th><th>verdict</th><th>groups behind the value</th>"
        "<th>reason undefined</th></tr></thead><tbody>"
    ]
    for gap in gaps:
        violation = bool(gap.get("violation"))
        out.append(
            f"<tr class='{'violation' if violation else 'gap'}' data-slice='{_e(slice_name)}' "
            f"data-metric='{_e(gap.get('metric'))}' data-violation='{str(violation).lower()}'>"
            f"{_gap_cells(gap)}<td>{_e(gap.get('reason') or '')}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _metric_cell(group: Mapping[str, Any], metric: str) -> str:
    metrics = group.get("metrics") or {}
    if metric not in metrics:
        return "<td class='n'>&ndash;</td>"
    number = _finite(metrics[metric])
    if number is None:
        reason = (group.get("undefined") or {}).get(metric, "")
        note = f"<br><small>{_e(reason)}</small>" if reason else ""
        return f"<td class='n'><span class='undef'>{UNDEFINED}</span>{note}</td>"
    interval = (group.get("ci") or {}).get(metric)
    extra = ""
    if interval is not None and len(interval) == 2:
        extra = f"<br><small>[{_fmt(interval[0])}, {_fmt(interval[1])}]</small>"
    return f"<td class='n'>{_fmt(number)}{extra}</td>"


def _groups_table(slice_dict: Mapping[str, Any], metrics: Sequence[str]) -> str:
    out = ["<table class='groups'><thead><tr><th>group</th><th>count</th><th>status</th>"]
    out.extend(f"<th>{_e(m)}</th>" for m in metrics)
    out.append("</tr></thead><tbody>")
    for group in slice_dict.get("groups") or []:
        sufficient = bool(group.get("sufficient"))
        status = "sufficient" if sufficient else INSUFFICIENT
        out.append(
            f"<tr class='{'group' if sufficient else 'insufficient'}' "
            f"data-group='{_e(group.get('group'))}' data-sufficient='{str(sufficient).lower()}'>"
            f"<td>{_e(group.get('group'))}</td><td class='n'>{int(group.get('count') or 0):,}"
            f"</td><td>{status}</td>"
        )
        out.extend(_metric_cell(group, m) for m in metrics)
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _chart_card(slice_dict: Mapping[str, Any], metric: str) -> str:
    slice_name = str(slice_dict.get("slice", ""))
    groups = list(slice_dict.get("groups") or [])
    defined = [g for g in groups if _finite((g.get("metrics") or {}).get(metric)) is not None]
    uses = [
        f"{gap.get('metric')} {gap_word(gap)}"
        for gap in slice_dict.get("gaps") or []
        if metric in GAP_SOURCES.get(str(gap.get("metric")), ())
    ]
    header = f"<h4>{_e(metric)}</h4><div class='note'>" + (
        _e("feeds " + ", ".join(uses)) if uses else "feeds no gap"
    )
    if not defined:
        return (
            f"<div class='card' data-slice='{_e(slice_name)}' data-metric='{_e(metric)}'>"
            f"{header}</div><p class='undef'>{UNDEFINED} for every group</p></div>"
        )
    png = base64.b64encode(audit_chart_png(slice_dict, metric)).decode("ascii")
    shown, omitted = chart_groups(slice_dict, metric)
    if omitted:
        header += _e(
            f"; the {len(shown)} most extreme of {len(groups)} groups are drawn (the table "
            "below lists all)"
        )
    return (
        f"<div class='card' data-slice='{_e(slice_name)}' data-metric='{_e(metric)}'>"
        f"{header}</div><img class='chart' data-slice='{_e(slice_name)}' "
        f"data-metric='{_e(metric)}' alt='{_e(metric)} by {_e(slice_name)}' "
        f"src='{PNG_PREFIX}{png}'></div>"
    )


def _banner(result: Mapping[str, Any]) -> str:
    verdict = str(result.get("verdict", ""))
    word = verdict_word(verdict)
    css = f"v-{verdict}" if verdict in VERDICT_WORDS else "v-other"
    gaps = [g for s in result.get("slices") or [] for g in s.get("gaps") or []]
    judged = sum(1 for g in gaps if _finite(g.get("value")) is not None)
    violating = sum(1 for g in gaps if g.get("violation"))
    level = _percent(result.get("interval_level"))
    config = result.get("config") or {}
    if verdict == "violation":
        sentence = (
            f"{violating} of {judged} judged gaps violate their threshold: the whole {level} "
            "interval lies beyond it."
        )
    elif verdict == "pass":
        sentence = f"None of the {judged} judged gaps has its whole {level} interval beyond "
        sentence += "its threshold."
    elif verdict == "insufficient_data":
        sentence = (
            "No gap could be judged: no slice has two groups of at least "
            f"{config.get('min_group_size', '?')} rows that define a metric."
        )
    else:
        sentence = ""
    return (
        f"<section id='verdict' class='verdict {css}' data-verdict='{_e(verdict)}'>"
        f"<b class='big'>{_e(word)}</b><span>{_e(sentence)}</span></section>"
    )


def _settings_table(result: Mapping[str, Any]) -> str:
    config = result.get("config") or {}
    correction = str(config.get("correction", ""))
    comparisons = result.get("comparisons", 0)
    rows = [
        ("minimum group size", f"{config.get('min_group_size', '?')} rows"),
        ("bootstrap resamples", f"{config.get('resamples', '?')} (seed {config.get('seed')})"),
        ("confidence", _percent(config.get("confidence"))),
        ("correction", f"{correction} over {comparisons} judged gaps"),
        ("interval level", _percent(result.get("interval_level"))),
        ("difference threshold", f"gap > {_fmt(config.get('difference_threshold'))} violates"),
        ("ratio threshold", f"ratio < {_fmt(config.get('ratio_threshold'))} violates"),
        ("slices", f"intersections up to {config.get('max_order') or 'all'} attributes"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table class='settings' id='settings'>{body}</table>"


def _violations_table(result: Mapping[str, Any]) -> str:
    found = [
        (str(s.get("slice", "")), gap)
        for s in result.get("slices") or []
        for gap in s.get("gaps") or []
        if gap.get("violation")
    ]
    if not found:
        return "<p id='violations' class='good'>No gap violates its threshold.</p>"
    out = [
        "<table id='violations'><thead><tr><th>slice</th><th>gap metric</th><th>value</th>"
        "<th>CI low</th><th>CI high</th><th>threshold</th><th>verdict</th>"
        "<th>groups behind the value</th></tr></thead><tbody>"
    ]
    out.extend(
        f"<tr class='violation' data-slice='{_e(name)}' data-metric='{_e(gap.get('metric'))}'>"
        f"<td>{_e(name)}</td>{_gap_cells(gap)}</tr>"
        for name, gap in found
    )
    out.append("</tbody></table>")
    return "".join(out)


def render_audit_report(result: Mapping[str, Any], *, title: str, subtitle: str = "") -> str:
    """The report page for one audit ``result`` (``AuditResult.to_dict()`` or the stored copy).

    ``title`` heads the page (e.g. the model and version); ``subtitle`` says what was audited
    (a window, a file). Every string from the result is escaped.
    """
    word = verdict_word(result.get("verdict", ""))
    attributes = ", ".join(str(a) for a in result.get("attributes") or [])
    data = [
        f"{result.get('task', '?')} audit of {int(result.get('rows') or 0):,} rows",
        "labelled" if result.get("labelled") else "no labels",
        "scored" if result.get("scored") else "no scores",
        f"attributes: {attributes or '-'}",
    ]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Keelwatch bias audit: {_e(word)} &ndash; {_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Keelwatch bias audit &ndash; {_e(title)}</h1>",
    ]
    if subtitle:
        out.append(f"<p class='meta' id='subtitle'>{_e(subtitle)}</p>")
    out.append(f"<p class='meta'>{_e(' · '.join(data))}</p>")
    out.append(_banner(result))
    out.append(
        "<p class='note'>A gap is the largest minus the smallest group metric (smallest over "
        "largest for a ratio) over the groups with at least the minimum size. It violates only "
        "when its whole bootstrap interval lies beyond the threshold, so a noisy gap near the "
        "threshold does not fire. Smaller groups are shown but never enter a gap.</p>"
    )
    out.append("<h2>Settings</h2>" + _settings_table(result))
    out.append("<h2>Violations</h2>" + _violations_table(result))
    for slice_dict in result.get("slices") or []:
        name = str(slice_dict.get("slice", ""))
        gaps = list(slice_dict.get("gaps") or [])
        groups = list(slice_dict.get("groups") or [])
        violating = sum(1 for g in gaps if g.get("violation"))
        sufficient = sum(1 for g in groups if g.get("sufficient"))
        badge = (
            f"<span class='bad'>{violating} violation{'s' if violating != 1 else ''}</span>"
            if violating
            else "<span class='good'>no violation</span>"
        )
        metrics = chart_metrics(slice_dict)
        out.append(
            f"<section class='slice' data-slice='{_e(name)}' data-violations='{violating}'>"
            f"<h2>Slice {_e(name)} &middot; {badge}</h2>"
            f"<p class='meta'>{len(groups)} groups, {sufficient} with enough rows</p>"
            f"<h3>Gaps</h3>{_gaps_table(gaps, name)}"
        )
        if metrics:
            out.append("<h3>Groups</h3>")
            out.extend(_chart_card(slice_dict, m) for m in metrics)
        out.append(_groups_table(slice_dict, metrics) + "</section>")
    out.append("</body></html>")
    return "".join(out)
