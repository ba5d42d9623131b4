"""``GET /models`` at 16 connections, with and without the registry read cache (target: >= 10x
the 76 requests/s measured before the cache, i.e. >= 760 requests/s, with p99 <= 100 ms).

Everything runs on loopback as in production: an MLflow tracking server started like the
compose file's ``mlflow`` service (``mlflow server ... --serve-artifacts --workers 2``, backed by
SQLite in a temporary folder; ``--store sqlite`` uses an embedded SQLite store instead), and
the API started with the compose file's ``api`` command (``keelwatch api --host ... --port
...``), once with ``KEELWATCH_REGISTRY__READ_CACHE_TTL_S=0`` (every request goes to MLflow)
and once with the default TTL (5 s; cached reads, invalidated by Keelwatch's own writes).
Keelwatch's database is SQLite (default) or a throw-away PostgreSQL database (``--db
postgresql``). Requests carry a viewer API token, so the token check is part of each request.

Set up once, not timed: ``--models`` registered models (one scikit-learn run, registered under
each name), each with v1 approved and promoted to champion. Each API process gets a short
warm-up (imports, first MLflow connection) before the timed window.

Load: ``wrk`` (Debian package ``wrk``) when installed, else a Python asyncio loop over raw
keep-alive HTTP/1.1 connections. Either way: 16 connections for ``--duration`` seconds (10,
``--quick`` 3), printing requests/s, p50, p99, errors (non-2xx and socket errors) per mode and
the cached/uncached ratio.

Usage: ``python benchmarks/registry_read_bench.py [--quick] [--duration S] [--connections N]
[--models N] [--db sqlite|postgresql] [--store server|sqlite] [--load wrk|python]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers"), str(ROOT / "benchmarks")]

from inference_bench import bench_database  # noqa: E402

if TYPE_CHECKING:
    from keelwatch.settings import Settings

BASELINE_RPS = 76.0  # issue #13: GET /models at 16 connections before the cache
TARGET_RATIO = 10.0
TARGET_P99_MS = 100.0
MODEL_PREFIX = "bench-model-"


@dataclass(frozen=True)
class LoadResult:
    """One timed window of load."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200 (fail with the process's log if it dies first)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited early:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not up after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command``, wait for ``ready_url``, SIGTERM (then SIGKILL) it afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(ready_url, process, log, timeout=120)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """The compose file's MLflow server command, on loopback, backed by SQLite in ``folder``."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(folder / "mlartifacts"),
        "--default-artifact-root",
        "mlflow-artifacts:/",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--allowed-hosts",
        f"127.0.0.1:{port},localhost:{port}",
    ]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", DO_NOT_TRACK="1")
    url = f"http://127.0.0.1:{port}"
    with running(command, env, folder / "mlflow-server.log", f"{url}/health"):
        yield url


@contextlib.contextmanager
def api_server(settings: Settings, folder: Path, *, cache_ttl_s: float) -> Iterator[str]:
    """``keelwatch api --host 127.0.0.1 --port N`` (compose's api command) for ``settings``."""
    from keelwatch.cli.environment import child_environment

    port = free_port()
    env = child_environment(settings)
    env["KEELWATCH_REGISTRY__READ_CACHE_TTL_S"] = str(cache_ttl_s)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), env.get("PYTHONPATH", "")])
    env["DO_NOT_TRACK"] = "1"
    command = [sys.executable, "-m", "keelwatch.cli.app", "api", "--host", "127.0.0.1"]
    url = f"http://127.0.0.1:{port}"
    log = folder / f"api-ttl-{cache_ttl_s:g}.log"
    with running([*command, "--port", str(port)], env, log, f"{url}/healthz"):
        yield url


# --------------------------------------------------------------------------- setup


def seed_registry(settings: Settings, models: int) -> str:
    """``models`` registered models with an approved champion v1; returns a viewer token."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from keelwatch.auth.secrets_file import server_secret
    from keelwatch.auth.tokens import create_token
    from keelwatch.entities.auth import Role
    from keelwatch.entities.time import utcnow
    from keelwatch.wiring import Services

    rows = range(40)
    frame = pd.DataFrame(
        {
            "income": [float(i) for i in rows],
            "debt": [float((i * 7) % 11) for i in rows],
            "default": [int(i >= 20) for i in rows],
        }
    )
    model = LogisticRegression(max_iter=200).fit(frame[["income", "debt"]], frame["default"])
    services = Services(settings)
    try:
        registry = services.registry
        first = registry.register_sklearn_model(
            f"{MODEL_PREFIX}0", model, frame, "default", actor="bench"
        )
        for index in range(models):
            name = f"{MODEL_PREFIX}{index}"
            if index:
                registry.register_version(name, run_id=str(first.run_id), actor="bench")
            registry.approve(name, "1", actor="bench", reason="bench")
            registry.promote(name, "1", actor="bench", reason="bench")
        with services.db.session() as session:
            issued = create_token(
                session,
                server_secret(settings),
                name="registry-bench",
                role=Role.VIEWER,
                actor="bench",
                now=utcnow(),
            )
        return issued.secret
    finally:
        services.close()


# --------------------------------------------------------------------------- load


def run_wrk(
    url: str, token: str, connections: int, duration_s: float, script: Path | None = None
) -> LoadResult:
    """``wrk --latency`` against ``url`` (with a Lua ``script`` when given, e.g. a POST
    body per request); its own percentiles and counts."""
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{int(duration_s)}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Bearer {token}",
        *(["-s", str(script)] if script is not None else []),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, output)
        return float(match.group(1)) if match else 0.0

    def millis(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no {label} latency in wrk's output:\n{output}")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    socket_errors = sum(
        int(count) for count in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
    )
    return LoadResult(
        requests_per_s=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=millis("50%"),
        p99_ms=millis("99%"),
        requests=int(number(r"(\d+) requests in")),
        errors=int(number(r"Non-2xx or 3xx responses:\s+(\d+)")) + socket_errors,
    )


async def _python_load(
    url: str,
    token: str,
    connections: int,
    duration_s: float,
    body: Callable[[], bytes] | None = None,
) -> tuple[list[float], int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    lines = f"{parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}"

    def next_request() -> bytes:
        if body is None:
            return f"GET {lines}\r\n\r\n".encode()
        payload = body()
        length = len(payload)
        return (
            f"POST {lines}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        ).encode() + payload

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                request = next_request()
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not head.startswith(b"HTTP/1.1 2"):
                    errors += 1
        finally:
            writer.close()

    outcomes = await asyncio.gather(
        *(connection() for _ in range(connections)), return_exceptions=True
    )
    errors += sum(isinstance(outcome, BaseException) for outcome in outcomes)
    return latencies, errors


def run_python(
    url: str,
    token: str,
    connections: int,
    duration_s: float,
    body: Callable[[], bytes] | None = None,
) -> LoadResult:
    """The fallback load loop: keep-alive connections, one request in flight on each; GET,
    or POST of a JSON ``body()`` made fresh for each request."""
    latencies, errors = asyncio.run(_python_load(url, token, connections, duration_s, body))
    if not latencies:
        return LoadResult(0.0, 0.0, 0.0, 0, errors)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return LoadResult(
        requests_per_s=len(latencies) / duration_s,
        p50_ms=cuts[49] * 1000,
        p99_ms=cuts[98] * 1000,
        requests=len(latencies),
        errors=errors,
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    """Seed, then load ``GET /models`` on an uncached and a cached API; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s windows, 5 models")
    parser.add_argument("--duration", type=float, default=None, help="seconds per mode")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--models", type=int, default=None)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--store", choices=("server", "sqlite"), default="server")
    parser.add_argument("--load", choices=("wrk", "python"), default=None)
    parser.add_argument(
        "--cache-ttl", type=float, default=None, help="cached mode's TTL (default: settings)"
    )
    args = parser.parse_args()
    duration = args.duration or (3.0 if args.quick else 10.0)
    models = args.models or (5 if args.quick else 20)
    load = args.load or ("wrk" if shutil.which("wrk") else "python")
    run_load = run_wrk if load == "wrk" else run_python

    from keelwatch.settings import Settings
    from keelwatch.storage.db import upgrade_database

    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kw-regbench-")))
        database = {} if args.db == "sqlite" else {"url": stack.enter_context(bench_database())}
        mlflow: dict[str, str] = {}
        if args.store == "server":
            uri = stack.enter_context(mlflow_server(folder))
            mlflow = {
                "tracking_uri": uri,
                "registry_uri": uri,
                "artifact_root": "mlflow-artifacts:/",
            }
        # One token at hundreds of requests/s: the per-token rate limit is raised (it still
        # runs on every request), so the cache is measured rather than the limiter's 429s.
        unlimited = 1_000_000
        settings = Settings(
            data_dir=folder / "data",
            database=database,
            mlflow=mlflow,
            auth={"rate_limit_per_s": unlimited, "rate_limit_burst": unlimited},
        )
        settings.ensure_data_dir()
        upgrade_database(settings.database.url)
        token = seed_registry(settings, models)

        print(
            f"GET /models ({models} models), {args.connections} connections, {duration:g} s "
            f"per mode, load: {load}, MLflow: {args.store}, database: {args.db}"
        )
        results: dict[str, LoadResult] = {}
        cached_ttl = args.cache_ttl or settings.registry.read_cache_ttl_s
        for mode, ttl in (("uncached", 0.0), ("cached", cached_ttl)):
            with api_server(settings, folder, cache_ttl_s=ttl) as api:
                run_load(f"{api}/models", token, args.connections, 1.0)  # warm-up, not counted
                results[mode] = run_load(f"{api}/models", token, args.connections, duration)

    print(
        f"{'mode':<10}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>8}"
    )
    for mode, result in results.items():
        print(
            f"{mode:<10}{result.requests_per_s:>12.1f}{result.p50_ms:>10.1f}"
            f"{result.p99_ms:>10.1f}{result.requests:>10}{result.errors:>8}"
        )
    cached, uncached = results["cached"], results["uncached"]
    ratio = cached.requests_per_s / uncached.requests_per_s if uncached.requests_per_s else 0.0
    vs_baseline = cached.requests_per_s / BASELINE_RPS
    meets = vs_baseline >= TARGET_RATIO and cached.p99_ms <= TARGET_P99_MS and not cached.errors
    print(f"cached/uncached: {ratio:.1f}x (this run's uncached: {uncached.requests_per_s:.1f}/s)")
    print(
        f"cached vs the issue's {BASELINE_RPS:g}/s: {vs_baseline:.1f}x (target >= "
        f"{TARGET_RATIO:g}x), p99 {cached.p99_ms:.1f} ms (target <= {TARGET_P99_MS:g} ms): "
        f"{'met' if meets else 'NOT met'}"
    )
    return 0 if not cached.errors and not uncached.errors else 1


if __name__ == "__main__":
    sys.exit(main())
