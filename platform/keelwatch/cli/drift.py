"""``keelwatch drift``: build reference profiles and check windows for drift, no server needed.

Exit codes of ``check``: 0 no drift, 1 drift detected, 2 bad input (unreadable file, unknown
statistic, ...), 3 insufficient data (no column could be tested: a window without the
reference's columns, a header-only file), so a CI gate never passes a file it could not test.
Data files are CSV or Parquet, read through Arrow straight into numpy (no
pandas: its import alone would cost more than a whole check); profiles are the ``.npz`` files
``profile`` writes. Heavy libraries are imported inside the commands so that
``keelwatch --help`` and every other sub-command start fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keelwatch.cli.support import fail
from keelwatch.errors import KeelwatchError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from keelwatch.monitoring.drift import DriftReport, ReferenceProfile
    from keelwatch.monitoring.drift.report import ColumnRole

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
EXIT_INSUFFICIENT_DATA = 3
PROFILE_SUFFIXES = (".npz",)

drift_app = typer.Typer(
    help="Reference profiles and drift checks (standalone: no server needed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # `keelwatch drift` runs this app as the root (entry.py), so it needs its own -h.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _read_columns(path: Path) -> Mapping[str, NDArray[Any]]:
    # pyarrow straight to numpy: pandas' import alone would cost more than the whole check.
    from keelwatch.monitoring.service.column_reader import read_columns

    try:
        return read_columns(path)
    except KeelwatchError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


def _roles(prediction: list[str] | None, target: str | None) -> dict[str, ColumnRole]:
    roles: dict[str, ColumnRole] = dict.fromkeys(prediction or [], "prediction")
    if target:
        if target in roles:
            fail(f"column {target!r} cannot be both a prediction and the target", EXIT_BAD_INPUT)
        roles[target] = "target"
    return roles


def _read_reference(path: Path, roles: dict[str, ColumnRole]) -> ReferenceProfile:
    from keelwatch.monitoring.drift import build_profile, load_profile

    if path.suffix.lower() in PROFILE_SUFFIXES:
        if not path.is_file():
            fail(f"{path}: no such file", EXIT_BAD_INPUT)
        if roles:
            fail("--prediction/--target apply to a data-file reference; a profile carries its "
                 "roles (set them with 'keelwatch drift profile')", EXIT_BAD_INPUT)  # fmt: skip
        return load_profile(path)
    return build_profile(_read_columns(path), roles=roles)


def _column_overrides(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        column, sep, stattest = pair.partition("=")
        if not sep or not column or not stattest:
            fail(f"--column-stattest expects COLUMN=STATISTIC, got {pair!r}", EXIT_BAD_INPUT)
        out[column] = stattest
    return out


def _split_names(values: list[str] | None) -> tuple[str, ...]:
    return tuple(name.strip() for v in values or [] for name in v.split(",") if name.strip())


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _print_table(report: DriftReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from keelwatch.monitoring.drift.report import column_verdict

    table = Table(title="Drift by column", title_justify="left")
    for header in ("column", "kind", "statistic", "value", "p-value", "q-value", "effect"):
        table.add_column(header, justify="right" if header[0] in "vpqe" else "left", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("note", overflow="fold")
    for c in report.columns:
        notes = [c.detail] if c.detail else []
        if c.missing_drifted:
            notes.append(f"missing {c.missing_rate_reference:.3g} -> {c.missing_rate_current:.3g}")
        notes += [f"{k} {_fmt(v['value'])}" for k, v in c.extra.items()]
        note = "; ".join(notes)
        table.add_row(
            c.column if c.role == "feature" else f"{c.column} ({c.role})",
            c.kind,
            c.statistic or "-",
            _fmt(c.value),
            _fmt(c.pvalue, ".3g"),
            _fmt(c.qvalue, ".3g"),
            _fmt(c.effect_size, ".3g"),
            "[bold red]drift[/]" if c.drifted else column_verdict(c.status, c.drifted),
            # The verdict cell already names an untested column's status.
            note if c.status == "ok" else (c.detail or ""),
        )
    # Piped output (CI logs, docs) gets a fixed width instead of Rich's 80-column default.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    sizes = f"reference {report.n_reference_rows} rows, current {report.n_current_rows} rows"
    if report.status == "insufficient_data":
        console.print(
            f"[bold yellow]Insufficient data[/]: no column could be tested ({sizes}); "
            "this is not a 'no drift' verdict."
        )
    elif report.n_tested == 0:
        console.print(
            f"Features: [yellow]insufficient data[/] - no feature column tested ({sizes})."
        )
    else:
        verdict = "[bold red]DRIFT[/]" if report.dataset_drifted else "[green]no drift[/]"
        console.print(
            f"Features: {verdict} - {report.n_drifted} of {report.n_tested} tested columns "
            f"drifted (BH FDR {report.fdr_alpha}); {sizes}."
        )
    roles_present = {c.role for c in report.columns}
    for role, label, flag in (
        ("prediction", "Predictions", report.prediction_drifted),
        ("target", "Target", report.target_drifted),
    ):
        if role not in roles_present or report.status == "insufficient_data":
            continue
        words = {None: "[yellow]insufficient data[/]", True: "[bold red]DRIFT[/]"}
        console.print(f"{label}: {words.get(flag, '[green]no drift[/]')}")
    for label, names in (
        ("Missing from current", report.missing_columns),
        ("Extra in current (not tested)", report.extra_columns),
        ("Type mismatches", report.type_mismatches),
    ):
        if names:
            console.print(f"{label}: {', '.join(names)}")


@drift_app.command("profile")
def profile_command(
    data: Annotated[Path, typer.Argument(help="Training/reference data (CSV or Parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the .npz profile.")],
    bins: Annotated[int, typer.Option(help="Histogram bins (reference quantiles).")] = 10,
    max_sorted_values: Annotated[
        int, typer.Option(help="Keep at most this many distinct sorted values per column.")
    ] = 1_000_000,
    prediction: Annotated[
        list[str] | None,
        typer.Option("--prediction", help="A model-output column (repeatable)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The ground-truth label column.")] = None,
) -> None:
    """Build a reference profile from DATA and save it to --out."""
    from keelwatch.monitoring.drift import build_profile, save_profile

    if out.suffix.lower() not in PROFILE_SUFFIXES:
        fail(f"{out}: profiles are saved as .npz", EXIT_BAD_INPUT)
    roles = _roles(prediction, target)
    frame = _read_columns(data)
    try:
        profile = build_profile(
            frame, n_bins=bins, max_sorted_values=max_sorted_values, roles=roles
        )
        save_profile(profile, out)
    except KeelwatchError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        fail(f"{out}: cannot write profile ({exc})", EXIT_BAD_INPUT)
    kinds: dict[str, int] = {}
    for col in profile.columns.values():
        kinds[col.kind] = kinds.get(col.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    typer.echo(f"Profiled {profile.rows} rows, {len(profile.columns)} columns ({summary}) -> {out}")


@drift_app.command("check")
def check_command(
    reference: Annotated[
        Path, typer.Option("--reference", "-r", help="Reference: a .npz profile or a data file.")
    ],
    current: Annotated[Path, typer.Option("--current", "-c", help="Current window (data file).")],
    stattest: Annotated[
        str | None,
        typer.Option(help="Force one statistic for every column: ks, psi, kl, js, chi2, ..."),
    ] = None,
    column_stattest: Annotated[
        list[str] | None,
        typer.Option(help="COLUMN=STATISTIC for one column (repeatable); wins over --stattest."),
    ] = None,
    also: Annotated[
        list[str] | None,
        typer.Option(help="Also report these statistics, e.g. 'psi,kl' (no effect on verdicts)."),
    ] = None,
    prediction: Annotated[
        list[str] | None,
        typer.Option(
            "--prediction", help="Model-output column of a data-file reference (repeatable)."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Ground-truth label column of a data-file reference.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    fdr_alpha: Annotated[float, typer.Option(help="Benjamini-Hochberg FDR level.")] = 0.05,
    ks_method: Annotated[str, typer.Option(help="KS p-value method: auto, exact, asymp.")] = "auto",
    min_samples: Annotated[int, typer.Option(help="Fewer valid values: insufficient data.")] = 30,
) -> None:
    """Compare CURRENT with REFERENCE.

    Exit 0: no drift, 1: drift in the features, the predictions or the target, 2: bad input,
    3: insufficient data (no column could be tested; never read it as "no drift").
    """
    from keelwatch.monitoring.drift import DriftConfig, compute_drift

    try:
        config = DriftConfig(
            stattest=stattest,
            column_stattests=_column_overrides(column_stattest),
            extra_stattests=_split_names(also),
            fdr_alpha=fdr_alpha,
            ks_method=ks_method,  # type: ignore[arg-type]  # validated by DriftConfig
            min_samples=min_samples,
        )
        profile = _read_reference(reference, _roles(prediction, target))
        report = compute_drift(profile, _read_columns(current), config)
    except KeelwatchError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_table(report)
    raise typer.Exit(exit_code(report))


def exit_code(report: DriftReport) -> int:
    """The ``check`` exit code of ``report``: drift wins, then insufficient data, then 0."""
    if report.dataset_drifted or report.prediction_drifted or report.target_drifted:
        return EXIT_DRIFT
    if report.status == "insufficient_data":
        return EXIT_INSUFFICIENT_DATA
    return EXIT_NO_DRIFT


if __name__ == "__main__":
    drift_app()
