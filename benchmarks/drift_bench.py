"""Drift benchmark: Keelwatch vs Evidently 0.7, a scipy ks_2samp loop and an np.sort floor.

    .venv/bin/python benchmarks/drift_bench.py            # full run (Evidently takes minutes)
    .venv/bin/python benchmarks/drift_bench.py --quick    # fewer repeats, Evidently at 100k only

Peers run in the same process on the same data; every figure is a median of ``--repeats``
runs. The reference is given to Keelwatch as a stored profile (built once, not timed), which is
the deployed path: the reference is never re-sorted. KS statistics and p-values are checked
against the scipy loop (statistic to 1e-12, p-value to 1e-6 relative where p >= 1e-10).
The 20M-row distributed case needs the worker fleet and is not measured here.

Note (numpy#32690): on AMD Zen 4, numpy's AVX-512 sort is ~5x slower than its AVX2 sort; set
``NPY_DISABLE_CPU_FEATURES="AVX512_SKX AVX512F ..."`` *before* numpy is imported there. This
script only reports the CPU; it changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host_platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently telemetry off, before it is imported

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from keelwatch.monitoring.drift import (  # noqa: E402
    DriftConfig,
    build_profile,
    compute_drift,
    save_profile,
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host_platform.processor() or "unknown"


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_data(rows: int, cols: int, shifted: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(cols)]
    ref = pd.DataFrame(rng.normal(size=(rows, cols)), columns=names)
    cur_values = rng.normal(size=(rows, cols))
    # Shifts from clear (0.2 sd) to subtle (0.005 sd): the subtle ones land in scipy's slow
    # p-value branch, which is exactly what a realistic window looks like.
    shifts = np.geomspace(0.2, 0.005, shifted) if shifted else np.array([])
    for j, shift in enumerate(shifts):
        cur_values[:, j] += shift
    return ref, pd.DataFrame(cur_values, columns=names)


def scipy_loop(ref: pd.DataFrame, cur: pd.DataFrame) -> list[tuple[float, float]]:
    from scipy.stats import ks_2samp

    out = []
    for name in ref.columns:
        res = ks_2samp(ref[name].to_numpy(), cur[name].to_numpy())
        out.append((float(res.statistic), float(res.pvalue)))
    return out


def np_sort_floor(cur: pd.DataFrame) -> None:
    for name in cur.columns:
        np.sort(cur[name].to_numpy())


def evidently_run(ref: pd.DataFrame, cur: pd.DataFrame) -> None:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)


def check_agreement(report: object, expected: list[tuple[float, float]], names: list[str]) -> str:
    worst_d, worst_p = 0.0, 0.0
    for name, (d, p) in zip(names, expected, strict=True):
        col = report.column(name)  # type: ignore[attr-defined]
        worst_d = max(worst_d, abs(col.value - d))
        if p >= 1e-10:
            worst_p = max(worst_p, abs(col.pvalue - p) / p)
        elif col.pvalue > 1e-9:
            worst_p = float("inf")
    ok = worst_d <= 1e-12 and worst_p <= 1e-6
    return f"{'identical' if ok else 'MISMATCH'} (max |dD| {worst_d:.1e}, max rel dp {worst_p:.1e})"


RSS_PROBE = """
import resource, sys, time
sys.path.insert(0, {platform!r})
import numpy as np, pandas as pd
from keelwatch.monitoring.drift import DriftConfig, compute_drift, load_profile
cur = pd.DataFrame(np.load({cur!r}), copy=False)
profile = load_profile({profile!r})
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
# Warm up on a slice so lazily imported scipy modules are not counted as working memory.
compute_drift(profile, cur.iloc[:1000], DriftConfig(threads={threads}))
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
before = rss()
# Reset the kernel's peak-RSS mark so loading the profile (zip buffers) is not counted.
open('/proc/self/clear_refs', 'w').write('5')
compute_drift(profile, cur, DriftConfig(threads={threads}))
print(before, hwm())
"""


def peak_rss(cur: pd.DataFrame, profile_path: Path, tmp: Path, threads: int) -> tuple[int, int]:
    cur_path = tmp / "cur.npy"
    np.save(cur_path, np.asfortranarray(cur.to_numpy()))
    code = RSS_PROBE.format(
        platform=str(ROOT / "platform"),
        cur=str(cur_path),
        profile=str(profile_path),
        threads=threads,
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, peak = (int(x) for x in out.stdout.split())
    return before, peak


def cli_times(profile_path: Path, cur_path: Path, repeats: int) -> list[tuple[str, float]]:
    """Wall time of the CLI check, process start included: root script and the sub-app alone."""
    args = ["check", "--reference", str(profile_path), "--current", str(cur_path), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "platform")}
    commands = [
        ("python -m keelwatch.cli.drift check", [sys.executable, "-m", "keelwatch.cli.drift"])
    ]
    exe = Path(sys.executable).with_name("keelwatch")
    if exe.exists():
        commands.append(("keelwatch drift check", [str(exe), "drift"]))
    out = []
    for label, cmd in commands:

        def run(cmd: list[str] = cmd) -> None:
            res = subprocess.run(cmd + args, capture_output=True, env=env, check=False)
            if res.returncode not in (0, 1):
                raise RuntimeError(res.stderr.decode())

        out.append((label, median_time(run, repeats)))
    return out


def bench(
    rows: int, cols: int, shifted: int, args: argparse.Namespace, tmp: Path
) -> dict[str, object]:
    print(f"\n== {rows:,} rows x {cols} columns ({shifted} shifted) ==", flush=True)
    ref, cur = make_data(rows, cols, shifted, seed=rows + cols)
    start = time.perf_counter()
    profile = build_profile(ref, max_sorted_values=rows)
    build_s = time.perf_counter() - start
    profile_path = save_profile(profile, tmp / f"profile_{rows}x{cols}.npz")
    r = args.repeats
    config = DriftConfig()
    results: dict[str, float] = {}
    results["keelwatch"] = median_time(lambda: compute_drift(profile, cur, config), r)
    results["keelwatch_1thread"] = median_time(
        lambda: compute_drift(profile, cur, DriftConfig(threads=1)), r
    )
    scipy_r = max(1, r // 2)
    expected = scipy_loop(ref, cur)
    results["scipy"] = median_time(lambda: scipy_loop(ref, cur), scipy_r)
    results["np_sort"] = median_time(lambda: np_sort_floor(cur), r)
    # PSI decides, KL is reported alongside from the same histogram pass.
    psi_kl = DriftConfig(stattest="psi", extra_stattests=("kl",))
    results["psi_kl"] = median_time(lambda: compute_drift(profile, cur, psi_kl), r)
    agreement = check_agreement(compute_drift(profile, cur, config), expected, list(ref.columns))
    run_evidently = not args.no_evidently and (rows <= 100_000 or not args.quick)
    if run_evidently:
        print("  running Evidently DataDriftPreset ...", flush=True)
        results["evidently"] = median_time(
            lambda: evidently_run(ref, cur), 1 if rows > 100_000 else max(1, r // 3)
        )
    before, peak = peak_rss(cur, profile_path, tmp, threads=0)  # 0: automatic
    cli: list[tuple[str, float]] = []
    if rows <= 100_000:
        cur_path = tmp / f"current_{rows}x{cols}.parquet"
        cur.to_parquet(cur_path)
        cli = cli_times(profile_path, cur_path, max(3, r))
    data_mb = cur.memory_usage(index=False).sum() / 2**20
    kw = results["keelwatch"]
    print(f"  profile build (once, not timed below): {build_s:.2f} s; KS vs scipy: {agreement}")
    print(f"  {'what':52s} {'median':>10s} {'ratio':>26s}")
    lines = [
        ("Keelwatch compute_drift (KS, threads=auto)", kw, ""),
        ("Keelwatch compute_drift (KS, threads=1)", results["keelwatch_1thread"], ""),
        ("scipy ks_2samp column loop", results["scipy"], f"{results['scipy'] / kw:.1f}x slower"),
        (
            "np.sort of every current column (floor)",
            results["np_sort"],
            f"KW = {kw / results['np_sort']:.2f}x floor",
        ),
        (
            "Keelwatch PSI + KL (one pass)",
            results["psi_kl"],
            "target <= 0.1 s" if rows >= 1_000_000 else "",
        ),
    ]
    if "evidently" in results:
        lines.append(
            (
                "Evidently 0.7 DataDriftPreset",
                results["evidently"],
                f"{results['evidently'] / kw:.0f}x slower",
            )
        )
    for label, seconds in cli:
        ratio = (
            f"{results['evidently'] / seconds:.0f}x faster than Ev."
            if "evidently" in results
            else ""
        )
        lines.append((f"CLI `{label}` incl. start", seconds, ratio))
    for label, seconds, ratio in lines:
        print(f"  {label:52s} {seconds:9.3f}s {ratio:>26s}")
    print(
        f"  peak RSS during compute_drift: {peak / 2**20:.0f} MiB (process incl. profile); growth "
        f"{(peak - before) / 2**20:.0f} MiB for {data_mb:.0f} MiB of current data "
        f"({(peak - before) / 2**20 / data_mb:.2f}x)"
    )
    return {
        "rows": rows,
        "cols": cols,
        "medians_s": results,
        "cli_s": dict(cli),
        "agreement": agreement,
        "peak_rss_mib": peak / 2**20,
        "rss_growth_mib": (peak - before) / 2**20,
        "current_mib": data_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; no Evidently at 1M")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    args.repeats = args.repeats or (3 if args.quick else 7)
    print(
        f"CPU: {_cpu_model()} ({os.cpu_count()} logical cores); numpy {np.__version__}; "
        f"NPY_DISABLE_CPU_FEATURES={os.environ.get('NPY_DISABLE_CPU_FEATURES', '<unset>')} "
        "(see numpy#32690 for AMD Zen 4)"
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        out = [bench(100_000, 50, 10, args, tmp), bench(1_000_000, 20, 4, args, tmp)]
    print("\n20M rows x 20 columns on 2 workers: not measured (needs the worker fleet).")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
