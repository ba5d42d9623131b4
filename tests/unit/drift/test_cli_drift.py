"""The standalone ``keelwatch drift`` sub-app: real files, exit codes, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from keelwatch.cli.drift import (
    EXIT_BAD_INPUT,
    EXIT_DRIFT,
    EXIT_INSUFFICIENT_DATA,
    EXIT_NO_DRIFT,
    drift_app,
)

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 3_000
    ref = pd.DataFrame(
        {"age": rng.normal(40, 10, n), "plan": rng.choice(["a", "b"], n), "y": rng.uniform(size=n)}
    )
    same = pd.DataFrame(
        {"age": rng.normal(40, 10, n), "plan": rng.choice(["a", "b"], n), "y": rng.uniform(size=n)}
    )
    drifted = same.assign(age=same["age"] + 8)
    paths = {"ref": tmp_path / "ref.csv", "same": tmp_path / "same.parquet"}
    paths["drifted"] = tmp_path / "drifted.csv"
    ref.to_csv(paths["ref"], index=False)
    same.to_parquet(paths["same"])
    drifted.to_csv(paths["drifted"], index=False)
    paths["profile"] = tmp_path / "ref.npz"
    return paths


def test_profile_then_check(files: dict[str, Path]) -> None:
    res = runner.invoke(drift_app, ["profile", str(files["ref"]), "--out", str(files["profile"])])
    assert res.exit_code == 0, res.output
    assert "Profiled 3000 rows, 3 columns" in res.output
    res = runner.invoke(
        drift_app, ["check", "-r", str(files["profile"]), "-c", str(files["drifted"])]
    )
    assert res.exit_code == EXIT_DRIFT, res.output
    assert "DRIFT" in res.output and "age" in res.output
    res = runner.invoke(drift_app, ["check", "-r", str(files["profile"]), "-c", str(files["same"])])
    assert res.exit_code == EXIT_NO_DRIFT, res.output


def test_check_json_with_data_file_reference_and_forced_stattest(files: dict[str, Path]) -> None:
    res = runner.invoke(
        drift_app,
        ["check", "--reference", str(files["ref"]), "--current", str(files["drifted"]), "--json"],
    )
    assert res.exit_code == EXIT_DRIFT
    data = json.loads(res.output)
    age = next(c for c in data["columns"] if c["column"] == "age")
    assert age["statistic"] == "ks" and age["drifted"] is True
    assert {"value", "pvalue", "qvalue"} <= set(age)
    assert data["dataset_drifted"] is True
    res = runner.invoke(
        drift_app,
        [
            "check",
            "-r",
            str(files["ref"]),
            "-c",
            str(files["drifted"]),
            "--stattest",
            "psi",
            "--json",
        ],
    )
    assert {c["statistic"] for c in json.loads(res.output)["columns"]} == {"psi"}


@pytest.mark.parametrize(
    "window",
    [
        "other,columns\n1,2\n3,4\n",  # none of the reference's columns
        "age,plan,y\n",  # header only
        "age,plan,y\n41,a,0.5\n39,b,0.2\n",  # fewer values than any test needs
    ],
    ids=["no-shared-columns", "header-only", "too-few-rows"],
)
def test_insufficient_data_has_its_own_exit_code_and_words(
    files: dict[str, Path], tmp_path: Path, window: str
) -> None:
    current = tmp_path / "window.csv"
    current.write_text(window)
    args = ["check", "-r", str(files["ref"]), "-c", str(current)]
    res = runner.invoke(drift_app, args)
    assert res.exit_code == EXIT_INSUFFICIENT_DATA == 3, res.output
    text = " ".join(res.output.split())
    assert "Insufficient data: no column could be tested" in text
    assert "no drift" not in text.lower().replace("not a 'no drift' verdict", "")
    res = runner.invoke(drift_app, [*args, "--json"])
    assert res.exit_code == EXIT_INSUFFICIENT_DATA
    assert json.loads(res.output)["status"] == "insufficient_data"


def test_an_untested_column_reads_insufficient_data_in_the_table(
    files: dict[str, Path], tmp_path: Path
) -> None:
    # age is present but empty: untested; plan is tested: the check is a real "no drift".
    current = tmp_path / "window.csv"
    rows = "\n".join(f",{'ab'[i % 2]},0.5" for i in range(200))
    current.write_text(f"age,plan,y\n{rows}\n")
    res = runner.invoke(
        drift_app, ["check", "-r", str(files["ref"]), "-c", str(current), "--column-stattest",
                    "y=psi"],
    )  # fmt: skip
    assert res.exit_code in (EXIT_DRIFT, EXIT_NO_DRIFT), res.output
    age_row = next(line for line in res.output.splitlines() if "│ age" in line)
    assert "insufficient data" in age_row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "-r", "{profile}", "-c", "{missing}"], "no such file"),
        (["check", "-r", "{ref}", "-c", "{ref}", "--stattest", "magic"], "unknown statistic"),
        (["check", "-r", "{junk}", "-c", "{ref}"], "not a readable profile"),
        (["check", "-r", "{ref}", "-c", "{junktxt}"], "expected a data file"),
        (["check", "-r", "{ref}", "-c", "{badcsv}"], "cannot read data"),
        (["profile", "{missing}", "--out", "{out}"], "no such file"),
        (["profile", "{ref}", "--out", "{junktxt}"], "saved as .npz"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    files: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "junk.npz").write_bytes(b"nope")
    (tmp_path / "junk.txt").write_text("nope")
    (tmp_path / "bad.csv").write_bytes(b"")
    runner.invoke(drift_app, ["profile", str(files["ref"]), "--out", str(files["profile"])])
    names = {
        "profile": files["profile"],
        "ref": files["ref"],
        "missing": tmp_path / "missing.csv",
        "junk": tmp_path / "junk.npz",
        "junktxt": tmp_path / "junk.txt",
        "badcsv": tmp_path / "bad.csv",
        "out": tmp_path / "out.npz",
    }
    res = runner.invoke(
        drift_app, [a.format(**{k: str(v) for k, v in names.items()}) for a in args]
    )
    assert res.exit_code == EXIT_BAD_INPUT
    assert message in " ".join(res.output.split())  # Rich wraps long lines
    assert "Traceback" not in res.output


def test_importing_the_cli_module_stays_light() -> None:
    code = (
        "import sys, keelwatch.cli.drift; "
        "print(sorted(m for m in ('pandas', 'scipy', 'mlflow', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).parents[3] / "platform")},
    )
    assert out.stdout.strip() == "[]"


def test_also_column_overrides_and_roles(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 4_000
    ref = pd.DataFrame(
        {"x": rng.normal(size=n), "score": rng.uniform(size=n), "label": rng.integers(0, 2, n)}
    )
    cur = pd.DataFrame(
        {"x": rng.normal(size=n), "score": rng.uniform(0.2, 1, n), "label": rng.integers(0, 2, n)}
    )
    ref_path, cur_path = tmp_path / "ref.csv", tmp_path / "cur.parquet"
    ref.to_csv(ref_path, index=False)
    cur.to_parquet(cur_path)
    args = ["check", "-r", str(ref_path), "-c", str(cur_path)]
    res = runner.invoke(
        drift_app,
        [*args, "--prediction", "score", "--target", "label", "--also", "psi,kl", "--json"],
    )
    # Only the prediction drifted: the exit code still says drift.
    assert res.exit_code == EXIT_DRIFT, res.output
    data = json.loads(res.output)
    assert data["dataset_drifted"] is False and data["prediction_drifted"] is True
    assert data["target_drifted"] is False
    x = next(c for c in data["columns"] if c["column"] == "x")
    assert set(x["extra"]) == {"psi", "kl"} and x["role"] == "feature"
    res = runner.invoke(drift_app, [*args, "--column-stattest", "x=wasserstein", "--json"])
    x = next(c for c in json.loads(res.output)["columns"] if c["column"] == "x")
    assert x["statistic"] == "wasserstein"
    res = runner.invoke(drift_app, [*args, "--prediction", "score", "--also", "psi"])
    assert "score (prediction)" in res.output and "Predictions: DRIFT" in res.output

    profile = tmp_path / "ref.npz"
    res = runner.invoke(
        drift_app, ["profile", str(ref_path), "-o", str(profile), "--prediction", "score"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(drift_app, ["check", "-r", str(profile), "-c", str(cur_path), "--json"])
    assert json.loads(res.output)["prediction_drifted"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--column-stattest", "x"], "COLUMN=STATISTIC"),
        (["--column-stattest", "nope=ks"], "unknown column"),
        (["--prediction", "y", "--target", "y"], "both a prediction and the target"),
        (["--target", "nope"], "unknown column"),
        (["--also", "magic"], "unknown statistic"),
    ],
)
def test_bad_options_exit_2(files: dict[str, Path], extra: list[str], message: str) -> None:
    res = runner.invoke(
        drift_app, ["check", "-r", str(files["ref"]), "-c", str(files["same"]), *extra]
    )
    assert res.exit_code == EXIT_BAD_INPUT, res.output
    assert message in " ".join(res.output.split())


def test_roles_on_a_profile_reference_are_refused(files: dict[str, Path]) -> None:
    runner.invoke(drift_app, ["profile", str(files["ref"]), "--out", str(files["profile"])])
    res = runner.invoke(
        drift_app,
        ["check", "-r", str(files["profile"]), "-c", str(files["same"]), "--target", "y"],
    )
    assert res.exit_code == EXIT_BAD_INPUT
    assert "a profile carries its roles" in " ".join(res.output.split())


def test_check_with_a_profile_imports_neither_pandas_nor_scipy_stats(
    files: dict[str, Path],
) -> None:
    # The CLI's speed target includes process start: every import is paid on every call.
    runner.invoke(drift_app, ["profile", str(files["ref"]), "--out", str(files["profile"])])
    code = (
        "import sys\n"
        "from keelwatch.cli.drift import drift_app\n"
        f"args = ['check', '-r', {str(files['profile'])!r}, '-c', {str(files['same'])!r}, "
        "'--json', '--ks-method', 'asymp']\n"
        "try:\n"
        "    drift_app(args)\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in ('pandas', 'scipy.stats') if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "[]"
