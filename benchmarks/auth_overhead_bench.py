"""Token check overhead per request (issue #13: <= 0.2 ms p50 on ``/healthz``-sized routes, with
the cached verification path), measured against the same route without authentication in one
run.

Three ``keelwatch api`` processes (the compose file's ``api`` command) on one SQLite database in
a temporary folder, each started the same way but for its auth settings:

* ``open``: ``KEELWATCH_AUTH__MODE=disabled`` (no token check);
* ``token``: authentication required (the default), a viewer token, the cache on (default TTL);
* ``uncached``: as ``token`` with ``KEELWATCH_AUTH__TOKEN_CACHE_TTL_S=0`` (every request reads
  the token row: the path before the cache), for contrast.

The rate limit is raised out of reach on all three, so each pays the same (never refusing)
bucket and the difference is the token check. Every request carries the same
``Authorization`` header, so the bytes on the wire are identical.

Routes:

* ``GET /jobs?limit=0`` -- the measured route: it needs the viewer role, and its query is
  refused (422) by validation *after* the authorization dependency, so no handler or store
  runs: the same work as ``/healthz`` plus the route's authorization (``open``: none);
* ``GET /healthz`` on ``open`` and ``token`` -- a control: no auth on either, so the servers
  themselves should differ by ~0.

(``/metrics`` with ``METRICS_REQUIRE_TOKEN`` false vs true was tried as the route and dropped:
each scrape queries the database, MLflow and the broker, and its spread dwarfs 0.2 ms.)

Load: ``wrk --latency`` (Debian package ``wrk``) when installed, else a Python asyncio loop over
keep-alive HTTP/1.1 connections; at concurrency 1 and 16, ``--rounds`` rounds per comparison,
the two servers in adjacent ``--duration``-second windows (alternating which goes first), so
drift on the machine hits both sides alike. Printed per comparison: requests/s, p50, p99 and
the server process's CPU time per request (from /proc: what the request cost, however busy the
machine is), medians over rounds, and the medians of the round-by-round differences. Then the
authorization dependency timed in-process (CPU per call, no HTTP): auth disabled vs a token
answered from the cache.

PASS when the cached token check costs <= 0.2 ms per request: in-process, in server CPU at both
concurrencies, and in p50 at one connection (at 16 a p50 is mostly queueing). On a busy machine
the HTTP differences carry noise of a few tenths of a millisecond either way (the ``/healthz``
control shows how much); the CPU figures do not.

Usage: ``python benchmarks/auth_overhead_bench.py [--quick] [--duration S] [--rounds N]
[--load wrk|python]``
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
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT / "workers")]

TARGET_MS = 0.2
CONCURRENCIES = (1, 16)
UNLIMITED = "1000000000"


@dataclass(frozen=True)
class LoadResult:
    """One timed window of load."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    #: The server process's CPU time (user + system) per request served in the window.
    cpu_ms_per_request: float = 0.0


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """``keelwatch api --host 127.0.0.1 --port N`` with ``env``; its base URL and pid."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "keelwatch.cli.app", "api", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"api exited early:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"api not up:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# --------------------------------------------------------------------------- load


def run_wrk(url: str, token: str, connections: int, duration_s: float) -> LoadResult:
    """``wrk --latency`` against ``url``; its own percentiles."""
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",  # wrk takes whole seconds
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def millis(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no {label} latency in wrk's output:\n{output}")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    return LoadResult(
        float(rate.group(1)) if rate else 0.0,
        millis("50%"),
        millis("99%"),
        int(count.group(1)) if count else 0,
    )


async def _python_load(
    url: str, token: str, connections: int, duration_s: float
) -> tuple[list[float], int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    deadline = time.perf_counter() + duration_s

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return latencies, int((time.perf_counter() - started) * 1000)


def run_python(url: str, token: str, connections: int, duration_s: float) -> LoadResult:
    latencies, elapsed_ms = asyncio.run(_python_load(url, token, connections, duration_s))
    ordered = sorted(latencies)
    return LoadResult(
        len(ordered) / (elapsed_ms / 1000),
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        len(ordered),
    )


def measured(
    load: Callable[[str, str, int, float], LoadResult],
    url: str,
    pid: int,
    token: str,
    connections: int,
    duration: float,
) -> LoadResult:
    """One window of ``load``, with the server's CPU time per request it served."""
    before = process_cpu_s(pid)
    result = load(url, token, connections, duration)
    cpu_ms = (process_cpu_s(pid) - before) * 1000
    return replace(result, cpu_ms_per_request=cpu_ms / max(result.requests, 1))


# --------------------------------------------------------------------------- setup


def prepare(folder: Path) -> tuple[dict[str, dict[str, str]], str]:
    """A migrated SQLite database, a viewer token, and the three servers' environments."""
    from keelwatch.auth.secrets_file import server_secret
    from keelwatch.auth.tokens import create_token
    from keelwatch.cli.environment import child_environment
    from keelwatch.entities.auth import Role
    from keelwatch.entities.time import utcnow
    from keelwatch.settings import Settings
    from keelwatch.storage.db import Database, upgrade_database

    url = f"sqlite:///{folder / 'keelwatch.db'}"
    settings = Settings(data_dir=folder / "data", database={"url": url})
    settings.ensure_data_dir()
    upgrade_database(url)
    database = Database(url)
    try:
        with database.session() as session:
            token = create_token(
                session,
                server_secret(settings),  # the servers share this data dir, so this secret
                name="bench-viewer",
                role=Role.VIEWER,
                actor="bench",
                now=utcnow(),
            ).secret
    finally:
        database.dispose()
    base = child_environment(settings)
    base["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "platform"), str(ROOT / "workers"), base.get("PYTHONPATH", "")]
    )
    base.update(
        DO_NOT_TRACK="1",
        KEELWATCH_AUTH__RATE_LIMIT_PER_S=UNLIMITED,
        KEELWATCH_AUTH__RATE_LIMIT_BURST=UNLIMITED,
    )
    envs = {
        "open": {**base, "KEELWATCH_AUTH__MODE": "disabled"},
        "token": dict(base),
        "uncached": {**base, "KEELWATCH_AUTH__TOKEN_CACHE_TTL_S": "0"},
    }
    return envs, token


def check_statuses(urls: dict[str, str], token: str) -> None:
    """The servers answer as the comparison assumes (auth really on, the route really 422)."""
    import httpx

    auth = {"Authorization": f"Bearer {token}"}
    expected = {
        ("open", "/jobs?limit=0", True): 422,
        ("token", "/jobs?limit=0", True): 422,
        ("token", "/jobs?limit=0", False): 401,  # the token check is on
        ("uncached", "/jobs?limit=0", True): 422,
        ("open", "/healthz", True): 200,
        ("token", "/healthz", False): 200,
    }
    for (server, path, with_token), status in expected.items():
        got = httpx.get(urls[server] + path, headers=auth if with_token else {}, timeout=10)
        if got.status_code != status:
            raise RuntimeError(f"{server} {path}: expected {status}, got {got.status_code}")


# --------------------------------------------------------------------------- report


#: (what is compared, route, server without, server with) -- each pair is run back to back.
PAIRS = (
    ("token check, cached", "/jobs?limit=0", "open", "token"),
    ("token check, uncached", "/jobs?limit=0", "open", "uncached"),
    ("control: /healthz", "/healthz", "open", "token"),
)


@dataclass(frozen=True)
class PairResult:
    """One comparison at one concurrency: medians over rounds of each side and of the
    round-by-round differences (adjacent windows, so slow drift on the machine cancels)."""

    without: LoadResult
    with_: LoadResult
    p50_diff_ms: float
    cpu_diff_ms: float


def compare(
    load: Callable[[str, str, int, float], LoadResult],
    servers: dict[str, tuple[str, int]],
    token: str,
    pair: tuple[str, str, str, str],
    connections: int,
    duration: float,
    rounds: int,
) -> PairResult:
    _label, path, base, other = pair
    withouts: list[LoadResult] = []
    withs: list[LoadResult] = []
    for index in range(rounds):
        order = (base, other) if index % 2 == 0 else (other, base)  # neither always goes first
        results = {}
        for server in order:
            url, pid = servers[server]
            results[server] = measured(load, url + path, pid, token, connections, duration)
        withouts.append(results[base])
        withs.append(results[other])
    pairs = list(zip(withs, withouts, strict=True))
    return PairResult(
        without=median_result(withouts),
        with_=median_result(withs),
        p50_diff_ms=statistics.median(w.p50_ms - o.p50_ms for w, o in pairs),
        cpu_diff_ms=statistics.median(
            w.cpu_ms_per_request - o.cpu_ms_per_request for w, o in pairs
        ),
    )


def median_result(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        statistics.median(r.requests_per_s for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.requests for r in results),
        statistics.median(r.cpu_ms_per_request for r in results),
    )


def in_process_cost(folder: Path, token: str, calls: int) -> tuple[float, float]:
    """CPU microseconds per call of the app's authorization dependency for ``GET /jobs``,
    in-process (no HTTP): (auth disabled, token answered from the cache). Robust where the
    HTTP figures are noisy (a busy machine): no network, no scheduler queueing, CPU time."""
    from starlette.requests import Request

    from keelwatch.api.access import authorize, iter_app_routes
    from keelwatch.api.app import create_app
    from keelwatch.settings import Settings

    header = [(b"authorization", f"Bearer {token}".encode())]

    async def per_call_us(mode: str) -> float:
        settings = Settings(
            data_dir=folder / "data",
            database={"url": f"sqlite:///{folder / 'keelwatch.db'}"},
            auth={"mode": mode, "rate_limit_per_s": 1e9, "rate_limit_burst": 10**9},
        )
        app = create_app(settings)
        route = next(r for m, p, r in iter_app_routes(app) if (m, p) == ("GET", "/jobs"))
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/jobs",
            "query_string": b"",
            "headers": header,
            "app": app,
            "route": route,
            "client": ("127.0.0.1", 50000),
        }
        await authorize(Request(scope))  # fills the cache
        started = time.process_time()
        for _ in range(calls):
            await authorize(Request(scope))
        return (time.process_time() - started) / calls * 1e6

    results = [
        (asyncio.run(per_call_us("disabled")), asyncio.run(per_call_us("required")))
        for _ in range(3)
    ]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 s windows, two rounds")
    parser.add_argument("--duration", type=float, default=None, help="seconds per window (2)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per comparison (6)")
    parser.add_argument("--load", choices=("wrk", "python"), default=None)
    args = parser.parse_args()
    duration = args.duration or (1.0 if args.quick else 2.0)
    rounds = args.rounds or (2 if args.quick else 6)
    tool = args.load or ("wrk" if shutil.which("wrk") else "python")
    load = run_wrk if tool == "wrk" else run_python
    print(
        f"auth overhead: 3 x `keelwatch api` on SQLite, load {tool}, {rounds} round(s) of "
        f"{duration:g} s windows per side, concurrency "
        f"{' and '.join(map(str, CONCURRENCIES))}"
    )
    results: dict[tuple[int, str], PairResult] = {}
    with tempfile.TemporaryDirectory(prefix="kw-auth-bench-") as tmp:
        folder = Path(tmp)
        envs, token = prepare(folder)
        with contextlib.ExitStack() as stack:
            servers = {
                name: stack.enter_context(api_server(env, folder / f"api-{name}.log"))
                for name, env in envs.items()
            }
            check_statuses({name: url for name, (url, _pid) in servers.items()}, token)
            for _label, path, base, other in PAIRS:  # warm every path (imports, first queries)
                for server in (base, other):
                    load(servers[server][0] + path, token, 1, 1.0)
            for connections in CONCURRENCIES:
                for pair in PAIRS:
                    results[(connections, pair[0])] = compare(
                        load, servers, token, pair, connections, duration, rounds
                    )
        anonymous_us, cached_us = in_process_cost(folder, token, 5_000 if args.quick else 50_000)

    print(
        f"\n{'comparison':<22} {'conc':>4} {'req/s w/o':>9} {'with':>6} {'p50 w/o':>8} "
        f"{'with':>7} {'p99 w/o':>8} {'with':>7} {'cpu/req w/o':>11} {'with':>6} "
        f"{'Δp50':>7} {'Δcpu/req':>8}"
    )
    for connections in CONCURRENCIES:
        for label, *_ in PAIRS:
            r = results[(connections, label)]
            print(
                f"{label:<22} {connections:>4} {r.without.requests_per_s:>9.0f} "
                f"{r.with_.requests_per_s:>6.0f} {r.without.p50_ms:>8.3f} {r.with_.p50_ms:>7.3f} "
                f"{r.without.p99_ms:>8.3f} {r.with_.p99_ms:>7.3f} "
                f"{r.without.cpu_ms_per_request:>11.3f} {r.with_.cpu_ms_per_request:>6.3f} "
                f"{r.p50_diff_ms:>+7.3f} {r.cpu_diff_ms:>+8.3f}"
            )
    print("(ms; Δ = median over rounds of with - without, measured in adjacent windows)")
    in_process_ms = (cached_us - anonymous_us) / 1000
    print(
        f"\nin-process authorization dependency, CPU per call: auth disabled {anonymous_us:.1f} "
        f"us, token from the cache {cached_us:.1f} us (overhead {in_process_ms * 1000:+.1f} us)"
    )
    passed = in_process_ms <= TARGET_MS
    print(f"\ntoken check overhead (cached), target <= {TARGET_MS} ms per request:")
    print(f"  in-process: {in_process_ms:+.4f} ms -> {'PASS' if passed else 'FAIL'}")
    for connections in CONCURRENCIES:
        r = results[(connections, PAIRS[0][0])]
        # The server's CPU per request is the cost itself, whatever else runs on the machine;
        # at 1 connection the p50 difference must agree; at 16 a p50 is mostly queueing.
        checks = [("server CPU", r.cpu_diff_ms)]
        if connections == 1:
            checks.append(("p50", r.p50_diff_ms))
        ok = all(value <= TARGET_MS for _, value in checks)
        passed &= ok
        shown = ", ".join(f"{name} {value:+.3f} ms" for name, value in checks)
        print(f"  concurrency {connections:>2}: {shown} -> {'PASS' if ok else 'FAIL'}")
    print(f"auth overhead: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
