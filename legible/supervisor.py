"""The supervisor: one detached process per stack that owns every service process of it.

``legible up`` writes the plan (``.legible/plan.json``) and starts ``python -m legible.supervisor PLAN``
in a new session (or, to overlap the interpreter's start with its own work, starts ``python -m
legible.supervisor -`` first and writes the plan's path to its stdin once the plan is built); the
supervisor then:

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
* is the subreaper of its stack (``PR_SET_CHILD_SUBREAPER``): a service's process orphaned by its parent
  (Chromium after the Playwright driver, a daemon the app forked) is reparented to it and reaped as soon as
  it exits, so a stopped group is gone at once instead of when PID 1 gets round to its zombies;
* serves its own Prometheus metrics on the ``supervisor`` port (scraped by VictoriaMetrics), and pushes
  them to VictoriaMetrics' ``/api/v1/import/prometheus`` the moment a service becomes ready, so
  ``legible_service_ready_seconds{service="app"}`` is queryable as soon as ``legible up --wait`` returns;
* writes ``.legible/state.json`` (schema ``legible.state/v1``) atomically on every change, and releases
  the port lease when it exits;
* numbers every start of the user services as a *deploy* (:mod:`legible.deploys`, ``.legible/deploys.jsonl``)
  and takes restart requests on a control socket (``.legible/supervisor.sock``, mode 0600; see
  :func:`legible.control.request_restart`): the named user services (default: all of them, never the
  stores, collector or browser) and those that depend on them are stopped and started again under the same
  lease, and a service that fails to start then is ``failed`` (the stack ``degraded``, the observability
  services untouched);
* with ``watch`` patterns on a service (``[app] watch``, ``legible up --watch``), restarts it when matching
  files change (watchfiles, debounced).

The decision logic lives in :class:`Supervisor` with the clock, process spawner and probe injected, so it
is unit-tested without processes; :func:`main` wires the real ones.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from legible._files import PRIVATE_UMASK

# What a service's start needs of legible (psutil, the plan and its lease, about 0.1 s of CPU) is imported
# where it is used: ``python -m legible.supervisor -`` starts the collector first and imports it meanwhile
# (:data:`_STACK_MODULES`), so the collector's own imports begin that much sooner (issue 12).
if TYPE_CHECKING:
    from legible._procs import ProcRef
    from legible.contract import ServiceState, StateFile
    from legible.plan import StackPlan
    from legible.services.base import Probe, ServicePlan

STATE_SCHEMA: Final = "legible.state/v1"
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 8.0
#: A service up this long has its crash streak (for backoff and the cap) reset.
STABLE_AFTER_S = 30.0
#: Shutdown waves, highest first: the app and the browser together (both report to the collector), then the
#: collector (it flushes what they sent), then the stores.
ROLE_TIER = {"store": 0, "collector": 1, "app": 2, "browser": 2}
#: Probe kinds of the database services (``kind = "postgres"``/``"redis"``).
DB_PROBES = ("postgres", "redis")
#: Seconds between liveness probes of a ready service that has an ``http`` probe. A crash is seen at once
#: without them (the child's exit wakes the main loop through ``SIGCHLD``); they catch a hung or failing
#: service, so they can be slow: each probe costs the supervisor and the service about a millisecond of CPU,
#: on every idle stack of the machine (issue 12; 2 s before).
LIVENESS_EVERY_S = 5.0
#: Seconds the main loop sleeps at most while nothing starts: every event it serves wakes it before (a child's
#: exit by ``SIGCHLD``, a signal, a control request, a git snapshot), except the worktree-removed check (every
#: second) and the file watcher, which keeps the busy :data:`LOOP_S` while a service has ``watch`` patterns.
IDLE_LOOP_S = 1.0
#: Seconds the main loop sleeps at most while a service starts or backs off (its probe's cadence), or files are
#: watched.
LOOP_S = 0.1
#: Failed liveness probes in a row that make a ready service ``unhealthy`` (and restart it).
LIVENESS_FAILURES = 3


class Proc(Protocol):
    """What the supervisor needs of a running process (``subprocess.Popen`` satisfies it)."""

    pid: int

    def poll(self) -> int | None:
        """Exit code, or ``None`` while running."""
        ...


Spawner = Callable[["ServicePlan"], Proc]
ProbeFn = Callable[["ServicePlan", int], bool]
#: Liveness probe: ``""`` when the service is alive, else the cause (one line).
LiveFn = Callable[["ServicePlan"], str]
#: Sends a signal to a process group: ``(pgid, signum)``.
SignalFn = Callable[[int, int], object]
StopFn = Callable[[list["ServiceRun"]], object]
#: Roles a restart may touch: the user's services (the app and its extra services).
RESTARTABLE_ROLES = ("app",)


class RestartRefused(ValueError):
    """A restart request the supervisor cannot carry out now (unknown service, stack still starting, ...).

    Attributes:
        hint: what to do instead.

    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


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
        on_change: called after every tick that changed a status.
        stop: stops services (default :func:`stop_services`).
        wall: wall-clock seconds since the epoch (default ``time.time``), for deploy records.
        snapshot: called with a deploy's number once its services are spawned; returns its git snapshot
            (:class:`legible.deploys.GitSnapshot`), or ``None`` when it is delivered later through
            :meth:`apply_snapshot` (the real supervisor runs git in a thread) or not at all (default).
        on_deploy: called with the current deploy record each time it begins or ends.
        deploy_number: the number of the last deploy recorded (the next one is one more).

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
    stop: StopFn = field(default=lambda runs: stop_services(runs))
    wall: Callable[[], float] = time.time
    snapshot: Callable[[int], Any] = lambda number: None
    on_deploy: Callable[[dict[str, Any]], None] = lambda rec: None
    deploy_number: int = 0

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
        #: the current deploy record (see :mod:`legible.deploys`), or ``None`` before the first.
        self.deploy: dict[str, Any] | None = None
        #: services of the current deploy not ready yet; empty once it ended.
        self.deploying: set[str] = set()
        self._deploy_t0 = 0.0
        self._need_snapshot = False

    # -- deploys ---------------------------------------------------------------------------------------
    def user_services(self) -> list[str]:
        """The services a restart may touch (role ``app``: the app and its extra services), in start order."""
        return [r.plan.name for r in self.services.values() if r.plan.role in RESTARTABLE_ROLES]

    def begin_deploy(self, names: list[str], trigger: str) -> dict[str, Any]:
        """Open deploy ``deploy_number + 1`` for ``names`` (already pending); returns its record."""
        from legible.deploys import new_record

        self.deploy_number += 1
        rec = new_record(self.deploy_number, trigger, names, None)
        rec["started_at"] = round(self.wall(), 6)
        self.deploy = rec
        self.deploying = set(names)
        self._deploy_t0 = self.clock()
        self._need_snapshot = True
        self.on_deploy(rec)
        return rec

    def restart(self, names: list[str] | None = None, trigger: str = "restart") -> dict[str, Any]:
        """Stop ``names`` (default: every user service) and their dependents, and start them as a new deploy.

        The stores, the collector and the browser are never touched. Services start again in dependency
        order as :meth:`step` runs; one that exits or misses its ``ready_timeout`` is ``failed`` (no backoff
        loop) and the deploy with it, while the rest of the stack runs on.

        Args:
            names: user service names, or ``None``/empty for all of them.
            trigger: ``restart`` or ``watch``, recorded in the deploy.

        Returns:
            The new deploy record (``status = "starting"``).

        Raises:
            RestartRefused: an unknown or non-user service, the stack is still starting or stopping, or a
                deploy is still starting.

        """
        users = self.user_services()
        if self.stopping or self.status in ("failed", "stopping", "stopped"):
            raise RestartRefused(f"the stack is {self.status}", hint="run `legible up --wait`")
        if self.status == "starting":
            raise RestartRefused("the stack is still starting", hint="wait for `legible up --wait`, then restart")
        if self.deploying:
            assert self.deploy is not None
            raise RestartRefused(
                f"deploy {self.deploy['number']} is still starting ({', '.join(sorted(self.deploying))})",
                hint="wait a moment and run `legible restart` again",
            )
        for n in names or []:
            if n not in self.services:
                raise RestartRefused(f"no service {n!r} in this stack", hint=f"services: {', '.join(users)}")
            if n not in users and self.services[n].plan.probe.kind in DB_PROBES:
                raise RestartRefused(
                    f"{n} is a database service: it keeps running across deploys",
                    hint=f"`legible reset {n}` empties it; `legible down && legible up` restarts it",
                )
            if n not in users:
                raise RestartRefused(
                    f"{n} is part of the observability stack, not the app",
                    hint=f"restart the app's services ({', '.join(users)}); `legible down && legible up` for the rest",
                )
        chosen = set(names or users)
        grew = True
        while grew:  # dependents of a restarted service restart too (they may hold connections to it)
            more = {u for u in users if set(self.services[u].plan.depends_on) & chosen} - chosen
            chosen |= more
            grew = bool(more)
        ordered = [u for u in users if u in chosen]
        runs = [self.services[u] for u in ordered]
        t_stop = self.clock()
        self.stop(runs)
        stop_ms = round((self.clock() - t_stop) * 1000, 1)
        for r in runs:
            r.proc, r.ref = None, None
            r.status = "pending"
            r.error = ""
            r.exit_code = None
            r.streak = 0
            r.ready_ms = r.first_ready_ms = None  # the startup figure is the current deploy's
        rec = self.begin_deploy(ordered, trigger)
        rec["stop_ms"] = stop_ms  # stopping the previous processes (their own shutdown: SIGTERM to exit)
        self._deploy_t0 = t_stop  # took_ms: from the request to ready, stop included
        self.step()
        return rec

    def apply_snapshot(self, number: int, snap: Any) -> None:
        """Record the git snapshot ``snap`` in deploy ``number`` (ignored when that deploy is no longer current)."""
        if self.deploy is None or self.deploy["number"] != number:
            return
        self.deploy.update(commit=snap.commit, dirty=snap.dirty, changes=snap.changes, files=snap.files)
        self.on_deploy(self.deploy)  # a new line for the same number: readers keep the last one

    def _deploy_progress(self, run: ServiceRun) -> None:
        """``run`` became ready: record it; close the deploy when all of it is ready."""
        if self.deploy is None or run.plan.name not in self.deploying:
            return
        self.deploying.discard(run.plan.name)
        self.deploy["ready"][run.plan.name] = None if run.ready_ms is None else round(run.ready_ms, 1)
        setup = self._setup_record(run)
        if setup is not None:
            self.deploy.setdefault("setup", {})[run.plan.name] = setup
        if not self.deploying:
            ready = self.deploy["ready"]
            app = ready.get("app")
            self.deploy["ready_ms"] = app if app is not None else max((v or 0.0) for v in ready.values())
            self.deploy["took_ms"] = round((self.clock() - self._deploy_t0) * 1000, 1)
            self.deploy["status"] = "ready"
            self.on_deploy(self.deploy)

    def _deploy_failed(self, run: ServiceRun, why: str) -> None:
        """A service of the current deploy did not start: it and the deploy fail; its dependents stay down."""
        run.status, run.error, run.proc = "failed", why, None
        if self.deploy is None:
            return
        for name in sorted(self.deploying - {run.plan.name}):
            other = self.services[name]
            if other.status == "pending":
                other.status, other.error = "failed", f"not started: {run.plan.name} did not start"
        self.deploying.clear()
        self.deploy["status"] = "failed"
        self.deploy["error"] = why
        self.deploy["failed_service"] = run.plan.name
        setup = self._setup_record(run)
        if setup is not None:
            self.deploy.setdefault("setup", {})[run.plan.name] = setup
        self.deploy["log_offset"] = run.log_offset  # where this start's output begins in the service's log
        self.deploy["took_ms"] = round((self.clock() - self._deploy_t0) * 1000, 1)
        self.on_deploy(self.deploy)

    # -- decisions -------------------------------------------------------------------------------------
    def step(self) -> None:
        """Advance every service by one tick: spawn, probe, notice exits, restart. Never blocks long."""
        now = self.clock()
        changed = False
        # A user service that can start now is spawned first: it is what `up --wait` waits for last, and the
        # observability services' spawns (VictoriaMetrics' fork and exec, the collector's start) cost it
        # 5-15 ms otherwise (issue 12). The rest keep plan order, so a service whose dependency becomes ready
        # in this tick still starts in this tick.
        runs = list(self.services.values())
        first = [r for r in runs if r.status == "pending" and r.plan.role in RESTARTABLE_ROLES and self._deps_ready(r)]
        for run in [*first, *(r for r in runs if not any(r is f for f in first))]:
            changed |= self._step_one(run, now)
        if self._need_snapshot and self.deploy is not None:  # after the spawns: git runs while the app starts
            self._need_snapshot = False
            snap = self.snapshot(int(self.deploy["number"]))
            if snap is not None:
                self.apply_snapshot(int(self.deploy["number"]), snap)
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
        from legible._procs import ProcRef

        run.ref = ProcRef.of(run.proc.pid)
        run.started_at = now
        run.status = "starting"

    def _step_one(self, run: ServiceRun, now: float) -> bool:
        st = run.status
        if st == "pending" and (self.status == "starting" or run.plan.name in self.deploying) and self._deps_ready(run):
            self._start(run, now)
            if run.status == "failed":
                if self.status == "starting":
                    self._fail(run, run.error)
                else:
                    self._deploy_failed(run, run.error)
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
                self._deploy_progress(run)
                return True
            if now - run.started_at > run.plan.ready_timeout:
                msg = f"{run.plan.name} was not ready after {run.plan.ready_timeout:g} s ({_describe(run.plan.probe)})"
                if self.status == "starting":
                    self._fail(run, msg)
                elif run.plan.name in self.deploying:
                    self.stop([run])
                    self._deploy_failed(run, msg)
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

    def _setup_record(self, run: ServiceRun) -> dict[str, Any] | None:
        """``run``'s setup record of this start (``None`` without setup steps); see :mod:`legible.setup_steps`."""
        if not run.plan.setup or not run.plan.log:
            return None
        from legible.setup_steps import read_record

        rec = read_record(run.plan.log)
        if rec is None:
            return None
        return {k: rec[k] for k in ("ok", "ms", "steps", "error") if k in rec}

    def _exited(self, run: ServiceRun, now: float, code: int) -> bool:
        setup = self._setup_record(run)
        if setup is not None and not setup["ok"] and run.status == "starting":
            why = f"{run.plan.name}: {setup['error']}"
            if self.status == "starting":
                self._fail(run, why)
            elif run.plan.name in self.deploying:
                self._deploy_failed(run, why)
            else:
                self._crashed(run, now, why)
            return True
        if self.status == "starting":  # fail fast: a restart loop would hide a broken command
            self._fail(run, f"{run.plan.name} exited with code {code} while the stack was starting")
        elif run.plan.name in self.deploying:  # the same rule for a deploy: the new code does not start
            self._deploy_failed(
                run, f"{run.plan.name} exited with code {code} while deploy {self.deploy_number} was starting"
            )
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
        if self.deploy is not None and self.deploying:
            self.deploying.clear()
            self.deploy.update(status="failed", error=why, failed_service=run.plan.name)
            setup = self._setup_record(run)
            if setup is not None:
                self.deploy.setdefault("setup", {})[run.plan.name] = setup
            self.on_deploy(self.deploy)

    # -- state -----------------------------------------------------------------------------------------
    def state(self) -> StateFile:
        """The ``state.json`` document."""
        from legible._procs import ProcRef

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
            "deploy": None if self.deploy is None else {k: v for k, v in self.deploy.items() if k != "files"},
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


def _die_with_parent() -> Callable[[], None]:
    """Return a ``preexec_fn`` that makes the child get SIGTERM when this process (its spawner) dies.

    ``PR_SET_PDEATHSIG`` (prctl(2)) is armed in the child between ``fork`` and ``exec``; a spawner killed
    before that call (``kill -9`` of the supervisor while it starts the fork server at ready, say) sends no
    signal, and the child would run on, reparented. So the child then compares its parent with the spawner's
    pid taken before the fork and exits at once (status 1, before ``exec``) when they differ.
    """
    spawner = os.getpid()

    def arm() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != spawner:  # the spawner died before the prctl: no signal will come
            os._exit(1)

    return arm


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (``PR_SET_CHILD_SUBREAPER``, prctl(2)).

    A service's process that loses its parent (the browser agent's Playwright driver, Chromium, a daemon the
    app forked) is then reparented here rather than to PID 1, and :func:`reap_orphans` collects it the
    moment it exits. Without it such a zombie stays in its service's process group until PID 1 reaps it,
    which some container and sandbox inits do only every second or two: the group looks alive, so stopping
    it waited that long (the 0.4-2 s "app, chromium" tier of issue 12). Returns False when not on Linux.
    """
    return _prctl is not None and _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


#: The services' leaders spawned by :func:`spawn_service`, by pid, until their ``Popen`` has reaped them.
_LEADERS: dict[int, subprocess.Popen[bytes]] = {}


def reap_orphans() -> list[int]:
    """Reap this process's exited children that are neither a service's leader nor of its own session.

    Only the orphans a subreaper inherits qualify: a service's leader is reaped by its ``Popen`` (which
    keeps its exit code), and what the supervisor itself runs (git, in a thread) shares its session and is
    left to its own ``subprocess`` call. Children are read from ``/proc/self/task/*/children``; each one is
    reaped with ``waitpid(pid, WNOHANG)``, so a live one is never waited for.

    Returns:
        The pids reaped (empty on a system without ``/proc``).

    """
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    for pid in [pid for pid, proc in _LEADERS.items() if proc.returncode is not None]:
        del _LEADERS[pid]
    known = set(_LEADERS)
    mine = os.getsid(0)
    reaped = []
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as fh:
                pids = [int(p) for p in fh.read().split()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            if pid in known:
                continue
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if fields[0] != "Z" or int(fields[3]) == mine:  # state, then ppid pgrp session
                    continue
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped.append(pid)
            except (OSError, ValueError, IndexError):
                continue
    return reaped


def spawn_service(sp: ServicePlan) -> subprocess.Popen[bytes]:
    """Start ``sp`` in its own session and process group, output appended to its log.

    Its environment is this process's (inherited from ``legible up``) plus the plan's additions
    (:func:`legible.services.context.service_environ`).

    Raises:
        OSError: the command cannot be executed (not found, not executable).

    """
    from legible.services.context import service_argv, service_environ

    Path(sp.log).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = service_environ(sp)  # the inherited environment is added here, never stored in the plan
    argv = service_argv(sp, env)
    if sp.setup:  # setup steps first (legible.setup_steps), then the command in the same process
        from legible.setup_steps import record_path, wrap

        Path(record_path(sp.log)).unlink(missing_ok=True)  # this start's record only
        argv = wrap(argv, sp.setup, sp.log)
    with open(sp.log, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=sp.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - a prctl and a getppid; the supervisor is single-threaded when spawning
            close_fds=True,
        )
    _LEADERS[proc.pid] = proc
    return proc


def probe_ready(sp: ServicePlan, log_offset: int = 0) -> bool:
    """Run ``sp``'s readiness probe once; True if ready. Never raises, returns within about 0.5 s."""
    import http.client  # here, not at the top: the supervisor spawns the first services before it is needed
    import urllib.parse

    p = sp.probe
    try:
        if p.kind == "none":
            return True
        if p.kind == "tcp":
            sock = _connect("127.0.0.1", int(p.target), 0.25)
            if sock is None:
                return False
            sock.close()
            return True
        if p.kind == "http":
            u = urllib.parse.urlsplit(p.target)
            host, port = u.hostname or "127.0.0.1", u.port or 80
            conn = http.client.HTTPConnection(host, port, timeout=0.5)
            try:
                if _is_ipv4(host):  # refused while the service starts: told without http.client's exceptions
                    conn.sock = _connect(host, port, 0.5)
                    if conn.sock is None:
                        return False
                conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""))
                return conn.getresponse().status < 500
            finally:
                conn.close()
        if p.kind in ("postgres", "redis"):
            from legible._dbrun import pg_ready, redis_ready

            if p.kind == "postgres":
                return pg_ready(sp.port, data_dir=Path(p.target))
            return redis_ready(int(p.target))
        if p.kind == "log":
            with open(sp.log, "rb") as fh:
                fh.seek(log_offset)
                text = fh.read(4 * 1024 * 1024).decode("utf-8", "replace")
            return re.search(p.target, text, re.MULTILINE) is not None
    except (OSError, http.client.HTTPException, ValueError):
        return False
    return False


def _is_ipv4(host: str) -> bool:
    """True for a dotted IPv4 address such as ``127.0.0.1`` (the plan's probe targets), False for a name."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return host.count(".") == 3


def _connect(host: str, port: int, timeout: float) -> socket.socket | None:
    """A TCP connection to the IPv4 address ``host``:``port`` (``TCP_NODELAY``, as http.client sets), or ``None``.

    ``connect_ex`` returns the error instead of raising it: a supervisor probes each starting service every
    5 ms, and a refused connection (the usual answer while a service starts) then costs about a fifth of
    the CPU of ``http.client``'s raised and caught ``ConnectionRefusedError`` (issue 12).

    Raises:
        OSError: the socket cannot be created (out of file descriptors).

    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if sock.connect_ex((host, port)) != 0:
        sock.close()
        return None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def probe_live(sp: ServicePlan) -> str:
    """Probe a ready ``http`` service once; return ``""`` if it answers below 500, else the cause (one line).

    The cause is ``HTTP <code>: <first line of the body>`` (the collector's ``/health`` says why), or
    ``no answer: <error>``. Never raises, returns within about 1 s.
    """
    import http.client
    import urllib.parse

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
        "postgres": f"postgres probe (postmaster.pid, pg_isready) of {p.target}",
        "redis": f"redis PING on 127.0.0.1:{p.target}",
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
    from legible._procs import signal_group

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
            sleep(0.005)
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
    """True once ``run``'s process group has no member left (leader and orphans reaped first); ``kill(-pgid, 0)``."""
    assert run.proc is not None
    run.proc.poll()  # reap the leader so it does not count as alive
    reap_orphans()  # exited orphans (reparented here) would keep the group alive as zombies
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
        self.deploy_ready = Gauge(
            "legible_deploy_ready_seconds",
            "Time from spawn to ready of each user service in a deploy (label deploy: its number), in seconds.",
            ["service", "deploy"],
            registry=self.registry,
        )
        self._deploys_shown: list[tuple[str, str]] = []
        self.stack_ready = Gauge(
            "legible_stack_ready_seconds",
            "Time from supervisor start to every service ready, in seconds.",
            registry=self.registry,
        )
        dbs: list[tuple[str, str, int, str]] = [
            (s.name, s.probe.kind, s.port, s.probe.target) for s in plan.services if s.probe.kind in DB_PROBES
        ]
        if dbs:  # legible_db_* of the database services, read at each scrape (legible._dbmetrics)
            from legible._dbmetrics import DbCollector

            self.registry.register(DbCollector(dbs))
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

    def deployed(self, rec: dict[str, Any]) -> None:
        """Add deploy ``rec``'s ready times to ``legible_deploy_ready_seconds`` (the last 20 deploys kept)."""
        for name, ms in (rec.get("ready") or {}).items():
            if ms is None:
                continue
            labels = (name, str(rec["number"]))
            self.deploy_ready.labels(*labels).set(ms / 1000)
            self._deploys_shown.append(labels)
        while len(self._deploys_shown) > 20 * 4:
            self.deploy_ready.remove(*self._deploys_shown.pop(0))

    def push(self) -> None:
        """POST the current values to VictoriaMetrics' import API with the labels a scrape would add."""
        import http.client
        import urllib.parse

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
    import http.client
    import urllib.parse

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
    """Entry point: ``python -m legible.supervisor PLAN_JSON``; returns 0 after a clean stop, 1 if the start failed.

    With ``-`` for ``PLAN_JSON``, the path is read from stdin (one line); at end of file it returns 0 having
    started nothing. Its output then goes to ``logs/supervisor.log`` beside the plan.

    The services that wait for nothing (VictoriaMetrics, the collector, the app) are spawned first, before
    the lease transfer, the metrics server, the control socket and the file watcher are set up: those
    overlap the services' own start instead of adding to it (issue 12). A signal wakes the main loop at once
    (``signal.set_wakeup_fd``), so ``legible down`` does not wait out a poll interval.
    """
    args = argv if argv is not None else sys.argv[1:]
    os.umask(PRIVATE_UMASK)  # state.json, logs and every service's files: 0600 in 0700 directories
    prewarmed: list[subprocess.Popen[bytes]] = []
    notify: list[int] = []  # started early: its stdout is `legible up`'s notify pipe (see _notify)
    if args[0] == "-":  # started early by `legible up` (imports done meanwhile): the plan's path comes on stdin
        if len(args) >= 3:  # the stack's key and lease registry: the collector can start importing now
            prewarmed = _prewarm_collector(args[1], args[2])
        _import_stack_modules()  # while up builds the plan, not after it (and only until it arrives)
        line = sys.stdin.readline().strip()
        if not line:
            for proc in prewarmed:
                _discard_prewarmed(proc)
            return 0  # up did not start the stack after all (already running, an error): nothing to do
        plan_path = Path(line)
        notify.append(os.dup(1))
        _log_to(plan_path.parent / "logs" / "supervisor.log")
    else:
        plan_path = Path(args[0])
    from legible.plan import StackPlan

    plan = StackPlan.from_dict(json.loads(plan_path.read_text()))
    state_path = plan_path.parent / "state.json"
    stop = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["flag"] = True

    become_subreaper()  # before the first spawn: every orphan of the stack is reparented here
    wake_r, wake_w = os.pipe()  # a signal writes a byte here, which ends the main loop's select at once
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    # A child's exit (a service, or an orphan this subreaper inherited) wakes the loop at once, so it can
    # sleep IDLE_LOOP_S while nothing starts; the handler does nothing, the wakeup fd is the point.
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def nudge() -> None:
        """Wake the main loop now (from another thread)."""
        try:
            os.write(wake_w, b"\0")
        except OSError:  # the pipe is full: the loop is awake already
            pass

    metrics: _Metrics | None = None  # set up once the first services are spawned
    pushed_store = {"ready": False}

    def on_ready(name: str, ms: float) -> None:
        from legible.services.victoria_metrics import publish_scrape_target

        try:  # VictoriaMetrics scrapes a service's metrics_path only once it is ready (no start-up scrape errors)
            publish_scrape_target(plan_path.parent / "config", name)
        except OSError as exc:
            print(f"supervisor: cannot publish {name}'s scrape target: {exc}", file=sys.stderr, flush=True)
        if name == "vmagent" and vmagent_reload["pending"]:
            reload_vmagent()
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
        if metrics is not None:
            metrics.update(s)
        s.write_state()
        if notify:
            _notify(notify, done=s.status != "starting")
        if metrics is not None and pushed_store["ready"]:
            metrics.push()

    from legible import deploys

    state_dir = plan_path.parent
    root = Path(plan.worktree)

    snapshots: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()

    def snapshot_later(number: int) -> None:
        """Run git in a thread so a slow repository never delays the probes; the loop applies the result."""

        def run() -> None:
            snapshots.put((number, deploys.git_snapshot(root)))
            nudge()  # the loop may sleep IDLE_LOOP_S: apply the snapshot now

        threading.Thread(target=run, name="legible-git", daemon=True).start()

    def on_deploy(rec: dict[str, Any]) -> None:
        try:
            deploys.append(state_dir, rec)
        except OSError as exc:
            print(f"supervisor: cannot record deploy {rec.get('number')}: {exc}", file=sys.stderr, flush=True)
        if rec.get("status") == "ready" and metrics is not None:
            metrics.deployed(rec)
        follow_deploy_in_forwarding(rec)

    vmagent_reload = {"pending": False}

    def follow_deploy_in_forwarding(rec: dict[str, Any]) -> None:
        """Move ``deploy``/``commit`` in vmagent's relabel file (it labels forwarded series), then SIGHUP it.

        Only a ready vmagent is signalled (before its handler is set, SIGHUP would end it); one still starting
        may have read the old file, so it is signalled once it is ready (``on_ready``).
        """
        run = sup.services.get("vmagent")
        if run is None:
            return
        from legible import forward

        try:
            changed = forward.follow_deploy(run.plan.argv, int(rec["number"]), rec.get("commit"))
        except (OSError, ValueError, KeyError) as exc:
            print(f"supervisor: vmagent's labels stay at the previous deploy: {exc}", file=sys.stderr, flush=True)
            return
        if changed:
            vmagent_reload["pending"] = True
            reload_vmagent()

    def reload_vmagent() -> None:
        run = sup.services.get("vmagent")
        if run is None or run.status != "ready" or run.proc is None or run.proc.poll() is not None:
            return
        vmagent_reload["pending"] = False
        try:
            os.kill(run.proc.pid, signal.SIGHUP)
        except OSError as exc:
            print(f"supervisor: cannot signal vmagent to re-read its labels: {exc}", file=sys.stderr, flush=True)

    def spawn(sp: ServicePlan) -> Proc:
        if prewarmed and sp.role == "collector":
            proc = _hand_over_collector(prewarmed.pop(), sp)
            if proc is not None:
                return proc
        return spawn_service(sp)

    sup = Supervisor(
        plan,
        state_path,
        spawn=spawn,
        on_ready=on_ready,
        on_change=on_change,
        snapshot=snapshot_later,
        on_deploy=on_deploy,
        deploy_number=deploys.next_number(state_dir) - 1,
    )
    sup.begin_deploy(sup.user_services(), "up")  # up's deploy: the user services, spawned as their deps get ready
    control: Any = None
    watcher: Any = None
    waiters: list[tuple[Any, int]] = []
    forksrv: list[subprocess.Popen[bytes]] | None = None  # the stack's fork server (legible.forkserver)
    code = 0
    git_marker = Path(plan.worktree) / ".git"  # a file in linked worktrees; nothing we write recreates it
    next_check = 0.0
    removed = False
    from legible._procs import ProcRef
    from legible.lease import LeaseRegistry

    me = ProcRef.of(os.getpid())
    assert me is not None

    registry = LeaseRegistry()
    try:
        if not stop["flag"]:
            sup.step()  # spawns every service that waits for nothing; state.json is written by on_change
        registry.transfer(plan.key, me)
        metrics = _Metrics(plan)
        if sup.deploy is not None and sup.deploy.get("status") == "ready":
            metrics.deployed(sup.deploy)
        on_change(sup)
        from legible.control import ControlServer, Watcher, send

        control = ControlServer(state_dir)
        watcher = Watcher(root, {s.name: list(s.watch) for s in plan.services if s.watch})
        watcher.start()
        while not stop["flag"]:
            if time.monotonic() >= next_check:  # a removed worktree takes its stack with it
                next_check = time.monotonic() + 1.0
                if not git_marker.exists():
                    print(f"supervisor: worktree {plan.worktree} was removed: stopping", file=sys.stderr, flush=True)
                    removed = True
                    break
            sup.step()
            if forksrv is None and sup.status == "ready":  # once, after `up --wait` saw ready; never restarted
                forksrv = _start_forkserver(state_dir)
            reap_orphans()
            if sup.status == "failed":
                code = 1
                break
            while not snapshots.empty():
                sup.apply_snapshot(*snapshots.get_nowait())
            if waiters and not sup.deploying and sup.deploy is not None:
                for conn, _n in waiters:
                    send(conn, {"done": True, "deploy": {k: v for k, v in sup.deploy.items() if k != "files"}})
                    conn.close()
                waiters.clear()
            changed = watcher.drain() if not sup.deploying and sup.status in ("ready", "degraded") else set()
            if changed:
                try:
                    sup.restart(sorted(changed), "watch")
                except RestartRefused as exc:
                    print(f"supervisor: watch restart skipped: {exc}", file=sys.stderr, flush=True)
            busy = sup.status == "starting" or any(r.status in ("starting", "backoff") for r in sup.services.values())
            idle_s = LOOP_S if watcher.specs else min(IDLE_LOOP_S, max(next_check - time.monotonic(), 0.0))
            for conn, req in control.wait(0.005 if busy else idle_s, wake=wake_r):
                if req.get("op") != "restart":
                    send(conn, {"ok": False, "error": f"unknown op {req.get('op')!r}", "hint": "op: restart"})
                    conn.close()
                    continue
                try:
                    rec = sup.restart([str(n) for n in req.get("services") or []], "restart")
                except RestartRefused as exc:
                    send(conn, {"ok": False, "error": str(exc), "hint": exc.hint})
                    conn.close()
                    continue
                send(conn, {"ok": True, "deploy": rec["number"], "services": rec["services"]})
                waiters.append((conn, rec["number"]))
    finally:
        if forksrv:  # first: a command from now on runs in-process and sees the stack stopping
            from legible.forkserver import stop_server

            stop_server(forksrv[0], str(state_dir))
        for proc in prewarmed:  # never handed a start (the stack stopped first, or no collector)
            _discard_prewarmed(proc)
        while notify:  # stopped while starting: up reads the state now
            os.close(notify.pop())
        if watcher is not None:
            watcher.close()
        if control is not None:
            control.close()
        for conn, _n in waiters:
            send(conn, {"ok": False, "error": "the stack is stopping", "hint": "run `legible up --wait`"})
            conn.close()
        if sup.deploying and sup.deploy is not None:  # stopped (down, timeout) before the deploy was ready
            sup.deploying.clear()
            sup.deploy.update(status="failed", error=sup.deploy.get("error") or "the stack stopped before it was ready")
            on_deploy(sup.deploy)
        if sup.status != "failed":
            sup.status = "stopping"
        sup.write_state()
        sup.stop_all()
        if sup.status != "failed":
            sup.status = "stopped"
        if metrics is not None:
            metrics.close()
        registry.release(plan.key, me)
        sup.write_state()
        if removed:  # what the services wrote after the removal (VictoriaMetrics flushes at exit) goes too
            _remove_recreated(state_dir, root)
    return code


def _prewarm_collector(key: str, registry: str) -> list[subprocess.Popen[bytes]]:
    """Start ``python -m legible._prewarm legible.collector`` (a collector importing before the plan exists).

    It gets its own session and ``PR_SET_PDEATHSIG`` like every service, and ``LEGIBLE_STACK=key`` and
    ``LEGIBLE_REGISTRY=registry`` in its environment so ``legible gc`` finds it. Returns ``[]`` if it cannot
    be started (the collector is then spawned the ordinary way).
    """
    from legible._paths import REGISTRY_ENV, STACK_ENV  # not _procs: psutil is imported after this spawn

    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "legible._prewarm", "legible.collector"],  # `ps` shows what it will be
            env={**os.environ, STACK_ENV: key, REGISTRY_ENV: registry},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - a prctl and a getppid; no thread runs yet
            close_fds=True,
        )
    except OSError:
        return []
    return [proc]


#: What :func:`main` imports after the plan arrives, imported by a supervisor started early while it waits:
#: first what the first spawns need, then what is set up after them (the lease transfer's file lock, the
#: control socket, the metrics server).
_STACK_MODULES = (
    "legible._procs",
    "legible.plan",
    "legible.services.context",
    "legible.deploys",
    "legible.lease",
    "filelock",
    "legible.control",
    "http.client",
    "urllib.parse",
    "prometheus_client",
)


def _import_stack_modules(modules: tuple[str, ...] = _STACK_MODULES, stdin: int = 0) -> list[str]:
    """Import ``modules`` in order until the plan's line is readable on ``stdin``; return those imported.

    With ``legible up`` planning from the config stamp (no pydantic, no typer), the plan can arrive before
    all of them are imported: the rest are then imported where they are used, after the first spawns
    instead of before them (issue 12). A module that fails to import is left to fail where it is used.
    """
    import importlib
    import select

    done = []
    for name in modules:
        try:
            if select.select([stdin], [], [], 0)[0]:
                break
        except (OSError, ValueError):  # no stdin to watch: import everything, as before
            pass
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        done.append(name)
    return done


def _hand_over_collector(proc: subprocess.Popen[bytes], sp: ServicePlan) -> subprocess.Popen[bytes] | None:
    """Give the prewarmed collector ``sp``'s start (argv, environment, cwd, log); ``None`` if it cannot take it.

    Only a plain ``sys.executable -m legible.collector`` start qualifies (no setup steps, nothing deferred);
    otherwise, or when the process died (its import failed), it is discarded and the caller spawns the
    collector the ordinary way, whose log then says what is wrong.
    """
    from legible._prewarm import MODULE
    from legible.services.context import service_argv, service_environ

    if sp.argv[:3] != [sys.executable, "-m", MODULE] or sp.setup or "argv" in sp.deferred:
        _discard_prewarmed(proc)
        return None
    try:
        Path(sp.log).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = service_environ(sp)
        spec = {"argv": service_argv(sp, env), "env": env, "cwd": sp.cwd, "log": sp.log}
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.close()
    except OSError:
        _discard_prewarmed(proc)
        return None
    _LEADERS[proc.pid] = proc
    return proc


def _discard_prewarmed(proc: subprocess.Popen[bytes]) -> None:
    """Kill and reap a prewarmed collector that got no start, closing its pipe."""
    proc.kill()
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    proc.wait()


def _start_forkserver(state_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start the stack's fork server (:mod:`legible.forkserver`): warm ``legible`` commands; ``[]`` if it cannot.

    It dies with the supervisor (``PR_SET_PDEATHSIG``), logs to ``run/forkserver.log`` (not under ``logs/``:
    the collector would store its lines as a service's) and is not a service: a dead fork server only makes
    commands start slower, with the same answers.
    """
    from legible.forkserver import start_server

    try:
        proc = start_server(str(state_dir), str(state_dir / "run" / "forkserver.log"), preexec_fn=_die_with_parent())
    except OSError as exc:
        print(f"supervisor: cannot start the fork server: {exc}", file=sys.stderr, flush=True)
        return []
    return [proc]  # not a leader: if it ends by itself, reap_orphans reaps it (it has its own session)


def _notify(fds: list[int], *, done: bool) -> None:
    """Write a line to ``legible up``'s notify pipe (``fds``: its one fd): state.json has changed.

    ``up --wait`` reads state.json when a line arrives instead of every 10 ms
    (:func:`legible.stack._wait_for`). Once ``done`` (the stack is no longer starting), or when ``up`` is
    gone, the pipe is closed and ``fds`` emptied. Only a few lines are ever written, far below a pipe's
    buffer, so the write never blocks.
    """
    try:
        os.write(fds[0], b"\n")
    except OSError:  # up has exited (BrokenPipeError): nobody to wake
        done = True
    if done:
        os.close(fds.pop())


def _log_to(path: Path) -> None:
    """Make ``path`` (appended to, 0600) this process's stdout and stderr, and ``/dev/null`` its stdin."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.dup2(null, 0)
    os.close(fd)
    os.close(null)


def _remove_recreated(state_dir: Path, root: Path) -> None:
    """Delete ``state_dir`` of a removed worktree, then ``root`` itself if nothing else is left in it.

    A service that writes while the worktree is being removed (VictoriaMetrics creates its data directories
    as it flushes) recreates ``<root>/.legible/...``; nothing of the stack may outlive its worktree.
    """
    import shutil

    if (root / ".git").exists():  # not removed after all (checked again: never delete a live worktree's data)
        return
    shutil.rmtree(state_dir, ignore_errors=True)
    try:
        root.rmdir()  # only when empty: files the user put there are never touched
    except OSError:
        pass


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is stopped, written and released: skip the interpreter's teardown (its daemon threads, the
    # metrics server, module cleanup), which `legible down` would otherwise wait out.
    os._exit(exit_code)
