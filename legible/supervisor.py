"""The supervisor: one detached process per stack that owns every service process of it.

``legible up`` writes the plan (``.legible/plan.json``) and starts ``python -m legible.supervisor PLAN``
in a new session; the supervisor then:

* starts services in plan order, each once its ``depends_on`` are ready, and gates on its readiness probe;
  the time from spawn to ready is recorded per service in ms (``ready_ms``);
* sends each service's stdout and stderr to ``.legible/logs/<service>.log`` (the collector tails them);
* checks that a ready service stays alive: a service with an ``http`` probe is probed again every
  :data:`LIVENESS_EVERY_S` seconds; after :data:`LIVENESS_FAILURES` failures in a row it is ``unhealthy``
  (the cause, e.g. the collector's ``/health`` body, in ``error``; the stack ``degraded``), then stopped and
  restarted like a crash;
* restarts a service that crashes after it was ready, with exponential backoff (0.25 s doubling to 8 s)
  and a cap (``max_restarts`` crashes in a row); past the cap the service is ``failed`` and the stack
  ``degraded``. A service that exits or misses its ``ready_timeout`` while the stack is starting fails the
  whole start (fail fast: no restart loop hides a broken command);
* stops everything on SIGTERM/SIGINT/SIGHUP: user services first, then collector, then stores, each
  process group SIGTERM then SIGKILL after ``stop_timeout`` seconds (the honcho shutdown rule);
* makes services die with it: each child gets ``PR_SET_PDEATHSIG`` = SIGTERM (prctl(2)), so a
  ``kill -9`` of the supervisor does not leave them running; grandchildren carry ``LEGIBLE_STACK`` in
  their environment for ``legible gc``;
* serves its own Prometheus metrics on the ``supervisor`` port (scraped by VictoriaMetrics), and pushes
  them to VictoriaMetrics' ``/api/v1/import/prometheus`` the moment a service becomes ready, so
  ``legible_service_ready_seconds{service="app"}`` is queryable as soon as ``legible up --wait`` returns;
* writes ``.legible/state.json`` (schema ``legible.state/v1``) atomically on every change, and releases
  the port lease when it exits.

The decision logic lives in :class:`Supervisor` with the clock, process spawner and probe injected, so it
is unit-tested without processes; :func:`main` wires the real ones.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from legible._files import PRIVATE_UMASK
from legible._procs import ProcRef, signal_group
from legible.plan import StackPlan
from legible.services._context import service_argv, service_environ
from legible.services.base import Probe, ServicePlan

if TYPE_CHECKING:
    from legible.contract import ServiceState, StateFile

STATE_SCHEMA: Final = "legible.state/v1"
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 8.0
#: A service up this long has its crash streak (for backoff and the cap) reset.
STABLE_AFTER_S = 30.0
#: Shutdown waves, highest first: the app and the browser together (both report to the collector), then the
#: collector (it flushes what they sent), then the stores.
ROLE_TIER = {"store": 0, "collector": 1, "app": 2, "browser": 2}
#: Seconds between liveness probes of a ready service that has an ``http`` probe.
LIVENESS_EVERY_S = 2.0
#: Failed liveness probes in a row that make a ready service ``unhealthy`` (and restart it).
LIVENESS_FAILURES = 3


class Proc(Protocol):
    """What the supervisor needs of a running process (``subprocess.Popen`` satisfies it)."""

    pid: int

    def poll(self) -> int | None:
        """Exit code, or ``None`` while running."""
        ...


Spawner = Callable[[ServicePlan], Proc]
ProbeFn = Callable[[ServicePlan, int], bool]
#: Liveness probe: ``""`` when the service is alive, else the cause (one line).
LiveFn = Callable[[ServicePlan], str]
#: Sends a signal to a process group: ``(pgid, signum)``.
SignalFn = Callable[[int, int], object]


@dataclass
class ServiceRun:
    """The live record of one service (what ``state.json`` shows under ``services``).

    Attributes:
        plan: the service's plan.
        status: ``pending`` | ``starting`` | ``ready`` | ``unhealthy`` | ``backoff`` | ``failed`` | ``stopped``.
        proc: the running process, if any.
        started_at: monotonic seconds of the last spawn.
        ready_ms: time from the last spawn to ready, in ms.
        first_ready_ms: the same for the first start (the app's startup time).
        restarts: restarts so far (crashes after ready that were followed by a new start).
        streak: crashes in a row (reset once the service stays up ``STABLE_AFTER_S``).
        next_start: monotonic seconds when a backoff ends.
        exit_code: the last exit code, if it exited.
        error: why it failed, one line.
        log_offset: size of the log when last spawned (the ``log`` probe reads from here).
        ready_wall: seconds since the epoch when it last became ready (``ready_at`` in state.json).
        live_failures: failed liveness probes in a row since ready.
        next_live: monotonic seconds of the next liveness probe.
        killed_after_s: when the service ignored SIGTERM at shutdown, the seconds after which it got SIGKILL.

    """

    plan: ServicePlan
    status: str = "pending"
    proc: Proc | None = None
    ref: ProcRef | None = None
    started_at: float = 0.0
    ready_at: float = 0.0
    ready_wall: float | None = None
    ready_ms: float | None = None
    first_ready_ms: float | None = None
    restarts: int = 0
    streak: int = 0
    next_start: float = 0.0
    exit_code: int | None = None
    error: str = ""
    log_offset: int = 0
    live_failures: int = 0
    next_live: float = 0.0
    killed_after_s: float | None = None

    def to_dict(self) -> ServiceState:
        """JSON-ready summary for state.json."""
        return {
            "status": self.status,
            "role": self.plan.role,
            "pid": self.proc.pid if self.proc else None,
            "create_time": self.ref.create_time if self.ref else None,
            "port": self.plan.port,
            "ready_ms": None if self.ready_ms is None else round(self.ready_ms, 1),
            "first_ready_ms": None if self.first_ready_ms is None else round(self.first_ready_ms, 1),
            "ready_at": self.ready_wall,
            "restarts": self.restarts,
            "exit_code": self.exit_code,
            "error": self.error,
            "log": self.plan.log,
            "argv": self.plan.argv,
            "killed_after_s": self.killed_after_s,
        }


#: True once a service's process group has no live member.
GoneFn = Callable[[ServiceRun], bool]


@dataclass
class Supervisor:
    """Runs one :class:`StackPlan`; see the module docstring for the rules.

    Args:
        plan: the stack plan.
        state_path: where to write ``state.json``; ``None`` to not write it (unit tests).
        spawn: starts a service (default :func:`spawn_service`).
        probe: True once a service is ready (default :func:`probe_ready`).
        clock: monotonic seconds (default ``time.monotonic``).
        live: liveness probe of a ready service with an ``http`` probe (default :func:`probe_live`).
        kill: stops a service's process group within the given seconds (default :func:`kill_service`).
        on_ready: called with ``(service, ready_ms)`` each time a service becomes ready.

    """

    plan: StackPlan
    state_path: Path | None = None
    spawn: Spawner = field(default=lambda sp: spawn_service(sp))
    probe: ProbeFn = field(default=lambda sp, off: probe_ready(sp, off))
    clock: Callable[[], float] = time.monotonic
    live: LiveFn = field(default=lambda sp: probe_live(sp))
    kill: Callable[[ServiceRun, float], None] = field(default=lambda run, timeout: kill_service(run, timeout))
    on_ready: Callable[[str, float], None] = lambda name, ms: None
    on_change: Callable[[Supervisor], None] = lambda sup: None

    def __post_init__(self) -> None:
        self.services: dict[str, ServiceRun] = {s.name: ServiceRun(s) for s in self.plan.services}
        self.status = "starting"
        self.error = ""
        self.error_service = ""
        self.started_wall = time.time()
        self.started = self.clock()
        self.ready_ms: float | None = None
        self.stopping = False
        self.killed: dict[str, float] = {}

    # -- decisions -------------------------------------------------------------------------------------
    def step(self) -> None:
        """Advance every service by one tick: spawn, probe, notice exits, restart. Never blocks long."""
        now = self.clock()
        changed = False
        for run in self.services.values():
            changed |= self._step_one(run, now)
        if self.status == "starting":
            if all(r.status == "ready" for r in self.services.values()):
                self.status = "ready"
                self.ready_ms = (now - self.started) * 1000
                changed = True
        elif self.status in ("ready", "degraded"):
            new = (
                "degraded"
                if any(r.status in ("failed", "backoff", "starting", "unhealthy") for r in self.services.values())
                else "ready"
            )
            if new != self.status:
                self.status, changed = new, True
        if changed:
            self.on_change(self)

    def _deps_ready(self, run: ServiceRun) -> bool:
        return all(self.services[d].status == "ready" for d in run.plan.depends_on if d in self.services)

    def _start(self, run: ServiceRun, now: float) -> None:
        run.exit_code = None
        run.killed_after_s = None  # a kill of an earlier process of this service is not news at shutdown
        try:
            run.log_offset = os.path.getsize(run.plan.log) if run.plan.log else 0
        except OSError:
            run.log_offset = 0
        try:
            run.proc = self.spawn(run.plan)
        except OSError as exc:
            run.proc, run.status = None, "failed"
            run.error = f"{run.plan.name} could not start {run.plan.argv[0]!r}: {exc.strerror or exc}"
            return
        run.ref = ProcRef.of(run.proc.pid)
        run.started_at = now
        run.status = "starting"

    def _step_one(self, run: ServiceRun, now: float) -> bool:
        st = run.status
        if st == "pending" and self.status == "starting" and self._deps_ready(run):
            self._start(run, now)
            if run.status == "failed":
                self._fail(run, run.error)
            return True
        if st == "backoff" and now >= run.next_start:
            self._start(run, now)
            return True
        if st == "unhealthy" and run.proc is not None:  # marked last tick (so state.json showed it): restart
            self.kill(run, run.plan.stop_timeout)
            self._crashed(run, now, run.error)
            return True
        if st not in ("starting", "ready") or run.proc is None:
            return False
        code = run.proc.poll()
        if code is not None:
            run.exit_code = code
            return self._exited(run, now, code)
        if st == "starting":
            if self.probe(run.plan, run.log_offset):
                run.status = "ready"
                run.ready_at = now
                run.ready_wall = time.time()
                run.ready_ms = (now - run.started_at) * 1000
                run.live_failures = 0
                run.next_live = now + LIVENESS_EVERY_S
                if run.first_ready_ms is None:
                    run.first_ready_ms = run.ready_ms
                self.on_ready(run.plan.name, run.ready_ms)
                return True
            if now - run.started_at > run.plan.ready_timeout:
                msg = f"{run.plan.name} was not ready after {run.plan.ready_timeout:g} s ({_describe(run.plan.probe)})"
                if self.status == "starting":
                    self._fail(run, msg)
                else:
                    kill_service(run, 0.5)
                    self._crashed(run, now, msg)
                return True
            return False
        if now - run.ready_at > STABLE_AFTER_S:
            run.streak = 0
        return self._check_live(run, now)

    def _check_live(self, run: ServiceRun, now: float) -> bool:
        """Re-probe a ready ``http`` service every :data:`LIVENESS_EVERY_S`; True when it turned unhealthy."""
        if run.plan.probe.kind != "http" or now < run.next_live:
            return False
        behind = now - run.next_live >= LIVENESS_EVERY_S  # the loop stalled: do not probe in a burst
        run.next_live = (now if behind else run.next_live) + LIVENESS_EVERY_S
        cause = self.live(run.plan)
        if not cause:
            run.live_failures = 0
            return False
        run.live_failures += 1
        if run.live_failures < LIVENESS_FAILURES:
            return False
        run.status = "unhealthy"
        run.error = f"{run.plan.name} unhealthy: {cause}"
        return True

    def _exited(self, run: ServiceRun, now: float, code: int) -> bool:
        if self.status == "starting":  # fail fast: a restart loop would hide a broken command
            self._fail(run, f"{run.plan.name} exited with code {code} while the stack was starting")
        else:
            self._crashed(run, now, f"{run.plan.name} exited with code {code}")
        return True

    def _crashed(self, run: ServiceRun, now: float, why: str) -> None:
        run.proc = None
        run.error = why
        run.streak += 1
        if not run.plan.restart or run.streak > run.plan.max_restarts:
            run.status = "failed"
            if run.plan.restart:
                run.error = f"{why}; gave up after {run.plan.max_restarts} restarts"
            return
        run.restarts += 1
        run.status = "backoff"
        run.next_start = now + min(BACKOFF_FIRST_S * 2 ** (run.streak - 1), BACKOFF_MAX_S)

    def _fail(self, run: ServiceRun, why: str) -> None:
        run.status = "failed"
        run.error = why
        self.status = "failed"
        self.error = why
        self.error_service = run.plan.name

    # -- state -----------------------------------------------------------------------------------------
    def state(self) -> StateFile:
        """The ``state.json`` document."""
        me = ProcRef.of(os.getpid())
        return {
            "schema": STATE_SCHEMA,
            "key": self.plan.key,
            "worktree": self.plan.worktree,
            "status": self.status,
            "error": self.error,
            "error_service": self.error_service,
            "supervisor": me.to_dict() if me else None,
            "started_at": self.started_wall,
            "ready_ms": None if self.ready_ms is None else round(self.ready_ms, 1),
            "lease_base": self.plan.lease_base,
            "ports": self.plan.ports,
            "endpoints": self.plan.endpoints,
            "config_hash": self.plan.config_hash,
            "services": {n: r.to_dict() for n, r in self.services.items()},
        }

    def write_state(self) -> None:
        """Write :meth:`state` to ``state_path`` atomically (temp file + rename)."""
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.state(), indent=1))
            os.replace(tmp, self.state_path)
        except OSError as exc:  # the worktree was removed or the disk is full: keep supervising
            print(f"supervisor: cannot write {self.state_path}: {exc}", file=sys.stderr, flush=True)

    # -- shutdown --------------------------------------------------------------------------------------
    def stop_all(
        self,
        *,
        send: SignalFn | None = None,
        gone: GoneFn | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, float]:
        """Stop every service, highest tier first (browser and app, then collector, then stores), tier by tier.

        Each tier is stopped by :func:`stop_services` with this supervisor's ``clock``; a tier starts only
        once the one before it is gone.

        Args:
            send: sends a signal to a process group, ``(pgid, signum)`` (default :func:`signal_group`).
            gone: True once a service's process group has no live member (default :func:`group_gone`).
            sleep: waits, in seconds, between checks (default ``time.sleep``).

        Returns:
            ``{service: seconds}`` for each service that ignored SIGTERM and was SIGKILLed after that many
            seconds (also kept in ``self.killed`` and in ``state.json`` as ``killed_after_s``).

        """
        self.stopping = True
        tiers = sorted({ROLE_TIER.get(r.plan.role, 2) for r in self.services.values()}, reverse=True)
        for tier in tiers:
            group = [r for r in self.services.values() if ROLE_TIER.get(r.plan.role, 2) == tier]
            t0 = self.clock()
            killed = stop_services(group, clock=self.clock, send=send, gone=gone, sleep=sleep)
            self.killed.update(killed)
            names = ", ".join(r.plan.name for r in group)
            print(f"supervisor: stopped {names} in {(self.clock() - t0) * 1000:.0f} ms", file=sys.stderr, flush=True)
            for name, after in killed.items():
                print(f"supervisor: {name} ignored SIGTERM: killed after {after:g} s", file=sys.stderr, flush=True)
            for r in group:
                if r.status != "failed":
                    r.status = "stopped"
        return dict(self.killed)


# -- the real effects ----------------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1
_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: gc is the only backstop
    _prctl = None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn_service(sp: ServicePlan) -> subprocess.Popen[bytes]:
    """Start ``sp`` in its own session and process group, output appended to its log.

    Its environment is this process's (inherited from ``legible up``) plus the plan's additions
    (:func:`legible.services._context.service_environ`).

    Raises:
        OSError: the command cannot be executed (not found, not executable).

    """
    Path(sp.log).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = service_environ(sp)  # the inherited environment is added here, never stored in the plan
    with open(sp.log, "ab") as log:
        return subprocess.Popen(
            service_argv(sp, env),
            cwd=sp.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call; the supervisor is single-threaded when spawning
            close_fds=True,
        )


def probe_ready(sp: ServicePlan, log_offset: int = 0) -> bool:
    """Run ``sp``'s readiness probe once; True if ready. Never raises, returns within about 0.5 s."""
    p = sp.probe
    try:
        if p.kind == "none":
            return True
        if p.kind == "tcp":
            with socket.create_connection(("127.0.0.1", int(p.target)), timeout=0.25):
                return True
        if p.kind == "http":
            u = urllib.parse.urlsplit(p.target)
            conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=0.5)
            try:
                conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""))
                return conn.getresponse().status < 500
            finally:
                conn.close()
        if p.kind == "log":
            with open(sp.log, "rb") as fh:
                fh.seek(log_offset)
                text = fh.read(4 * 1024 * 1024).decode("utf-8", "replace")
            return re.search(p.target, text, re.MULTILINE) is not None
    except (OSError, http.client.HTTPException, ValueError):
        return False
    return False


def probe_live(sp: ServicePlan) -> str:
    """Probe a ready ``http`` service once; return ``""`` if it answers below 500, else the cause (one line).

    The cause is ``HTTP <code>: <first line of the body>`` (the collector's ``/health`` says why), or
    ``no answer: <error>``. Never raises, returns within about 1 s.
    """
    u = urllib.parse.urlsplit(sp.probe.target)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=1.0)
    try:
        conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""))
        resp = conn.getresponse()
        if resp.status < 500:
            return ""
        first = resp.read(500).decode("utf-8", "replace").strip().split("\n", 1)[0]
        return f"HTTP {resp.status} from {sp.probe.target}: {first}"[:300]
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"no answer from {sp.probe.target}: {exc}"[:300]
    finally:
        conn.close()


def _describe(p: Probe) -> str:
    return {
        "tcp": f"tcp probe on 127.0.0.1:{p.target}",
        "http": f"http probe {p.target}",
        "log": f"log probe /{p.target}/",
    }.get(p.kind, "no probe")


def kill_service(run: ServiceRun, timeout: float) -> None:
    """SIGTERM ``run``'s process group, SIGKILL it after ``timeout`` seconds."""
    stop_services([run], timeout)


def stop_services(
    runs: list[ServiceRun],
    timeout: float | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    send: SignalFn | None = None,
    gone: GoneFn | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, float]:
    """SIGTERM the process groups of ``runs`` together, then SIGKILL each group still alive after its timeout.

    Args:
        runs: the services to stop; those without a process are skipped.
        timeout: seconds to wait after SIGTERM before SIGKILL, for every service; ``None`` uses each
            service's own ``stop_timeout``.
        clock: monotonic seconds (default ``time.monotonic``).
        send: sends a signal to a process group, ``(pgid, signum)`` (default :func:`signal_group`).
        gone: True once a service's process group has no live member (default :func:`group_gone`).
        sleep: waits, in seconds, between checks (default ``time.sleep``).

    Returns:
        ``{service: seconds}``: the services that were still alive after their timeout and got SIGKILL,
        with the seconds from SIGTERM to SIGKILL (rounded to 0.1 s). Each run also keeps it in
        ``killed_after_s``.

    """
    send = send or signal_group
    gone = gone or group_gone
    live = [r for r in runs if r.proc is not None]
    start = clock()
    for r in live:
        assert r.proc is not None
        send(r.proc.pid, signal.SIGTERM)
    killed: dict[str, float] = {}
    pending = list(live)
    while pending:
        now = clock()
        still = []
        for r in pending:
            assert r.proc is not None
            if gone(r):
                continue
            if now - start >= (timeout if timeout is not None else r.plan.stop_timeout):
                send(r.proc.pid, signal.SIGKILL)
                r.killed_after_s = killed[r.plan.name] = round(now - start, 1)
                continue
            still.append(r)
        pending = still
        if pending:
            sleep(0.01)
    for r in live:
        assert r.proc is not None
        if isinstance(r.proc, subprocess.Popen):
            try:
                r.exit_code = r.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        r.proc = None
    return killed


def group_gone(run: ServiceRun) -> bool:
    """True once ``run``'s process group has no live member (its leader reaped first); ``kill(-pgid, 0)``."""
    assert run.proc is not None
    run.proc.poll()  # reap the leader so it does not count as alive
    try:
        os.killpg(run.proc.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def log_tail(path: str, lines: int = 10, max_bytes: int = 64 * 1024) -> list[str]:
    """Return the last ``lines`` lines of the file at ``path`` (each cut to 300 characters); ``[]`` if none."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    tail = deque((ln.rstrip() for ln in text.splitlines() if ln.strip()), maxlen=lines)
    return [ln if len(ln) <= 300 else ln[:297] + "..." for ln in tail]


class _Metrics:
    """The supervisor's Prometheus metrics: served on its port and pushed to VictoriaMetrics on change."""

    def __init__(self, plan: StackPlan) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.ready = Gauge(
            "legible_service_ready_seconds",
            "Time from spawn to ready of the last start, in seconds.",
            ["service"],
            registry=self.registry,
        )
        self.first_ready = Gauge(
            "legible_service_first_ready_seconds",
            "Time from spawn to ready of the first start, in seconds.",
            ["service"],
            registry=self.registry,
        )
        self.restarts = Counter(
            "legible_service_restarts",
            "Restarts after a crash.",
            ["service"],
            registry=self.registry,
        )
        self.up = Gauge("legible_service_up", "1 while the service is ready.", ["service"], registry=self.registry)
        self.stack_ready = Gauge(
            "legible_stack_ready_seconds",
            "Time from supervisor start to every service ready, in seconds.",
            registry=self.registry,
        )
        for s in plan.services:
            self.restarts.labels(s.name)
            self.up.labels(s.name).set(0)
        self._restarts_seen: dict[str, int] = {}
        self.port = plan.ports["supervisor"]
        self.vm = plan.endpoints["victoria-metrics"]
        self.key = plan.key
        self.server: Any = None
        try:
            self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:  # the port was taken between lease and now: metrics are pushed only
            print(f"supervisor: cannot serve metrics on 127.0.0.1:{self.port}: {exc}", file=sys.stderr)

    def update(self, sup: Supervisor) -> None:
        for name, run in sup.services.items():
            if run.ready_ms is not None:
                self.ready.labels(name).set(run.ready_ms / 1000)
            if run.first_ready_ms is not None:
                self.first_ready.labels(name).set(run.first_ready_ms / 1000)
            self.up.labels(name).set(1 if run.status == "ready" else 0)
            seen = self._restarts_seen.get(name, 0)
            if run.restarts > seen:
                self.restarts.labels(name).inc(run.restarts - seen)
                self._restarts_seen[name] = run.restarts
        if sup.ready_ms is not None:
            self.stack_ready.set(sup.ready_ms / 1000)

    def push(self) -> None:
        """POST the current values to VictoriaMetrics' import API with the labels a scrape would add."""
        from prometheus_client import generate_latest

        labels = {"job": "legible-supervisor", "instance": f"127.0.0.1:{self.port}", "worktree": self.key}
        query = "&".join(f"extra_label={urllib.parse.quote(f'{k}={v}')}" for k, v in labels.items())
        u = urllib.parse.urlsplit(self.vm)
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=1.0)
        try:
            conn.request("POST", f"/api/v1/import/prometheus?{query}", body=generate_latest(self.registry))
            conn.getresponse().read()
        except (OSError, http.client.HTTPException) as exc:
            print(f"supervisor: push to VictoriaMetrics failed: {exc}", file=sys.stderr)
        finally:
            conn.close()

    def close(self) -> None:
        """Close the listening socket (no ``shutdown()``: it waits out serve_forever's 0.5 s poll)."""
        if self.server is not None:
            self.server.server_close()


def vmui_url(vm: str) -> str | None:
    """Return VictoriaMetrics' vmui URL (``<vm>/vmui/``) if this build serves it (HTTP 200), else ``None``.

    Debian's ``victoria-metrics`` package is built without vmui's assets, so ``/vmui/`` answers 404 there;
    an endpoint that answers 404 is not advertised.
    """
    u = urllib.parse.urlsplit(vm)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=1.0)
    try:
        conn.request("GET", "/vmui/")
        ok = conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        ok = False
    finally:
        conn.close()
    return f"{vm}/vmui/" if ok else None


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m legible.supervisor PLAN_JSON``; returns 0 after a clean stop, 1 if the start failed."""
    args = argv if argv is not None else sys.argv[1:]
    os.umask(PRIVATE_UMASK)  # state.json, logs and every service's files: 0600 in 0700 directories
    plan_path = Path(args[0])
    plan = StackPlan.from_dict(json.loads(plan_path.read_text()))
    state_path = plan_path.parent / "state.json"
    stop = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["flag"] = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    from legible.lease import LeaseRegistry

    registry = LeaseRegistry()
    me = ProcRef.of(os.getpid())
    assert me is not None
    registry.transfer(plan.key, me)
    metrics = _Metrics(plan)
    pushed_store = {"ready": False}

    def on_ready(name: str, ms: float) -> None:
        if name == "victoria-metrics":
            pushed_store["ready"] = True
            vmui = vmui_url(plan.endpoints["victoria-metrics"])
            if vmui:  # advertise vmui (state.json, .legible/env) only where it answers
                plan.endpoints["vmui"] = vmui
                try:
                    (plan_path.parent / "env").write_text(plan.env_file_text())
                except OSError as exc:
                    print(f"supervisor: cannot rewrite the env file: {exc}", file=sys.stderr, flush=True)

    def on_change(s: Supervisor) -> None:
        metrics.update(s)
        s.write_state()
        if pushed_store["ready"]:
            metrics.push()

    sup = Supervisor(plan, state_path, on_ready=on_ready, on_change=on_change)
    sup.write_state()
    code = 0
    git_marker = Path(plan.worktree) / ".git"  # a file in linked worktrees; nothing we write recreates it
    next_check = 0.0
    try:
        while not stop["flag"]:
            if time.monotonic() >= next_check:  # a removed worktree takes its stack with it
                next_check = time.monotonic() + 1.0
                if not git_marker.exists():
                    print(f"supervisor: worktree {plan.worktree} was removed: stopping", file=sys.stderr, flush=True)
                    break
            sup.step()
            if sup.status == "failed":
                code = 1
                break
            busy = sup.status == "starting" or any(r.status in ("starting", "backoff") for r in sup.services.values())
            time.sleep(0.01 if busy else 0.1)
    finally:
        if sup.status != "failed":
            sup.status = "stopping"
        sup.write_state()
        sup.stop_all()
        if sup.status != "failed":
            sup.status = "stopped"
        metrics.close()
        registry.release(plan.key, me)
        sup.write_state()
    return code


if __name__ == "__main__":
    sys.exit(main())
