"""Load on a real API (issue #13 item 7, "load"): ``GET /models`` and ``POST /predictions/labels``
at 16 connections for 30 s each (``--quick``: 5 s), on loopback.

The API is started with the compose file's ``api`` command (``keelwatch api --host ...
--port ...``) on Keelwatch's embedded defaults: a SQLite database and an MLflow SQLite store in
a temporary folder (``--db postgresql`` puts Keelwatch's database on a throw-away PostgreSQL
database; ``--store server`` puts MLflow behind ``mlflow server`` as in compose). The registry
read cache keeps its default TTL, so ``GET /models`` takes the cached path
(:mod:`keelwatch.registry.cache`). Every request carries an operator API token, so the token
check is part of each request; the per-token rate limit is raised, not switched off, so the
server is measured rather than the limiter's refusals.

Set up once, not timed: ``--models`` registered models with an approved champion
(``registry_read_bench.seed_registry``) and ``--predictions`` logged predictions of the first.
Each scenario gets one request (the first MLflow call takes seconds) and a 1 s warm-up
before its timed window.

* ``GET /models``: the first page of the model list.
* ``POST /predictions/labels``: batches of ``--batch`` labels (10) for consecutive logged
  request ids from a random start, each label 0 or 1 at random, so a batch never repeats an
  id and most requests insert or update rather than find the same label.

Load: ``wrk`` (Debian package ``wrk``; the POST uses a Lua script written next to the data)
when installed, else a Python asyncio loop over keep-alive HTTP/1.1 connections. Printed per
scenario: requests/s, p50, p99, requests, errors (non-2xx and socket errors), and for
``GET /models`` the ratios against the issue's baseline (76 requests/s, p50 185 ms).
Exit status 1 when any request failed.

Usage: ``python benchmarks/api_load_bench.py [--quick] [--duration S] [--connections N]
[--models N] [--predictions N] [--batch N] [--db sqlite|postgresql] [--store sqlite|server]
[--load wrk|python]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers"), str(ROOT / "benchmarks")]

from inference_bench import bench_database  # noqa: E402
from registry_read_bench import (  # noqa: E402
    MODEL_PREFIX,
    LoadResult,
    api_server,
    mlflow_server,
    run_python,
    run_wrk,
    seed_registry,
)

if TYPE_CHECKING:
    from keelwatch.settings import Settings

#: Issue #13: GET /models at 16 connections before the registry read cache.
BASELINE_RPS = 76.0
BASELINE_P50_MS = 185.0
REQUEST_ID = "bench-req-{:07d}"
#: Far above what 16 connections on loopback reach: the limiter still runs on every request.
UNLIMITED_RATE = 1_000_000

LABELS_SCRIPT = """\
-- POST /predictions/labels: BATCH labels for consecutive logged request ids from a random
-- start (no id twice in one batch), each label 0 or 1 at random. The bearer token comes from
-- wrk's -H option.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local ids, batch = {ids}, {batch}

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + id)
end

function request()
  local start = math.random(0, ids - 1)
  local parts = {{}}
  for i = 0, batch - 1 do
    local rid = string.format("bench-req-%07d", (start + i) % ids)
    parts[#parts + 1] = string.format('{{"request_id":"%s","label":%d}}', rid, math.random(0, 1))
  end
  return wrk.format(nil, nil, nil, '{{"labels":[' .. table.concat(parts, ",") .. ']}}')
end
"""


def seed_predictions(settings: Settings, count: int) -> None:
    """``count`` logged predictions of the first benchmark model (request ids 0..count-1)."""
    from keelwatch.entities import PredictionRecord
    from keelwatch.storage.db import Database
    from keelwatch.storage.predictions import bulk_write_predictions

    start = datetime(2025, 7, 1, tzinfo=UTC)
    records = [
        PredictionRecord(
            request_id=REQUEST_ID.format(i),
            model_name=f"{MODEL_PREFIX}0",
            model_version="1",
            inputs={"income": float(i % 97), "debt": float(i % 11)},
            outputs={"prediction": i % 2},
            latency_ms=1.0,
            created_at=start + timedelta(milliseconds=i),
        )
        for i in range(count)
    ]
    database = Database(settings.database.url)
    try:
        bulk_write_predictions(database.engine, records)
    finally:
        database.dispose()


def label_batch(ids: int, batch: int, rng: random.Random) -> Callable[[], bytes]:
    """The Python loop's body maker: the same batches as the Lua script."""

    def body() -> bytes:
        start = rng.randrange(ids)
        labels = [
            {"request_id": REQUEST_ID.format((start + i) % ids), "label": rng.randint(0, 1)}
            for i in range(batch)
        ]
        return json.dumps({"labels": labels}).encode()

    return body


def operator_token(settings: Settings) -> str:
    """An operator token (``POST /predictions/labels`` needs operator; GET needs viewer)."""
    from keelwatch.auth.secrets_file import server_secret
    from keelwatch.auth.tokens import create_token
    from keelwatch.entities.auth import Role
    from keelwatch.entities.time import utcnow
    from keelwatch.storage.db import Database

    database = Database(settings.database.url)
    try:
        with database.session() as session:
            issued = create_token(
                session,
                server_secret(settings),
                name="api-load-bench",
                role=Role.OPERATOR,
                actor="bench",
                now=utcnow(),
            )
    finally:
        database.dispose()
    return issued.secret


def prime(url: str, token: str, body: bytes | None) -> None:
    """One request before any load: the API's first MLflow call (the import, the store's
    connection, the cache's first load) takes seconds and would otherwise eat the window."""
    import httpx

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    method = "GET" if body is None else "POST"
    response = httpx.request(method, url, headers=headers, content=body, timeout=120.0)
    if response.status_code != 200:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:500]}")


def labelled(settings: Settings, count: int) -> int:
    """How many of the ``count`` logged predictions have a label now (the POSTs landed)."""
    from keelwatch.storage.db import Database
    from keelwatch.storage.labels import get_labels

    database = Database(settings.database.url)
    try:
        with database.session() as session:
            return len(get_labels(session, [REQUEST_ID.format(i) for i in range(count)]))
    finally:
        database.dispose()


def print_table(results: dict[str, LoadResult]) -> None:
    """One row per scenario, then GET /models against the issue's baseline."""
    print(
        f"{'scenario':<26}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'requests':>10}{'errors':>8}"
    )
    for name, result in results.items():
        print(
            f"{name:<26}{result.requests_per_s:>12.1f}{result.p50_ms:>10.1f}"
            f"{result.p99_ms:>10.1f}{result.requests:>10}{result.errors:>8}"
        )
    models = results["GET /models"]
    rps_ratio = models.requests_per_s / BASELINE_RPS
    p50_ratio = BASELINE_P50_MS / models.p50_ms if models.p50_ms else 0.0
    print(
        f"GET /models vs the issue's baseline ({BASELINE_RPS:g} requests/s, p50 "
        f"{BASELINE_P50_MS:g} ms): {rps_ratio:.1f}x the throughput, p50 {p50_ratio:.1f}x lower"
    )


def main() -> int:
    """Seed, start the API, load each scenario, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per scenario")
    parser.add_argument("--duration", type=float, default=None, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--predictions", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=10, help="labels per POST")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--store", choices=("sqlite", "server"), default="sqlite")
    parser.add_argument("--load", choices=("wrk", "python"), default=None)
    args = parser.parse_args()
    duration = args.duration or (5.0 if args.quick else 30.0)
    load = args.load or ("wrk" if shutil.which("wrk") else "python")

    from keelwatch.settings import Settings
    from keelwatch.storage.db import upgrade_database

    results: dict[str, LoadResult] = {}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kw-apiload-")))
        database = {} if args.db == "sqlite" else {"url": stack.enter_context(bench_database())}
        mlflow: dict[str, str] = {}
        if args.store == "server":
            uri = stack.enter_context(mlflow_server(folder))
            mlflow = {
                "tracking_uri": uri,
                "registry_uri": uri,
                "artifact_root": "mlflow-artifacts:/",
            }
        settings = Settings(
            data_dir=folder / "data",
            database=database,
            mlflow=mlflow,
            auth={"rate_limit_per_s": UNLIMITED_RATE, "rate_limit_burst": UNLIMITED_RATE},
        )
        settings.ensure_data_dir()
        upgrade_database(settings.database.url)
        seed_registry(settings, args.models)
        seed_predictions(settings, args.predictions)
        token = operator_token(settings)
        script = folder / "labels.lua"
        script.write_text(LABELS_SCRIPT.format(ids=args.predictions, batch=args.batch))
        body = label_batch(args.predictions, args.batch, random.Random(13))

        def run(url: str, seconds: float, post: bool) -> LoadResult:
            if load == "wrk":
                return run_wrk(url, token, args.connections, seconds, script if post else None)
            return run_python(url, token, args.connections, seconds, body if post else None)

        print(
            f"{args.connections} connections, {duration:g} s per scenario, load: {load}, "
            f"database: {args.db}, MLflow: {args.store}, {args.models} models, "
            f"{args.predictions} logged predictions, {args.batch} labels per POST"
        )
        # The compose file's api command; the default read-cache TTL (cached GET /models).
        api = stack.enter_context(
            api_server(settings, folder, cache_ttl_s=settings.registry.read_cache_ttl_s)
        )
        for name, path, post in (
            ("GET /models", "/models", False),
            ("POST /predictions/labels", "/predictions/labels", True),
        ):
            prime(f"{api}{path}", token, body() if post else None)
            run(f"{api}{path}", 1.0, post)  # warm-up, not counted
            results[name] = run(f"{api}{path}", duration, post)

        stored = labelled(settings, args.predictions)

    print_table(results)
    print(f"labelled predictions after the run: {stored} of {args.predictions}")
    return 1 if any(result.errors for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
