"""How the CLI prints a bias audit (the ``AuditResult.to_dict()`` shape, from a file audit or a
stored one): a verdict line, then per slice a table of its groups (count, metrics, "undefined"
where a metric has no value, "insufficient" for groups too small to judge) and a table of its
gaps (value, interval, threshold, VIOLATION/ok).
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Names, values and ids are user input: never read as markup. Piped output is not cut at 80.
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 160)

#: Column headers of the group metrics, in the order they are shown.
METRIC_HEADERS = {
    "selection_rate": "selection rate",
    "mean_score": "mean score",
    "base_rate": "base rate",
    "tpr": "TPR",
    "fpr": "FPR",
    "precision": "precision",
    "accuracy": "accuracy",
    "calibration_gap": "calib. gap",
    "mean_prediction": "mean prediction",
    "mean_label": "mean label",
    "mae": "MAE",
}
UNDEFINED = "undefined"


def print_audit(result: dict[str, Any], title: str) -> None:
    """An audit (the ``AuditResult.to_dict()`` shape) as a verdict line and, per slice, a
    table of its groups and a table of its gaps."""
    gaps = [gap for s in result.get("slices", []) for gap in s.get("gaps", [])]
    violating = sum(1 for gap in gaps if gap.get("violation"))
    verdict = str(result.get("verdict", "?"))
    style = {"violation": "bold red", "pass": "bold green"}.get(verdict, "bold yellow")
    summary = {
        "violation": f"{violating} of {len(gaps)} gaps violate",
        "pass": f"no gap of {len(gaps)} violates",
    }.get(verdict, "too few rows per group to judge any gap")
    console.print(Text.assemble(f"{title}: ", (verdict.upper(), style), f" ({summary})"))
    config = result.get("config", {})
    data = ", ".join(
        part
        for part in (
            f"{result.get('rows', 0):,} rows",
            str(result.get("task", "")),
            "labelled" if result.get("labelled") else "no labels",
            "scored" if result.get("scored") else "no scores",
        )
        if part
    )
    level = result.get("interval_level")
    intervals = (
        f"{level:.2%} intervals ({config.get('confidence', 0):.0%} corrected for "
        f"{result.get('comparisons', 0)} comparisons, {config.get('correction', '?')})"
        if isinstance(level, int | float)
        else ""
    )
    console.print(
        f"  {data}; groups under {config.get('min_group_size', '?')} rows are "
        f"insufficient; {intervals}"
    )
    population = result.get("population")
    if isinstance(population, dict) and "logged_rows" in population:
        # A prediction-log audit says which logged rows it covered (the service's label rule).
        which = (
            "the labelled rows, with their labels"
            if population.get("audited") == "labelled_rows"
            else "every row, without labels (too few labelled)"
        )
        console.print(
            f"  audited {population.get('audited_rows', 0):,} of "
            f"{population['logged_rows']:,} logged predictions: {which}"
        )
    for slice_ in result.get("slices", []):
        console.print("")
        console.print(_groups_table(slice_, config))
        if slice_.get("gaps"):
            console.print(_gaps_table(slice_))


def _groups_table(slice_: dict[str, Any], config: dict[str, Any]) -> Table:
    groups = slice_.get("groups", [])
    present = {name for g in groups for name in g.get("metrics", {})}
    metrics = [m for m in METRIC_HEADERS if m in present] + sorted(present - set(METRIC_HEADERS))
    table = Table(title=f"slice {slice_.get('slice')}: groups", title_justify="left")
    table.add_column("group")
    table.add_column("count", justify="right")
    for metric in metrics:
        table.add_column(METRIC_HEADERS.get(metric) or metric, justify="right")
    table.add_column("note")
    for group in groups:
        values = group.get("metrics", {})
        notes = []
        if not group.get("sufficient", True):
            notes.append(f"insufficient (< {config.get('min_group_size', '?')} rows): not in gaps")
        undefined = group.get("undefined", {})
        notes.extend(f"{m} undefined: {why}" for m, why in undefined.items())
        table.add_row(
            str(group.get("group")),
            f"{group.get('count', 0):,}",
            *(_number(values.get(metric)) for metric in metrics),
            "; ".join(notes),
        )
    return table


def _gaps_table(slice_: dict[str, Any]) -> Table:
    table = Table(title=f"slice {slice_.get('slice')}: gaps", title_justify="left")
    for column, justify in (
        ("gap", "left"),
        ("value", "right"),
        ("interval", "right"),
        ("violates if", "right"),
        ("judgement", "left"),
        ("between", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for gap in slice_.get("gaps", []):
        value = gap.get("value")
        if value is None:
            judgement = Text(f"{UNDEFINED}: {gap.get('reason') or 'too few groups'}", "yellow")
        elif gap.get("violation"):
            judgement = Text("VIOLATION", "bold red")
        else:
            judgement = Text("ok", "green")
        low, high = gap.get("ci_low"), gap.get("ci_high")
        interval = f"[{_number(low)}, {_number(high)}]" if low is not None else ""
        sign = "<" if gap.get("direction") == "below" else ">"
        between = " vs ".join(gap.get("groups") or [])
        table.add_row(
            str(gap.get("metric")),
            _number(value),
            interval,
            f"{sign} {gap.get('threshold', 0):.3f}",
            judgement,
            between,
        )
    return table


def _number(value: Any) -> str:
    if value is None:
        return UNDEFINED
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.3f}"


def audit_title(audit: dict[str, Any]) -> str:
    alias = f" @{audit['alias']}" if audit.get("alias") else ""
    where = f" over {audit['window']}" if audit.get("window") else f" ({audit.get('source', '')})"
    stored = " (stored earlier)" if audit.get("already_recorded") else ""
    return (
        f"audit {audit['id']}: {audit['model_name']} version {audit['model_version']}{alias}"
        f"{where}{stored}"
    )
