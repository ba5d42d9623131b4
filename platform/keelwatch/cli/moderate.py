"""``keelwatch moderate FILE``: moderate one text per line, standalone (no server, no database,
no data dir: nothing is written but the output).

The file (``-``: standard input) is read as bytes and split on ``\\n`` (a ``\\r`` before it is
dropped), so one line of invalid UTF-8 fails closed to ``review`` with a reason while the others
are moderated. The default output is a table (line, decision, categories, redacted text);
``--json`` prints one object per line::

    {"line": 3, "decision": "redact", "findings": [{"category": "pii", "score": 0.9,
     "start": 8, "end": 25, "source": "pii", "kind": "email"}], "redacted": "mail me [EMAIL]",
     "error": null}

Only the redacted text is ever printed (a blocked text never appears in clear). A summary of the
decisions goes to stderr, with a progress bar there for long files when stderr is a terminal.

Exit codes: 0; 1 with ``--fail-on block|review`` when a line reaches that decision (``review``
also counts ``block``); 2 with one line for a missing or unreadable file or a bad option.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keelwatch.cli.support import JsonOption, cli_errors, fail, stderr_console

if TYPE_CHECKING:
    from keelwatch.monitoring.moderation.pipeline import ModerationResult

#: Texts moderated per call (the pipeline's vectorized paths pay off from a few hundred).
BATCH = 2_000
#: Files with more lines than this show a progress bar (when stderr is a terminal).
PROGRESS_MIN_LINES = 20_000
EXIT_REACHED = 1
FAIL_ON = ("block", "review")
# Control characters would move the cursor or recolour the terminal: shown escaped instead.
_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]} | {0x9B: "\\x9b"}


def moderate(
    file: Annotated[
        str, typer.Argument(help="Text file, one text per line (UTF-8); - for standard input.")
    ],
    as_json: JsonOption = False,
    classifier: Annotated[
        str | None,
        typer.Option(
            "--classifier",
            help="profanity-check (default), none, or a registered model models:/name/version "
            "(its output columns named after moderation categories).",
        ),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when any line is decided block (or review: review or block).",
        ),
    ] = None,
) -> None:
    """Moderate one text per line: decision, findings and redacted text."""
    from keelwatch.cli.ops import load_cli_settings
    from keelwatch.monitoring.moderation.policy import Decision
    from keelwatch.monitoring.service.moderators import build_moderator, mlflow_model_loader

    if fail_on is not None and fail_on not in FAIL_ON:
        fail(f"--fail-on: {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    lines = _read_lines(file)
    settings = load_cli_settings()
    moderation = settings.moderation
    if classifier is not None:
        moderation = moderation.model_copy(update={"classifier": classifier})
    with cli_errors():
        moderator = build_moderator(
            moderation,
            model_loader=mlflow_model_loader(
                settings.mlflow.tracking_uri, settings.mlflow.registry_uri
            ),
        )
    counts: Counter[str] = Counter()
    out = sys.stdout
    if not as_json:
        out.write(f"{'line':>6}  {'decision':<8}  {'categories':<24}  redacted\n")
    for first, results in _moderated(moderator, lines):
        rows = []
        for offset, result in enumerate(results):
            counts[result.decision.value] += 1
            number = first + offset + 1
            rows.append(_json_row(number, result) if as_json else _table_row(number, result))
        out.write("\n".join(rows) + "\n" if rows else "")
    out.flush()
    summary = ", ".join(f"{d.value} {counts[d.value]}" for d in Decision)
    stderr_console.print(f"moderated {len(lines)} line(s): {summary}", highlight=False)
    if fail_on is not None:
        threshold = Decision(fail_on).severity
        if any(counts[d.value] for d in Decision if d.severity >= threshold):
            raise typer.Exit(EXIT_REACHED)


def _read_lines(file: str) -> list[bytes]:
    """The file's lines as bytes (a final newline does not start another line)."""
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or type(exc).__name__}")
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _moderated(
    moderator: Any, lines: Sequence[bytes]
) -> Iterator[tuple[int, list[ModerationResult]]]:
    """``(index of the first line, results)`` batch by batch, with a progress bar on a
    terminal's stderr for long inputs."""
    show = len(lines) >= PROGRESS_MIN_LINES and sys.stderr.isatty()
    if show:
        from rich.progress import Progress

        progress: Any = Progress(console=stderr_console, transient=True)
    else:
        progress = nullcontext()
    with progress:
        task = progress.add_task("moderating", total=len(lines)) if show else None
        for first in range(0, len(lines), BATCH):
            batch = lines[first : first + BATCH]
            yield first, moderator.moderate_many(batch)
            if show:
                progress.advance(task, len(batch))


def _json_row(number: int, result: ModerationResult) -> str:
    return json.dumps(
        {
            "line": number,
            "decision": result.decision.value,
            "findings": [
                {
                    "category": f.category.value,
                    "score": round(f.score, 6),
                    "start": f.start,
                    "end": f.end,
                    "source": f.source,
                    "kind": f.kind,
                }
                for f in result.findings
            ],
            "redacted": result.redacted,
            "error": result.error or None,
        },
        ensure_ascii=False,
    )


def _table_row(number: int, result: ModerationResult) -> str:
    categories = ",".join(c.value for c in result.categories) or "-"
    shown = f"({result.error})" if result.error else result.redacted.translate(_CONTROL)
    return f"{number:>6}  {result.decision.value:<8}  {categories:<24}  {shown}"
