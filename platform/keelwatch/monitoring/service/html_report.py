"""Keelwatch's own drift report: one small, self-contained HTML file that states the verdict.

The first thing on the page is Keelwatch's verdict (DRIFT / NO DRIFT / INSUFFICIENT DATA) for
the check and for each role (features, prediction, target); then one row per column with its
statistic, p, BH-adjusted q, effect size and verdict; then, per column, a picture: reference vs
current shares per histogram bin (the reference's own bins, so a stable column shows bars of
equal height) or per category. Everything is inline (CSS and SVG, no JavaScript, no CDN), so
the file renders in MLflow's artifact preview and offline, and stays tens of kilobytes.

Rendering is pure: :func:`column_pictures` turns two profiles (or a reference profile and a
window frame) into counts, :func:`render_drift_report` turns the stored check result and those
counts into a string. Every verdict comes from the result dict the check stored, so the page
cannot disagree with the API, the CLI or the MLflow metrics. Machine-readable ``data-*``
attributes (``data-column``, ``data-role``, ``data-status``, ``data-verdict``) make that
checkable.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keelwatch.monitoring.drift.report import (
    INSUFFICIENT_WORD,
    STATUS_WORDS,
    column_verdict,
    role_verdict,
)

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.monitoring.drift.profiles import ColumnProfile, ReferenceProfile
    from keelwatch.monitoring.drift.report import DriftReport

#: The file name of the report in a check's MLflow run (its primary artifact).
REPORT_NAME = "drift_report.html"
#: Categories drawn per column; the rest are summed into one "other" bar.
MAX_CATEGORY_BARS = 12
_ROLE_LABELS = {"feature": "Features", "prediction": "Prediction", "target": "Target"}
_STATUS_VERDICT = {
    "drift": "DRIFT",
    "ok": "NO DRIFT",
    "insufficient_data": INSUFFICIENT_WORD,
    "error": "ERROR",
}


@dataclass(frozen=True, slots=True)
class ColumnPicture:
    """Counts per bar of one column on each side; ``note`` says what the bars are."""

    labels: tuple[str, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]
    note: str


def column_pictures(
    reference: ReferenceProfile, window: ReferenceProfile | pd.DataFrame
) -> dict[str, ColumnPicture]:
    """Bars per reference column present on both sides (a column that cannot be profiled
    like the reference, e.g. text where numbers were expected, gets no picture)."""
    from keelwatch.monitoring.drift.columns import DriftInputError
    from keelwatch.monitoring.drift.profiles import ReferenceProfile as ProfileType
    from keelwatch.monitoring.drift.profiles import profile_column

    pictures: dict[str, ColumnPicture] = {}
    for name, ref in reference.columns.items():
        current: ColumnProfile | None
        if isinstance(window, ProfileType):
            current = window.columns.get(name)
        elif name in window.columns:
            try:
                current = profile_column(
                    window[name],
                    name=name,
                    role=ref.role,
                    kind=ref.kind,
                    bin_edges=ref.numeric.bin_edges if ref.numeric is not None else None,
                    max_sorted_values=1,  # only the histogram is drawn
                )
            except (DriftInputError, ValueError, TypeError):
                current = None
        else:
            current = None
        if current is not None and current.kind == ref.kind:
            picture = _picture(ref, current)
            if picture is not None:
                pictures[name] = picture
    return pictures


def _picture(ref: ColumnProfile, cur: ColumnProfile) -> ColumnPicture | None:
    missing = (ref.missing + ref.infinite, cur.missing + cur.infinite)
    if ref.numeric is not None and cur.numeric is not None:
        edges = [float(e) for e in ref.numeric.bin_edges]
        if not edges:
            labels = ["all values"]
        else:
            labels = [f"< {_num(edges[0])}"]
            labels += [f"{_num(a)} to {_num(b)}" for a, b in itertools.pairwise(edges)]
            labels.append(f"≥ {_num(edges[-1])}")
        ref_counts = [int(c) for c in ref.numeric.bin_counts]
        cur_counts = [int(c) for c in cur.numeric.bin_counts]
        note = "bins are the reference's quantile bins: equal reference bars mean a stable shape"
    elif ref.categories is not None and cur.categories is not None:
        names = set(ref.categories) | set(cur.categories)
        ranked = sorted(
            names,
            key=lambda k: (-(ref.categories.get(k, 0) + cur.categories.get(k, 0)), k),  # type: ignore[union-attr]
        )
        labels = ranked[:MAX_CATEGORY_BARS]
        ref_counts = [ref.categories.get(k, 0) for k in labels]
        cur_counts = [cur.categories.get(k, 0) for k in labels]
        rest = ranked[MAX_CATEGORY_BARS:]
        if rest:
            labels.append(f"{len(rest)} other")
            ref_counts.append(sum(ref.categories.get(k, 0) for k in rest))
            cur_counts.append(sum(cur.categories.get(k, 0) for k in rest))
        note = "share of rows per category"
    else:
        return None
    if any(missing):
        labels.append("missing")
        ref_counts.append(missing[0])
        cur_counts.append(missing[1])
    return ColumnPicture(tuple(labels), tuple(ref_counts), tuple(cur_counts), note)


def _num(value: float | None, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return format(value, spec)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def summarise_report(report: DriftReport) -> dict[str, Any]:
    """The verdict part of a stored check result: ``report.to_dict()`` with ``status``
    (``drift``, ``ok`` or ``insufficient_data``), ``dataset_drift`` (None when nothing could be
    tested) and ``columns`` keyed by name."""
    out = report.to_dict()
    columns = {c["column"]: c for c in out.pop("columns")}
    if report.status == "insufficient_data":
        status = "insufficient_data"
    elif report.dataset_drifted or report.prediction_drifted or report.target_drifted:
        status = "drift"
    else:
        status = "ok"
    out.update(
        status=status,
        dataset_drift=None if status == "insufficient_data" else report.dataset_drifted,
        columns=columns,
    )
    return out


def describe_window(window: Any) -> str:
    """A stored window in the CLI's short form (``job:<id>``, ``rows:500``, ...)."""
    from pydantic import ValidationError

    from keelwatch.monitoring.service.specs import WindowSpec

    if not isinstance(window, Mapping):
        return str(window or "")
    try:
        return WindowSpec.model_validate(window).describe()
    except ValidationError:  # an old or hand-made result: still say what it held
        return ",".join(f"{k}={v}" for k, v in sorted(window.items()) if v not in (None, ""))


def role_verdicts(result: Mapping[str, Any]) -> dict[str, str]:
    """The verdict word per role present in ``result`` (the stored check result)."""
    columns = list(result.get("columns", {}).values())
    roles = {str(c.get("role", "feature")) for c in columns}
    out: dict[str, str] = {}
    if not columns:
        return {"feature": INSUFFICIENT_WORD}
    if "feature" in roles:
        tested = int(result.get("n_tested") or 0)
        out["feature"] = role_verdict(bool(result.get("dataset_drift")) if tested else None)
    for role in ("prediction", "target"):
        if role in roles:
            out[role] = role_verdict(result.get(f"{role}_drifted"))
    return out


def check_verdict(result: Mapping[str, Any]) -> str:
    """The check's headline word from its stored status."""
    status = str(result.get("status", "error"))
    return _STATUS_VERDICT.get(status, status.upper())


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24;
max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{padding:14px 18px;border-radius:8px;margin:12px 0 6px;border:2px solid}
.v-DRIFT{background:#fde8e8;border-color:#c81e1e}.v-NO{background:#e7f6ec;border-color:#1f7a3d}
.v-INSUFFICIENT{background:#fff6db;border-color:#b7791f}
.v-ERROR{background:#eee;border-color:#555}
.verdict b.big{font-size:26px;letter-spacing:.5px}
.roles{list-style:none;padding:0;margin:8px 0 0;display:flex;gap:22px;flex-wrap:wrap}
.w-drift{color:#c81e1e;font-weight:600}.w-nodrift{color:#1f7a3d}
.w-other{color:#8a5a00}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}th{background:#f5f7f9;font-weight:600;white-space:nowrap}
.meta{color:#57606a}.card{display:inline-block;vertical-align:top;margin:0 14px 18px 0;
width:520px}.card h3{font-size:14px;margin:0 0 2px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.note{color:#57606a;font-size:12px}
"""


def _word_class(word: str) -> str:
    low = word.lower()
    if low == "drift":
        return "w-drift"
    if low == "no drift":
        return "w-nodrift"
    return "w-other"


def _bars_svg(picture: ColumnPicture) -> str:
    width, height, top, bottom, left = 520, 170, 8, 52, 34
    plot_h = height - top - bottom
    n = len(picture.labels)
    ref_total = sum(picture.reference) or 1
    cur_total = sum(picture.current) or 1
    ref_share = [c / ref_total for c in picture.reference]
    cur_share = [c / cur_total for c in picture.current]
    peak = max([*ref_share, *cur_share, 1e-9])
    slot = (width - left - 4) / max(n, 1)
    bar = max(slot * 0.38, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" '
        'stroke="#8c959f"/>',
        f'<text x="{left - 4}" y="{top + 8}" font-size="9" text-anchor="end">{peak:.0%}</text>',
    ]
    for i in range(n):
        x0 = left + i * slot + slot * 0.1
        for offset, share, colour, side in (
            (0.0, ref_share[i], "#6e8fb5", "reference"),
            (bar, cur_share[i], "#e8743b", "current"),
        ):
            h = plot_h * share / peak
            parts.append(
                f'<rect x="{x0 + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_e(picture.labels[i])}: {side} '
                f"{share:.1%}</title></rect>"
            )
        cx = x0 + bar
        label = picture.labels[i]
        short = label if len(label) <= 18 else label[:17] + "…"
        parts.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 12}" font-size="9" text-anchor="end" '
            f'transform="rotate(-30 {cx:.1f} {top + plot_h + 12})">{_e(short)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_drift_report(
    result: Mapping[str, Any],
    pictures: Mapping[str, ColumnPicture] | None = None,
    *,
    second_opinion: str | None = None,
) -> str:
    """The report page for one stored check ``result`` (the dict the check keeps).

    ``second_opinion`` names Evidently's report file when one was attached to the same run.
    """
    pictures = pictures or {}
    columns: list[dict[str, Any]] = list(result.get("columns", {}).values())
    headline = check_verdict(result)
    css_class = "v-" + headline.split(" ")[0]
    model = f"{result.get('model_name', '?')} v{result.get('model_version', '?')}"
    window_text = describe_window(result.get("window"))
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Keelwatch drift: {_e(headline)} &ndash; {_e(model)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Keelwatch drift report &ndash; {_e(model)}</h1>",
        f"<p class='meta'>monitor {_e(result.get('monitor', '-'))} · window {_e(window_text)}"
        f" · {int(result.get('window_rows') or result.get('n_current_rows') or 0):,} "
        "current rows vs "
        f"{int(result.get('reference_rows') or result.get('n_reference_rows') or 0):,} "
        f"reference rows · mode {_e(result.get('mode', '-'))}</p>",
        f"<section id='verdict' class='verdict {css_class}' data-verdict='{_e(headline)}'>",
        f"<b class='big'>{_e(headline)}</b>",
    ]
    if result.get("detail"):
        out.append(f"<div>{_e(result['detail'])}</div>")
    if result.get("error"):
        out.append(f"<div>error: {_e(result['error'])}</div>")
    out.append("<ul class='roles'>")
    for role, word in role_verdicts(result).items():
        extra = ""
        if role == "feature" and result.get("n_tested"):
            extra = (
                f", {int(result.get('n_drifted') or 0)} of {int(result['n_tested'])} "
                "tested columns drifted"
            )
        out.append(
            f"<li data-role='{role}' data-verdict='{_e(word)}'>{_ROLE_LABELS[role]}: "
            f"<b class='{_word_class(word)}'>{_e(word)}</b>{_e(extra)}</li>"
        )
    out.append("</ul></section>")
    alpha = result.get("fdr_alpha")
    out.append(
        "<p class='note'>A column drifts when its Benjamini-Hochberg q-value is at most the FDR "
        f"level ({_e(alpha if alpha is not None else '-')}) and its effect size reaches the "
        "statistic's floor; each role is adjusted on its own. Untested columns read "
        f"'{STATUS_WORDS['insufficient_data']}' (or say why) and never count as drift.</p>"
    )
    if columns:
        out.append("<h2>Columns</h2><table id='columns'><thead><tr>")
        for header in (
            "column", "role", "kind", "statistic", "value", "p", "q", "effect size",
            "floor", "verdict", "rows ref / cur", "note",
        ):  # fmt: skip
            out.append(f"<th>{header}</th>")  # noqa: PERF401 - one HTML line per header
        out.append("</tr></thead><tbody>")
        for c in columns:
            word = column_verdict(str(c.get("status")), c.get("drifted"))
            note = c.get("detail") or ""
            if c.get("missing_drifted"):
                note = (
                    f"missing rate {_num(c.get('missing_rate_reference'))} → "
                    f"{_num(c.get('missing_rate_current'))}; {note}"
                ).rstrip("; ")
            out.append(
                f"<tr data-column='{_e(c['column'])}' data-role='{_e(c.get('role', 'feature'))}'"
                f" data-status='{_e(c.get('status'))}' data-verdict='{_e(word)}'>"
                f"<td>{_e(c['column'])}</td><td>{_e(c.get('role', 'feature'))}</td>"
                f"<td>{_e(c.get('kind', ''))}</td><td>{_e(c.get('statistic') or '-')}</td>"
                f"<td class='n'>{_num(c.get('value'), '.4g')}</td>"
                f"<td class='n'>{_num(c.get('pvalue'))}</td>"
                f"<td class='n'>{_num(c.get('qvalue'))}</td>"
                f"<td class='n'>{_num(c.get('effect_size'))}</td>"
                f"<td class='n'>{_num(c.get('effect_size_floor'))}</td>"
                f"<td><b class='{_word_class(word)}'>{_e(word)}</b></td>"
                f"<td class='n'>{int(c.get('n_reference') or 0):,} / "
                f"{int(c.get('n_current') or 0):,}</td><td>{_e(note)}</td></tr>"
            )
        out.append("</tbody></table>")
    drawn = [c for c in columns if str(c["column"]) in pictures]
    if drawn:
        out.append(
            "<h2>Reference vs current</h2><p class='legend note'>"
            "<span style='background:#6e8fb5'></span>reference"
            "<span style='background:#e8743b'></span>current (share of each side's rows)</p>"
        )
        for c in drawn:
            name = str(c["column"])
            picture = pictures[name]
            word = column_verdict(str(c.get("status")), c.get("drifted"))
            out.append(
                f"<div class='card' data-column='{_e(name)}' data-verdict='{_e(word)}'>"
                f"<h3>{_e(name)} <span class='{_word_class(word)}'>{_e(word)}</span></h3>"
                f"<div class='note'>{_e(c.get('statistic') or '')} "
                f"{_num(c.get('value'), '.4g')}, q {_num(c.get('qvalue'))} · "
                f"{_e(picture.note)}</div>{_bars_svg(picture)}</div>"
            )
    notes = list(result.get("notes") or [])
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    second = (
        f"Evidently's report is attached to this run as {_e(second_opinion)}. It is an "
        "independent second opinion: it runs its own tests with its own thresholds (for "
        "example, dataset drift only when half the columns drift) on a sample of each side, "
        "so it can disagree with the verdict above, which is Keelwatch's."
        if second_opinion
        else "No second-opinion report was requested for this check."
    )
    out.append(f"<p class='note' id='second-opinion'>{second}</p></body></html>")
    return "".join(out)
