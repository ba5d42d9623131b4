"""``keelwatch audit run|history|show|report``: bias audits (the sensitive attributes they
group by are recorded with ``keelwatch predictions attributes FILE``, :mod:`cli.attributes`;
audits print through :mod:`cli.audit_output`).

``audit run`` works two ways. ``--data FILE --prediction COL --attributes a,b`` audits a CSV,
Parquet or JSON Lines file on its own: no server, no database, no settings file (the audit's
settings come from the options and the defaults). ``--model NAME --attributes a,b`` audits the
model's predictions logged in the window ending now, stores one audit per version and writes
``fairness.*`` signals; with ``KEELWATCH_API_URL`` set it runs through ``POST /audits``, like
``history``, ``show`` and ``report`` go through ``GET /audits...``.

Exit codes: 0 for a completed audit whatever its verdict (``--fail-on-violation``: 3 when a
gap violates), 2 with one line for bad input (a missing column, non-binary predictions, an
unknown audit), 1 when a service does not answer.

The commands join the ``audit`` group of ``ops`` (whose ``audit list`` reads the audit log),
so ``keelwatch audit run`` is what the issue asked for; the bias audits' own list is
``audit history``. Heavy imports (pandas, the audit, MLflow) happen inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from keelwatch.cli.attributes import predictions_attributes
from keelwatch.cli.audit_output import audit_title, console, print_audit
from keelwatch.cli.remote import refuse_actor, remote_client
from keelwatch.cli.support import (
    ActorOption,
    JsonOption,
    cli_actor,
    cli_errors,
    cli_services,
    fail,
    stderr_console,
)

if TYPE_CHECKING:
    from keelwatch.monitoring.fairness.results import AuditConfig
    from keelwatch.schemas.audits import AuditRunIn, AuditRunOut
    from keelwatch.settings import Settings
    from keelwatch.wiring import Services

#: Exit code of ``audit run --fail-on-violation`` when a gap violates.
EXIT_VIOLATION = 3


def register(audit_app: typer.Typer, predictions_app: typer.Typer) -> None:
    """Mount the bias-audit commands on ``audit`` and the attributes command on
    ``predictions`` (both groups belong to ``cli.ops``)."""
    audit_app.info.help = (
        "The audit log (audit list) and bias audits of models' predictions "
        "(audit run, history, show, report, counterfactual)."
    )
    audit_app.command("run")(audit_run)
    audit_app.command("history")(audit_history)
    audit_app.command("show")(audit_show)
    audit_app.command("report")(audit_report)
    # Imported here: cli.counterfactual uses this module's exit code.
    from keelwatch.cli.counterfactual import audit_counterfactual

    audit_app.command("counterfactual")(audit_counterfactual)
    predictions_app.command("attributes")(predictions_attributes)


# --------------------------------------------------------------------------- audit run


def audit_run(
    attributes: Annotated[
        str,
        typer.Option(
            "--attributes", help="Sensitive attributes to slice by, comma-separated: gender,age."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Audit this model's predictions logged in --window."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Audit this CSV, Parquet or JSON Lines file (standalone)."),
    ] = None,
    prediction: Annotated[
        str | None, typer.Option("--prediction", help="--data: the prediction column.")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="--data: the ground-truth column.")
    ] = None,
    score: Annotated[
        str | None,
        typer.Option("--score", help="--data: the positive class's probability column."),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option("--task", help="--data: binary or regression (default: inferred)."),
    ] = None,
    positive_label: Annotated[
        str | None,
        typer.Option("--positive-label", help="The favourable prediction value (default: 1)."),
    ] = None,
    window: Annotated[
        str, typer.Option("--window", help="--model: window ending now: 24h, 30m, 7d.")
    ] = "24h",
    version: Annotated[
        str | None, typer.Option("--version", help="--model: audit this version only.")
    ] = None,
    min_group_size: Annotated[
        int | None,
        typer.Option("--min-group-size", min=1, help="Smallest group in a gap (default 30)."),
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
        typer.Option("--difference-threshold", min=0.0, max=1.0, help="Violates above (0.1)."),
    ] = None,
    ratio_threshold: Annotated[
        float | None,
        typer.Option("--ratio-threshold", min=0.0, max=1.0, help="Violates below (0.8)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="--data: bootstrap seed (0).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="--data: also write the HTML report here.")
    ] = None,
    fail_on_violation: Annotated[
        bool,
        typer.Option(
            "--fail-on-violation", help=f"Exit {EXIT_VIOLATION} when a gap violates (for CI)."
        ),
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="--model: why (audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Audit predictions for gaps between groups: a file (--data) or a model's log (--model).

    Exit 0 when the audit completes, whatever its verdict.

    --fail-on-violation: exit 3 when a gap's whole interval lies beyond its threshold.

    Bad input (a missing column, non-binary predictions) exits 2 with one line.
    """
    if (model is None) == (data is None):
        fail("give exactly one of --model NAME (the prediction log) or --data FILE (a file)")
    names = [name.strip() for name in attributes.split(",") if name.strip()]
    if not names:
        fail("--attributes: name at least one sensitive attribute, e.g. --attributes gender")
    overrides = {
        key: value
        for key, value in {
            "min_group_size": min_group_size,
            "resamples": resamples,
            "confidence": confidence,
            "difference_threshold": difference_threshold,
            "ratio_threshold": ratio_threshold,
        }.items()
        if value is not None
    }
    if data is not None:
        misplaced = _given(version=version, reason=reason or None, actor=actor)
        if window != "24h":
            misplaced.append("--window")
        if misplaced:
            fail(f"{', '.join(misplaced)} only apply to --model audits")
        if prediction is None:
            fail("--data needs --prediction COL (the column holding the predictions)")
        if seed is not None:
            overrides["seed"] = seed
        verdict = _run_file(
            data,
            prediction=prediction,
            attributes=names,
            label=label,
            score=score,
            task=task,
            positive_label=positive_label,
            overrides=overrides,
            report=report,
            as_json=as_json,
        )
    else:
        assert model is not None
        misplaced = _given(
            prediction=prediction, label=label, score=score, task=task, seed=seed, report=report
        )
        if misplaced:
            fail(
                f"{', '.join(misplaced)} only apply to --data audits "
                "(a logged model's audit: `keelwatch audit report ID -o FILE`)"
            )
        body = _run_body(model, names, window, version, positive_label, overrides, reason)
        verdict = _run_model(body, actor, as_json=as_json)
    if fail_on_violation and verdict == "violation":
        raise typer.Exit(EXIT_VIOLATION)


def _given(**options: Any) -> list[str]:
    return [f"--{name.replace('_', '-')}" for name, value in options.items() if value is not None]


def _run_file(
    data: Path,
    *,
    prediction: str,
    attributes: list[str],
    label: str | None,
    score: str | None,
    task: str | None,
    positive_label: str | None,
    overrides: dict[str, Any],
    report: Path | None,
    as_json: bool,
) -> str:
    from keelwatch.monitoring.fairness.results import AUDIT_TASKS
    from keelwatch.monitoring.service.audit_files import audit_file

    if task is not None and task not in AUDIT_TASKS:
        fail(f"--task: {task!r} is not one of {', '.join(AUDIT_TASKS)}")
    config, default_positive = _file_config(overrides)
    with cli_errors(), _working(f"auditing {data.name}", quiet=as_json):
        result = audit_file(
            data,
            prediction=prediction,
            attributes=attributes,
            label=label,
            score=score,
            task=task,  # checked against AUDIT_TASKS above
            positive_label=positive_label if positive_label is not None else default_positive,
            config=config,
        )
    outcome = result.to_dict()
    if report is not None:
        _write_report(report, outcome, title=f"Bias audit of {data.name}")
    if as_json:
        typer.echo(json.dumps(outcome, indent=2))
    else:
        print_audit(outcome, f"bias audit of {data.name}")
        if report is not None:
            typer.echo(f"report written to {report}")
    return str(outcome["verdict"])


def _file_config(overrides: dict[str, Any]) -> tuple[AuditConfig, Any]:
    """The audit's settings and default positive label: the options over ``KEELWATCH_*``
    over the defaults (read from the environment only: no settings file, no database)."""
    from keelwatch.cli.ops import load_cli_settings
    from keelwatch.monitoring.service.bias_audits import audit_config, positive_label_setting

    settings: Settings = load_cli_settings()
    with cli_errors():
        config = audit_config(settings, **overrides)
    return config, positive_label_setting(settings.fairness.positive_label)


def _write_report(path: Path, outcome: dict[str, Any], *, title: str, subtitle: str = "") -> None:
    from keelwatch.monitoring.service.fairness_report import render_audit_report

    html = render_audit_report(outcome, title=title, subtitle=subtitle)
    _write_text(path, html)


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.__class__.__name__}")


def _run_body(
    model: str,
    attributes: list[str],
    window: str,
    version: str | None,
    positive_label: str | None,
    overrides: dict[str, Any],
    reason: str,
) -> AuditRunIn:
    from pydantic import ValidationError

    from keelwatch.schemas.audits import AuditRunIn

    payload: dict[str, Any] = {
        "model": model,
        "attributes": attributes,
        "window": window,
        "version": version,
        "reason": reason,
        **overrides,
    }
    if positive_label is not None:
        payload["positive_label"] = positive_label
    try:
        return AuditRunIn.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        fail(f"{where}: {first.get('msg', 'invalid')}")


def _run_model(body: AuditRunIn, actor: str | None, *, as_json: bool) -> str:
    from keelwatch.schemas.audits import AuditRunOut

    if (remote := remote_client()) is not None:
        refuse_actor(actor)
        with _working(f"auditing {body.model}", quiet=as_json):
            answer = AuditRunOut.model_validate(
                remote.post("/audits", body.model_dump(exclude_none=True))
            )
    else:
        with _working(f"auditing {body.model}", quiet=as_json):
            answer = _run_local(body, actor)
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json"), indent=2))
    else:
        typer.echo(
            f"bias audits of {answer.model} over {answer.window} ending "
            f"{answer.window_end.isoformat(timespec='seconds')}"
        )
        for audit in answer.results:
            typer.echo("")
            print_audit(audit.result, audit_title(audit.model_dump()))
    verdicts = {audit.verdict for audit in answer.results}
    return "violation" if "violation" in verdicts else next(iter(verdicts), "insufficient_data")


def _run_local(body: AuditRunIn, actor: str | None) -> AuditRunOut:
    from dataclasses import replace
    from datetime import UTC, datetime

    from keelwatch.alerting.service import after_commit_dispatch
    from keelwatch.errors import NotFoundError
    from keelwatch.monitoring.evaluation.realized import window_label
    from keelwatch.monitoring.service.bias_audits import (
        audit_config,
        get_audit,
        positive_label_setting,
        publish_audit,
        run_bias_audit,
    )
    from keelwatch.monitoring.service.realized import champion_of
    from keelwatch.schemas.audits import AuditDetailOut, AuditRunOut

    with cli_services() as services:
        now = datetime.now(UTC)
        config = audit_config(services.settings, **body.config_overrides())
        champion = champion_of(services.registry, body.model)
        with services.db.session() as session:
            outcome = run_bias_audit(
                session,
                model=body.model,
                attributes=body.attributes,
                window_s=body.window_s,
                window_end=now,
                champion=champion,
                config=config,
                actor=cli_actor(actor, services.settings),
                version=body.version,
                positive_label=(
                    body.positive_label
                    if body.positive_label is not None
                    else positive_label_setting(services.settings.fairness.positive_label)
                ),
                reason=body.reason,
                now=now,
            )
        if not outcome.results:
            which = f"version {body.version} of " if body.version else ""
            raise NotFoundError(
                f"no predictions of {which}model '{body.model}' logged in the "
                f"{window_label(body.window_s)} window ending now: nothing to audit"
            )
        for record in outcome.results:
            if not record.already_recorded:
                _publish(services, record.id, publish_audit)
        if outcome.transitions:
            try:
                after_commit_dispatch(services.db, services.sender, now)
            except Exception:  # noqa: BLE001 - the audits are stored either way
                typer.echo(
                    "alerts changed; notifications go out with the next alert tick", err=True
                )
        with services.db.session() as session:
            stored = [
                replace(get_audit(session, r.id), already_recorded=r.already_recorded)
                for r in outcome.results
            ]
    return AuditRunOut(
        model=outcome.model,
        window=window_label(outcome.window_s),
        window_end=outcome.window_end,
        signals_written=outcome.signals_written,
        results=[AuditDetailOut.of(record) for record in stored],
    )


def _publish(services: Services, audit_id: int, publish: Any) -> None:
    try:
        publish(services.settings, services.db, audit_id)
    except Exception as exc:  # noqa: BLE001 - the audit is stored; its report can follow
        stderr_console.print(
            Text(
                f"audit {audit_id} stored; its MLflow run and report were not written "
                f"({type(exc).__name__})",
                style="yellow",
            ),
            soft_wrap=True,
        )


@contextmanager
def _working(what: str, *, quiet: bool) -> Iterator[None]:
    """A spinner on stderr while an audit computes (terminals only; never with --json)."""
    if quiet or not stderr_console.is_terminal:
        yield
        return
    with stderr_console.status(what):
        yield


# --------------------------------------------------------------------------- stored audits


def audit_history(
    model: Annotated[str | None, typer.Option("--model", help="Registered model name.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Model version.")] = None,
    verdict: Annotated[
        str | None, typer.Option("--verdict", help="pass, violation or insufficient_data.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Audits to show.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Stored bias audits, newest first (`keelwatch audit list` is the audit log)."""
    from keelwatch.schemas.audits import AuditOut

    if verdict is not None and verdict not in ("pass", "violation", "insufficient_data"):
        fail(f"--verdict: {verdict!r} is not one of pass, violation, insufficient_data")
    filters = {"model": model, "version": version, "verdict": verdict}
    if (remote := remote_client()) is not None:
        params = {key: value for key, value in filters.items() if value is not None}
        audits = [
            AuditOut.model_validate(item) for item in remote.get_all("/audits", params, most=limit)
        ]
    else:
        from keelwatch.monitoring.service.bias_audits import list_audits

        with cli_services() as services, services.db.session() as session:
            records = list_audits(
                session, model=model, version=version, verdict=verdict, limit=limit
            )
        audits = [AuditOut.of(record) for record in records]
    if as_json:
        typer.echo(json.dumps([audit.model_dump(mode="json") for audit in audits], indent=2))
        return
    table = Table(
        "id",
        "computed at",
        "model",
        "version",
        "window",
        "attributes",
        "rows",
        "verdict",
        "violations",
        "by",
        title="bias audits",
    )
    for audit in audits:
        version_text = audit.model_version + (f" @{audit.alias}" if audit.alias else "")
        table.add_row(
            str(audit.id),
            audit.computed_at.isoformat(timespec="seconds"),
            audit.model_name,
            version_text,
            audit.window or audit.source,
            ",".join(audit.attributes),
            f"{audit.rows:,}",
            audit.verdict,
            str(audit.violations),
            audit.computed_by,
        )
    console.print(table)


def audit_show(
    audit_id: Annotated[int, typer.Argument(help="Audit id (see `audit history`).", min=1)],
    as_json: JsonOption = False,
) -> None:
    """One stored bias audit: its verdict and every slice's groups and gaps."""
    from keelwatch.schemas.audits import AuditDetailOut

    if (remote := remote_client()) is not None:
        audit = AuditDetailOut.model_validate(remote.get(f"/audits/{audit_id}"))
    else:
        from keelwatch.monitoring.service.bias_audits import get_audit

        with cli_services() as services, services.db.session() as session:
            audit = AuditDetailOut.of(get_audit(session, audit_id))
    if as_json:
        typer.echo(json.dumps(audit.model_dump(mode="json"), indent=2))
        return
    print_audit(audit.result, audit_title(audit.model_dump()))
    end = audit.window_end.isoformat(timespec="seconds") if audit.window_end else "-"
    console.print(
        f"computed {audit.computed_at.isoformat(timespec='seconds')} by {audit.computed_by}; "
        f"window end {end}; MLflow run {audit.mlflow_run_id or '-'}"
    )


def audit_report(
    audit_id: Annotated[int, typer.Argument(help="Audit id (see `audit history`).", min=1)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Write the HTML here.")],
) -> None:
    """Download a stored bias audit's HTML report."""
    if (remote := remote_client()) is not None:
        html = remote.get_text(f"/audits/{audit_id}/report")
    else:
        from keelwatch.monitoring.service.bias_audits import audit_report_html

        with cli_services() as services, services.db.session() as session:
            html = audit_report_html(session, audit_id)
    _write_text(output, html)
    typer.echo(f"report of audit {audit_id} written to {output}")
