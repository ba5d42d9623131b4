"""``keelwatch moderate FILE`` through the real console script in a subprocess, with no
Keelwatch settings, an empty home directory and nothing written but its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
LINES = [
    b"hello there, lovely weather",
    b"well shit, that failed",
    b"mail me at bob@example.com or call +44 20 7946 0958",
    b"\xff\xfe broken bytes",
    b"",
    b"card 4111 1111 1111 1111\r",
]


def keelwatch(args: list[str], workdir: Path, stdin: bytes | None = None, **env: str) -> Any:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "platform"), str(REPO_ROOT / "workers")]
    )
    environ["HOME"] = str(workdir / "home")
    environ.update(env)
    (workdir / "home").mkdir(exist_ok=True)
    script = Path(sys.executable).with_name("keelwatch")
    return subprocess.run(
        [str(script), *args], env=environ, cwd=workdir, input=stdin, capture_output=True,
        timeout=300,
    )  # fmt: skip


def test_json_lines_per_text_and_nothing_written(tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_bytes(b"\n".join(LINES) + b"\n")
    done = keelwatch(["moderate", str(source), "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    decisions = [r["decision"] for r in rows]
    assert decisions == ["allow", "redact", "redact", "review", "allow", "redact"]
    # The classifier's whole-text finding agrees with the rule's span: only the span goes.
    assert rows[1]["redacted"] == "well [PROFANITY], that failed"
    assert {f["source"] for f in rows[1]["findings"]} == {
        "rules:profanity", "classifier:profanity-check"
    }  # fmt: skip
    assert rows[2]["redacted"] == "mail me at [EMAIL] or call [PHONE]"
    assert rows[3] == {
        "line": 4, "decision": "review", "findings": [], "redacted": "",
        "error": "invalid UTF-8 at byte 0",
    }  # fmt: skip
    assert rows[5]["redacted"] == "card [CREDIT_CARD]"
    email = next(f for f in rows[2]["findings"] if f["kind"] == "email")
    assert email == {"category": "pii", "score": 0.9, "start": 11, "end": 26,
                     "source": "pii", "kind": "email"}  # fmt: skip
    assert rows[0]["error"] is None
    stderr = done.stderr.decode()
    assert "moderated 6 line(s): allow 2, redact 3, review 1, block 0" in stderr
    # Standalone: no data dir, no database, nothing in the home directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "texts.txt"]
    assert not list((tmp_path / "home").rglob("*keelwatch*"))


def test_blocked_text_is_never_printed_in_clear_and_fail_on(tmp_path: Path) -> None:
    thresholds = json.dumps({"profanity": {"block": 0.5}})
    block = {"KEELWATCH_MODERATION__THRESHOLDS": thresholds}
    text = b"this damn thing, shit, is broken\nall good here\n"
    done = keelwatch(["moderate", "-", "--classifier", "none", "--fail-on", "block"], tmp_path,
                     stdin=text, **block)  # fmt: skip
    assert done.returncode == 1, done.stderr
    out = done.stdout.decode()
    assert "shit" not in out and "[PROFANITY]" in out
    header, first, second = out.splitlines()
    assert header.split() == ["line", "decision", "categories", "redacted"]
    assert first.split()[:3] == ["1", "block", "profanity"]
    assert second.split()[:2] == ["2", "allow"]
    review = keelwatch(["moderate", "-", "--fail-on", "review", "--classifier", "none"], tmp_path,
                       stdin=b"fine\n")  # fmt: skip
    assert review.returncode == 0, review.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["moderate", "missing.txt"], "error: cannot read missing.txt: No such file or directory"),
        (["moderate", "."], "error: cannot read .: Is a directory"),
        (["moderate", "-", "--fail-on", "allow"], "--fail-on: 'allow' is not one of block, review"),
        (["moderate", "-", "--classifier", "detoxify"], "use profanity-check, none or models:/"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = keelwatch(args, tmp_path, stdin=b"text\n")
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert done.stdout == b""
