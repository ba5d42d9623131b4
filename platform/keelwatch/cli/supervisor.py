"""The supervisor behind ``keelwatch up``: start children, wait until they answer, stop them.

Each child leads its own process group, so a terminal's Ctrl-C reaches only the supervisor,
which then stops the children: SIGTERM to each main process (which stops what it forked:
Celery's pool, MLflow's server workers), and SIGKILL to any group still alive after a short
bound (:func:`stop_process`). What the children run comes from ``keelwatch.cli.commands``,
their environment from ``keelwatch.cli.environment``, the one-stack-per-data-dir lock from
``keelwatch.cli.lock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Literal

#: Default bound on a warm stop. Celery's warm shutdown finishes running tasks first; with
#: ``acks_late`` anything cut short by the SIGKILL after this bound is redelivered.
STOP_GRACE_S = 10.0


def wait_for_http(url: str, *, timeout_s: float, alive: Any = None) -> bool:
    """Poll ``url`` until it answers HTTP 200 or ``timeout_s`` passes (or ``alive()`` is
    false, i.e. the process that should answer died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


@dataclass
class ChildSpec:
    """One service ``keelwatch up`` runs."""

    name: str
    argv: list[str]
    #: URL that answers 200 once the service is ready (None: ready once started).
    ready_url: str | None = None
    #: What to show a person (URL or description).
    display: str = ""
    #: Variables this child gets on top of the supervisor's environment, unless already set.
    env_defaults: dict[str, str] = field(default_factory=dict)


@dataclass
class Child:
    """A running child and where its output goes."""

    spec: ChildSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)
    #: Where this run's output starts in the (appended) log file.
    log_offset: int = 0

    @property
    def alive(self) -> bool:
        """True while the child's main process runs."""
        return self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the child's output, for error messages."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                return log.read().decode(errors="replace")[-chars:]
        except OSError:
            return ""


class ChildFailedError(RuntimeError):
    """A supervised child exited while it should have been running."""

    def __init__(self, child: Child) -> None:
        self.child = child
        code = child.process.returncode
        super().__init__(
            f"{child.spec.name} exited with code {code}; last output "
            f"({child.log_path}):\n{child.log_tail()}"
        )


class Supervisor:
    """Start children, wait until they answer, keep them running, stop them all on a signal."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        env: Mapping[str, str],
        log_dir: Path,
        state_file: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.specs = list(specs)
        self.env = dict(env)
        self.log_dir = log_dir
        self.state_file = state_file
        self.cwd = cwd
        self.children: list[Child] = []
        self._stop = threading.Event()
        self.stop_signal: int | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start every child in its own session (process group)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            log_path = self.log_dir / f"{spec.name}.log"
            log_file = log_path.open("ab")
            offset = log_file.tell()
            process = subprocess.Popen(
                spec.argv,
                env={**spec.env_defaults, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
            )
            self.children.append(Child(spec, process, log_path, log_file, offset))
        self._write_state()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until every child with a ``ready_url`` answers; raise if one dies first."""
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            if child.spec.ready_url is None:
                continue
            remaining = max(deadline - time.monotonic(), 0.1)
            ok = wait_for_http(
                child.spec.ready_url,
                timeout_s=remaining,
                alive=lambda child=child: child.alive and not self._stop.is_set(),
            )
            if self._stop.is_set():
                return
            if not ok:
                if not child.alive:
                    raise ChildFailedError(child)
                raise TimeoutError(
                    f"{child.spec.name} did not answer {child.spec.ready_url} within "
                    f"{timeout_s:g}s; last output:\n{child.log_tail()}"
                )
        for child in self.children:
            if not child.alive:
                raise ChildFailedError(child)

    def run_until_stopped(self, poll_s: float = 0.5) -> None:
        """Block until a stop is requested (signal) or a child dies (raises)."""
        while not self._stop.wait(poll_s):
            for child in self.children:
                if not child.alive:
                    raise ChildFailedError(child)

    def request_stop(self, signum: int | None = None) -> None:
        """Ask :meth:`run_until_stopped` (and :meth:`wait_ready`) to return."""
        self.stop_signal = signum
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM request a stop instead of killing the supervisor mid-way."""

        def _handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signum)

        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)

    def stop(
        self, grace_s: float = STOP_GRACE_S, *, report: Callable[[str], None] | None = None
    ) -> dict[str, StopOutcome]:
        """Warm-stop every child: SIGTERM to each main process, SIGKILL to each group still
        alive after ``grace_s``. Returns how each child ended; ``report`` hears each step.

        Only the main process is signalled (see :func:`stop_process`); waiting on the whole
        group (not only the leader) still catches grandchildren such as Celery's pool
        processes, so nothing is left orphaned.
        """
        say = report or (lambda _message: None)
        # Reverse start order: the API stops taking work before the workers go.
        for child in reversed(self.children):
            if child.alive:
                child.process.send_signal(signal.SIGTERM)
        names = ", ".join(child.spec.name for child in reversed(self.children))
        say(f"stopping {names} (SIGTERM, warm shutdown; SIGKILL after {grace_s:g}s)")
        deadline = time.monotonic() + grace_s
        outcomes: dict[str, StopOutcome] = {}
        for child in reversed(self.children):
            outcome = _finish_stop(child.process, deadline)
            outcomes[child.spec.name] = outcome
            say(f"{child.spec.name}: {outcome.describe()}")
            child.log_file.close()
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        return outcomes

    # ----------------------------------------------------------------- state

    def _write_state(self) -> None:
        # Lets an operator (and the tests) find every process group `keelwatch up` started.
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "supervisor_pid": os.getpid(),
            "children": {
                child.spec.name: {
                    "pid": child.process.pid,
                    "argv": child.spec.argv,
                    "log": str(child.log_path),
                }
                for child in self.children
            },
        }
        self.state_file.write_text(json.dumps(state, indent=2))


@dataclass(frozen=True)
class StopOutcome:
    """How a stopped process ended: ``exited`` on its own after SIGTERM, ``killed`` after the
    grace period, or ``already exited`` before the stop began."""

    how: Literal["exited", "killed", "already exited"]
    returncode: int | None

    def describe(self) -> str:
        """A few words for a person (``exited with code 0``)."""
        if self.how == "killed":
            return "did not stop in time: killed (SIGKILL)"
        if self.returncode is not None and self.returncode < 0:
            # uvicorn re-raises the SIGTERM it handled, after its graceful shutdown.
            return f"{self.how} on {signal.Signals(-self.returncode).name}"
        return f"{self.how} with code {self.returncode}"


def stop_process(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> StopOutcome:
    """Warm-stop a process that leads its own process group; SIGKILL the group after
    ``grace_s`` if anything of it is still alive.

    SIGTERM goes to the main process only. Celery's worker answers it with a warm shutdown and
    tells its pool processes to exit; a SIGTERM sent to the whole group instead reaches the
    pool processes at the same moment, and one of them can die holding the lock of the
    pool's result queue while another waits for that lock forever in its exit path, so the
    main process waits for a child that never ends (the 60 s stall ``make demo`` had).
    """
    if process.poll() is not None and not _group_alive(process.pid):
        return StopOutcome("already exited", process.returncode)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return _finish_stop(process, time.monotonic() + grace_s)


def _finish_stop(process: subprocess.Popen[bytes], deadline: float) -> StopOutcome:
    # Wait for the leader and every process of its group; then SIGKILL whatever is left.
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(process.pid):
            return StopOutcome("exited", process.returncode)
        time.sleep(0.1)
    _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5.0)
    return StopOutcome("killed", process.returncode)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
