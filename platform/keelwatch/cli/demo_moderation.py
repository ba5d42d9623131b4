"""Demo step 12: a text model's prompts and replies moderated on the batch-inference path.

A template "support assistant" (:mod:`keelwatch.examples.support_assistant`) is registered with
the text-model tag and scores 2,000 customer prompts on a real worker. Its replies repeat
contact details (redacted), a prompt injection gets abuse back (blocked: the output file holds
no reply, the prediction log only the redacted one), and a customer in distress is sent to a
person (review queue). The block rate crosses the demo's rule and its alert fires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from keelwatch.entities.moderation import ReviewItem
    from keelwatch.wiring import Services

TEXT_MODEL = "support-assistant"
PROMPT_ROWS = 2_000
RULE_NAME = "assistant-replies-blocked"
#: Fire when more than 1 in 2,000 of the assistant's replies in the last hour was blocked.
RULES_YAML = f"""\
rules:
  - name: {RULE_NAME}
    signal: moderation.block_rate
    matchers: '{{model="{TEXT_MODEL}", direction="output"}}'
    comparison: ">"
    threshold: 0.0005
    for: 0s
    severity: warning
    annotations:
      summary: >-
        {{{{ $labels.model }}}} v{{{{ $labels.version }}}}: replies blocked by moderation
        above 1 in 2,000
"""


@dataclass
class ModerationDemoResult:
    """What the moderation step did, for the e2e test and the summary."""

    version: str = ""
    job_id: str = ""
    output_dir: str = ""
    decisions: dict[str, dict[str, int]] = field(default_factory=dict)
    """Direction (input, output) → decision → texts."""
    review_items: list[ReviewItem] = field(default_factory=list)
    blocked_rows: list[int] = field(default_factory=list)
    """Rows whose reply was blocked (null in the output file)."""
    alert_state: str = ""


def run_moderation_step(
    services: Services, actor: str, console: Console, *, timeout_s: float
) -> ModerationDemoResult:
    """Register the assistant, apply the rule, score the prompts on a real worker, show the
    decisions, the review queue and the alert."""
    from keelwatch.cli.demo import start_worker, stop_worker
    from keelwatch.examples.support_assistant import log_and_register, make_prompts

    settings = services.settings
    result = ModerationDemoResult()
    console.print(
        "[bold]12.[/] content moderation: a text model's prompts and replies on the batch path"
    )
    version = log_and_register(services.registry, TEXT_MODEL, actor=actor)
    result.version = version.version
    console.print(
        f"   registered {TEXT_MODEL} v{result.version}, tagged keelwatch.text_model "
        "(inputs=prompt; outputs=reply)"
    )
    _apply_rule(services, actor)
    prompts_path = settings.data_dir / "demo-prompts.parquet"
    make_prompts(PROMPT_ROWS).to_parquet(prompts_path, index=False)
    worker = start_worker(settings, settings.data_dir / "demo-moderation-worker.log")
    try:
        result.job_id = _score(services, prompts_path, actor, console, timeout_s)
    finally:
        stop_worker(worker, console)
    _collect(services, result)
    _show(result, console)
    return result


def _apply_rule(services: Services, actor: str) -> None:
    from keelwatch.alerting.service import apply_rules
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.entities.time import utcnow

    with services.db.session() as session:
        apply_rules(session, RULES_YAML, actor, known_signal_names(), now=utcnow(), source="demo")


def _score(
    services: Services, prompts_path: Path, actor: str, console: Console, timeout_s: float
) -> str:
    from keelwatch.cli.demo import wait_for_job
    from keelwatch.contract import BatchInferenceRequest
    from keelwatch.inference import submit_batch_inference

    job = submit_batch_inference(
        services.db,
        services.sender,
        services.registry,
        services.settings.inference,
        BatchInferenceRequest(
            model=f"{TEXT_MODEL}@champion",
            input_uri=str(prompts_path),
            chunk_rows=PROMPT_ROWS // 2,
            log_sample_rate=1.0,
        ),
        actor=actor,
        text_model_tag=services.settings.moderation.text_model_tag,
    )
    finished = wait_for_job(services, job.id, console, timeout_s)
    if finished.status != "succeeded":
        raise RuntimeError(f"batch job {job.id} {finished.status}: {finished.error}")
    console.print(f"   scored {finished.rows_done:,} prompts (job {job.id})")
    return job.id


def _collect(services: Services, result: ModerationDemoResult) -> None:
    import pandas as pd

    from keelwatch.monitoring.service.review_queue import list_review_items
    from keelwatch.storage.alerts import list_alerts
    from keelwatch.storage.jobs import get_job

    with services.db.session() as session:
        job = get_job(session, result.job_id)
        items, _ = list_review_items(session, model_name=TEXT_MODEL, limit=50)
        alerts = list_alerts(session, rule_name=RULE_NAME, limit=10)
    result.review_items = items
    result.alert_state = alerts[0].state.value if alerts else "none"
    result.output_dir = str(job.params["output_dir"])
    frame = pd.read_parquet(Path(result.output_dir)).sort_values("row_index").reset_index(drop=True)
    for direction, column in (("input", "prompt_moderation"), ("output", "reply_moderation")):
        counts = frame[column].value_counts()
        result.decisions[direction] = {str(k): int(v) for k, v in counts.items()}
    blocked = frame[frame["reply_moderation"] == "block"]
    result.blocked_rows = [int(row) for row in blocked["row_index"]]


def _show(result: ModerationDemoResult, console: Console) -> None:
    from rich.table import Table

    table = Table(
        title=f"{TEXT_MODEL} v{result.version}: moderation decisions (job {result.job_id})"
    )
    table.add_column("direction")
    for decision in ("allow", "redact", "review", "block"):
        table.add_column(decision, justify="right")
    for direction, counts in result.decisions.items():
        table.add_row(
            direction, *(f"{counts.get(d, 0):,}" for d in ("allow", "redact", "review", "block"))
        )
    console.print(table)
    for item in result.review_items[:3]:
        console.print(
            f"   review queue #{item.id} ({item.direction}, {', '.join(item.categories) or '-'}): "
            f"{_quote(item.text)}",
            highlight=False,
        )
    console.print(
        f"   blocked replies (rows {', '.join(map(str, result.blocked_rows)) or 'none'}) are null "
        "in the output file and kept only redacted in the prediction log"
    )
    console.print(f"   alert {RULE_NAME}: {result.alert_state}")


def _quote(text: str, limit: int = 90) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def summary_lines(env_prefix: str) -> list[str]:
    """The summary panel's lines for this step."""
    return [
        f"Review queue:     {env_prefix}.venv/bin/keelwatch review list  "
        "(or the page: /review on `keelwatch up`)",
        f"Moderation rates: {env_prefix}.venv/bin/keelwatch moderation rates --model {TEXT_MODEL}",
        "Moderate a file:  .venv/bin/keelwatch moderate FILE [--json]",
    ]
