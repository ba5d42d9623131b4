"""Chaos at full size (issue #13 item 7): what faults cost in rows, as a table.

Runs the scenarios of ``tests/integration/chaos_scenarios.py`` (the bounded suite runs the same
code with small numbers) on real processes, each on a throw-away PostgreSQL database
``kw_bench_*``, a free Redis database and a fresh MLflow store under ``benchmarks/.data`` (all
removed after):

* ``worker-kill``: 20 jobs of 10 chunks, two compose workers (``keelwatch worker --role cpu
  --concurrency 2``); a worker holding a chunk is SIGKILLed (process group) and started again,
  20 times; the reconciler (lost after 6 s) resends what the dead worker held;
* ``broker-restart``: a ``redis-server`` of its own killed and started empty mid-job, 3 times;
* ``pg-terminate``: 10 bursts of ``pg_terminate_backend`` on the job database mid-job;
* ``mlflow-down-promote``: promotions through the API with the MLflow server SIGKILLed or
  SIGSTOPped, 3 times.

Prints one row per scenario (runs = kills, restarts, bursts or outages) and exits 1 when any row
was lost, duplicated or wrong, any job hung, or a scenario found another problem.

Usage: ``python benchmarks/chaos_bench.py [--quick] [--only SCENARIO] [--kills N] [--jobs N]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform"), str(ROOT / "workers")]

from tests.integration.chaos import (  # noqa: E402
    BOUNDED,
    FULL,
    ChaosEnv,
    ChaosResult,
    ChaosSizes,
    format_table,
)
from tests.integration.chaos_scenarios import RUNNERS, SCENARIOS  # noqa: E402

from inference_bench import DATA_ROOT, bench_database, free_redis_db  # noqa: E402


def run(name: str, sizes: ChaosSizes, folder: Path) -> ChaosResult:
    """One scenario on fresh resources."""
    folder.mkdir(parents=True)
    with bench_database() as db_url, free_redis_db() as redis_url:
        env = ChaosEnv(folder, db_url, redis_url, f"sqlite:///{folder / 'mlflow.db'}")
        return RUNNERS[name](env, sizes)


def main() -> int:
    """Run the chosen scenarios, print the table; 1 if anything was lost, duplicated or hung."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the bounded suite's sizes")
    parser.add_argument("--only", action="append", choices=SCENARIOS, default=None)
    parser.add_argument("--kills", type=int, help="worker kills (default 20; quick 4)")
    parser.add_argument("--jobs", type=int, help="jobs in worker-kill (default 20; quick 4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = BOUNDED if args.quick else FULL
    if args.kills is not None:
        sizes = dataclasses.replace(sizes, worker_kills=args.kills)
    if args.jobs is not None:
        sizes = dataclasses.replace(sizes, worker_kill_jobs=args.jobs)

    os.environ.setdefault("DO_NOT_TRACK", "1")
    run_dir = DATA_ROOT / f"chaos-{uuid.uuid4().hex[:8]}"
    results: list[ChaosResult] = []
    try:
        for name in args.only or SCENARIOS:
            print(f"--- {name} ...", flush=True)
            started = time.perf_counter()
            results.append(run(name, sizes, run_dir / name))
            print(f"--- {name} took {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    print()
    print(
        f"Chaos: {sizes.worker_kill_jobs} jobs x {sizes.chunks_per_job} chunks x "
        f"{sizes.chunk_rows} rows under {sizes.worker_kills} worker kills; Redis broker, "
        "PostgreSQL, prediction log sampled at 1.0"
    )
    print(format_table(results))
    failed = [r.scenario for r in results if not r.ok]
    print("verdict: " + (f"FAILED ({', '.join(failed)})" if failed else "nothing lost or hung"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "chaos",
                    "sizes": dataclasses.asdict(sizes),
                    "results": [dataclasses.asdict(r) for r in results],
                },
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
