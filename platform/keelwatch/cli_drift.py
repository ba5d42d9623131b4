"""``keelwatch drift``: build reference profiles and check windows for drift, no server needed.

Exit codes of ``check``: 0 no drift, 1 drift detected, 2 bad input (unreadable file, unknown
statistic, ...). Data files are CSV or Parquet; profiles are the ``.npz`` files ``profile``
writes. Heavy libraries (pandas, scipy) are imported inside the commands so that
``keelwatch --help`` and every other sub-command start fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keelwatch.cli_support import fail
from keelwatch.errors import KeelwatchError

if TYPE_CHECKING:
    import pandas as pd

    from keelwatch.monitoring.drift import DriftReport, ReferenceProfile

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
PROFILE_SUFFIXES = (".npz",)
DATA_SUFFIXES = (".csv", ".parquet", ".pq")

drift_app = typer.Typer(
    help="Reference profiles and drift checks (standalone: no server needed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _read_frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        fail(f"{path}: expected a data file ({', '.join(DATA_SUFFIXES)})", EXIT_BAD_INPUT)
    if not path.is_file():
        fail(f"{path}: no such file", EXIT_BAD_INPUT)
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        fail(f"{path}: cannot read data ({exc})", EXIT_BAD_INPUT)
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        fail(f"{path}: cannot read data ({type(exc).__name__}: {exc})", EXIT_BAD_INPUT)


def _read_reference(path: Path) -> ReferenceProfile:
    from keelwatch.monitoring.drift import build_profile, load_profile

    if path.suffix.lower() in PROFILE_SUFFIXES:
        if not path.is_file():
            fail(f"{path}: no such file", EXIT_BAD_INPUT)
        return load_profile(path)
    return build_profile(_read_frame(path))


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _print_table(report: DriftReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Drift by column", title_justify="left")
    for header in ("column", "kind", "statistic", "value", "p-value", "q-value", "effect"):
        table.add_column(header, justify="right" if header[0] in "vpqe" else "left", no_wrap=True)
    table.add_column("drifted", no_wrap=True)
    table.add_column("note", overflow="fold")
    for c in report.columns:
        note = c.detail or ("" if c.status == "ok" else c.status)
        if c.missing_drifted:
            note = f"missing {c.missing_rate_reference:.3g} -> {c.missing_rate_current:.3g}"
        table.add_row(
            c.column,
            c.kind,
            c.statistic or "-",
            _fmt(c.value),
            _fmt(c.pvalue, ".3g"),
            _fmt(c.qvalue, ".3g"),
            _fmt(c.effect_size, ".3g"),
            "[bold red]yes[/]" if c.drifted else "no",
            note if c.status == "ok" else f"{c.status}: {c.detail or ''}".rstrip(": "),
        )
    # Piped output (CI logs, docs) gets a fixed width instead of Rich's 80-column default.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    verdict = "[bold red]DRIFT[/]" if report.dataset_drifted else "[green]no drift[/]"
    console.print(
        f"Dataset: {verdict} - {report.n_drifted} of {report.n_tested} tested columns drifted "
        f"(BH FDR {report.fdr_alpha}); reference {report.n_reference_rows} rows, "
        f"current {report.n_current_rows} rows."
    )
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
) -> None:
    """Build a reference profile from DATA and save it to --out."""
    from keelwatch.monitoring.drift import build_profile, save_profile

    if out.suffix.lower() not in PROFILE_SUFFIXES:
        fail(f"{out}: profiles are saved as .npz", EXIT_BAD_INPUT)
    frame = _read_frame(data)
    try:
        profile = build_profile(frame, n_bins=bins, max_sorted_values=max_sorted_values)
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
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    fdr_alpha: Annotated[float, typer.Option(help="Benjamini-Hochberg FDR level.")] = 0.05,
    ks_method: Annotated[str, typer.Option(help="KS p-value method: auto, exact, asymp.")] = "auto",
    min_samples: Annotated[int, typer.Option(help="Fewer valid values: insufficient data.")] = 30,
) -> None:
    """Compare CURRENT with REFERENCE. Exit 0: no drift, 1: drift, 2: bad input."""
    from keelwatch.monitoring.drift import DriftConfig, compute_drift

    try:
        config = DriftConfig(
            stattest=stattest,
            fdr_alpha=fdr_alpha,
            ks_method=ks_method,  # type: ignore[arg-type]  # validated by DriftConfig
            min_samples=min_samples,
        )
        profile = _read_reference(reference)
        report = compute_drift(profile, _read_frame(current), config)
    except KeelwatchError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_table(report)
    raise typer.Exit(EXIT_DRIFT if report.dataset_drifted else EXIT_NO_DRIFT)


if __name__ == "__main__":
    drift_app()
