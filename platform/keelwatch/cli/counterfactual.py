"""``keelwatch audit counterfactual``: the same prompt templates with demographic terms swapped,
run through a registered text model, the groups' outputs compared with paired intervals.

Runs in this process on the local registry (the model is loaded as the evaluation jobs load
it); nothing is stored. See ``monitoring.service.counterfactual_runs`` for the file formats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from keelwatch.cli.audit_output import console
from keelwatch.cli.audits import EXIT_VIOLATION
from keelwatch.cli.support import JsonOption, cli_errors, cli_services, fail

KINDS = ("auto", "score", "label", "text")


def audit_counterfactual(
    model: Annotated[
        str, typer.Option("--model", help="Model reference: name@alias, name/version.")
    ],
    templates: Annotated[
        Path,
        typer.Option("--templates", help="One template per line (or a JSON list) with {term}."),
    ],
    terms: Annotated[
        Path,
        typer.Option("--terms", help='JSON or YAML: {"group": ["term", ...], ...}.'),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="score (positive-class probability), label, text (length, refusals), or auto.",
        ),
    ] = "auto",
    input_column: Annotated[
        str, typer.Option("--input-column", help="The model's text input column.")
    ] = "text",
    positive_label: Annotated[
        str | None,
        typer.Option("--positive-label", help="score/label: the class compared (default 1)."),
    ] = None,
    resamples: Annotated[
        int | None,
        typer.Option("--resamples", min=10, max=100_000, help="Bootstrap resamples (1000)."),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option("--confidence", min=0.5, max=0.999999, help="Interval confidence (0.95)."),
    ] = None,
    difference_threshold: Annotated[
        float | None,
        typer.Option("--difference-threshold", min=0.0, help="Violates above (0.1)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Bootstrap seed (0).")] = None,
    fail_on_violation: Annotated[
        bool,
        typer.Option(
            "--fail-on-violation", help=f"Exit {EXIT_VIOLATION} when a gap violates (for CI)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fill each template with each group's terms, run MODEL on every prompt, compare groups.

    Exit 0 when the audit completes, whatever its verdict; bad input exits 2 with one line.
    """
    from keelwatch.monitoring.service.bias_audits import audit_config, positive_label_setting
    from keelwatch.monitoring.service.counterfactual_runs import (
        read_templates,
        read_terms,
        run_counterfactual,
    )

    if kind not in KINDS:
        fail(f"--kind: {kind!r} is not one of {', '.join(KINDS)}")
    overrides = {
        "resamples": resamples,
        "confidence": confidence,
        "difference_threshold": difference_threshold,
        "seed": seed,
    }
    with cli_services() as services, cli_errors():
        template_list = read_templates(templates)
        term_lists = read_terms(terms)
        config = audit_config(services.settings, **overrides)
        label = positive_label_setting(
            positive_label
            if positive_label is not None
            else services.settings.fairness.positive_label
        )
        resolved = services.registry.resolve(model)
        location = services.registry.client.get_model_version_download_uri(
            resolved.name, resolved.version
        )
        loaded = _load(location, services.settings.mlflow.tracking_uri)
        result, prompts = run_counterfactual(
            loaded,
            template_list,
            term_lists,
            input_column=input_column,
            kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
            positive_label=label,
            config=config,
        )
    outcome = result.to_dict()
    if as_json:
        typer.echo(json.dumps({"model": model, "version": resolved.version, **outcome}, indent=2))
    else:
        _print(outcome, f"{resolved.name} v{resolved.version}", len(prompts))
    if fail_on_violation and outcome["verdict"] == "violation":
        raise typer.Exit(EXIT_VIOLATION)


def _load(location: str, tracking_uri: str) -> Any:
    """The pyfunc at ``location``; remote artifacts are downloaded with the settings' tracking
    URI first (``load_model`` would resolve them through MLflow's process-global one)."""
    import tempfile
    from urllib.parse import urlparse

    import mlflow.artifacts
    import mlflow.pyfunc

    if urlparse(location).scheme in ("", "file"):
        return mlflow.pyfunc.load_model(location)
    with tempfile.TemporaryDirectory(prefix="keelwatch-model-") as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=folder, tracking_uri=tracking_uri
        )
        return mlflow.pyfunc.load_model(local)


def _print(outcome: dict[str, Any], title: str, prompts: int) -> None:
    verdict = str(outcome["verdict"])
    words = {"pass": "PASS", "violation": "VIOLATION", "insufficient_data": "INSUFFICIENT DATA"}
    violating = sum(1 for gap in outcome["gaps"] if gap["violation"])
    typer.echo(
        f"counterfactual audit of {title}: {words.get(verdict, verdict)} "
        f"({violating} of {outcome['comparisons']} gaps violate)"
    )
    typer.echo(
        f"  {outcome['templates']} templates, {prompts} prompts, kind {outcome['kind']}; "
        f"{outcome['interval_level']:.2%} intervals paired over templates "
        f"({outcome['config']['correction']})"
    )
    groups = Table(title="groups", title_justify="left")
    metrics = sorted({m for g in outcome["groups"] for m in g["metrics"]})
    for column in ("group", "prompts", *metrics):
        groups.add_column(column, justify="left" if column == "group" else "right")
    for group in outcome["groups"]:
        cells = []
        for metric in metrics:
            value = group["metrics"].get(metric)
            low_high = group["ci"].get(metric)
            text = "undefined" if value is None else f"{value:.3f}"
            if value is not None and low_high:
                text += f" [{low_high[0]:.3f}, {low_high[1]:.3f}]"
            cells.append(text)
        groups.add_row(group["group"], str(group["prompts"]), *cells)
    console.print(groups)
    gaps = Table(title="gaps", title_justify="left")
    for column in ("gap", "value", "interval", "violates if", "judgement", "between"):
        gaps.add_column(column)
    for gap in outcome["gaps"]:
        if gap["value"] is None:
            gaps.add_row(gap["metric"], "undefined", "", "", "not judged", gap["reason"])
            continue
        sign = "<" if gap["direction"] == "below" else ">"
        gaps.add_row(
            gap["metric"],
            f"{gap['value']:.3f}",
            f"[{gap['ci_low']:.3f}, {gap['ci_high']:.3f}]",
            f"{sign} {gap['threshold']:.3f}",
            "VIOLATION" if gap["violation"] else "ok",
            " vs ".join(gap["groups"] or []),
        )
    console.print(gaps)
