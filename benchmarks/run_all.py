"""Run every benchmark in one go (``make bench``); each prints its own table and ratios.

``make bench BENCH_ARGS=--quick`` passes ``--quick`` to each script (smaller sizes, fewer runs).
``--only NAME`` (repeatable) runs a subset, e.g. ``--only drift_bench``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "alert_delivery_bench",
    "alert_rollback_bench",
    "api_load_bench",
    "auth_overhead_bench",
    "chaos_bench",
    "drift_bench",
    "drift_distributed_bench",
    "evaluation_bench",
    "fairness_bench",
    "gate_torch_bench",
    "inference_bench",
    "moderation_bench",
    "moderation_pii_bench",
    "moderation_rules_bench",
    "predlog_bench",
    "registry_read_bench",
    "rules_bench",
)

#: Benchmarks that need the optional torch extra; skipped with a line when it is absent.
NEEDS_TORCH = frozenset({"gate_torch_bench"})


def main() -> int:
    """Run the selected benchmarks sequentially; non-zero exit if any failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, default=None)
    args = parser.parse_args()
    env = dict(os.environ, DO_NOT_TRACK="1")
    failed: list[str] = []
    for name in args.only or BENCHMARKS:
        if name in NEEDS_TORCH and importlib.util.find_spec("torch") is None:
            print(f"\n=== {name}: skipped (torch is not installed: pip install -e '.[torch]')")
            continue
        command = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else [])]
        print(f"\n=== {name} ({' '.join(command[1:])})", flush=True)
        started = time.perf_counter()
        if subprocess.run(command, env=env, check=False).returncode != 0:
            failed.append(name)
        print(f"=== {name} took {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
