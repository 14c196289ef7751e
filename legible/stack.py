"""Stack lifecycle: ``up``, ``down``, ``status``, ``ps``, ``gc`` as library calls (the CLI only renders).

Every function returns plain dicts shaped like the ``--json`` documents (with a ``schema`` field) and
raises :mod:`legible._errors` exceptions; none of them prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, cast

import psutil
from filelock import FileLock

from legible import contract
from legible._early import EarlyStart, begin, close_notify, discard, hand_over
from legible._errors import Interrupted, LeaseConflict, NotReady, NotRunning, PrerequisiteMissing, UsageError
from legible._files import PRIVATE_UMASK
from legible._procs import STACK_ENV, ProcRef, stack_processes, terminate, wait_gone
from legible.lease import LeaseRegistry
from legible.worktree import Worktree, find_worktree

if TYPE_CHECKING:
    from legible.contract import (
        DownDoc,
        ForwardHealth,
        GcDoc,
        GcLease,
        GcOrphan,
        PsDoc,
        PsRow,
        SigkilledDoc,
        StackState,
        StatusDoc,
        UpDoc,
    )

UP_SCHEMA: Final = "legible.up/v1"
DOWN_SCHEMA: Final = "legible.down/v1"
STATUS_SCHEMA: Final = "legible.status/v1"
PS_SCHEMA: Final = "legible.ps/v1"
GC_SCHEMA: Final = "legible.gc/v1"
LIVE = contract.LIVE


def read_state(wt: Worktree) -> StackState | None:
    """Return ``state.json`` of ``wt`` with ``alive`` (the supervisor runs) added, or ``None``.

    See :func:`legible.contract.read_state`, the one reader of ``state.json``.
    """
    return contract.read_state(wt.state_file)


def _read(wt: Worktree) -> dict[str, Any] | None:
    """:func:`read_state` as a plain dict, for the lifecycle code below that adds and rewrites keys."""
    return cast("dict[str, Any] | None", read_state(wt))


def _wait_for(wt: Worktree, ref: ProcRef, deadline: float, wake: IO[bytes] | None = None) -> dict[str, Any]:
    """Poll state.json until the stack is ready, failed or degraded, the supervisor dies, or the deadline.

    ``wake`` is the read end of the early supervisor's notify pipe (its stdout): it writes a line there
    each time it has written state.json and closes it once the stack is no longer starting, so state.json
    is read at once and the wait costs no CPU meanwhile. Without it (or after its end of file) state.json is
    read every 10 ms.
    """
    import select

    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = _read(wt)
        if state and state.get("supervisor") and ProcRef.from_dict(state["supervisor"]) == ref:
            if state["status"] in ("ready", "degraded", "failed", "stopped", "dead"):
                return state
        elif not ref.alive():
            break
        if wake is None:
            time.sleep(0.01)
            continue
        # the state is read again after a line, at end of file, and at least every 0.1 s in any case
        if select.select([wake], [], [], max(0.0, min(0.1, deadline - time.monotonic())))[0] and not os.read(
            wake.fileno(), 4096
        ):
            wake = None  # end of file: the supervisor is done starting (or gone); poll what is left
    return state or {"status": "starting", "services": {}}


def _failure(state: dict[str, Any], fallback: str) -> NotReady | PrerequisiteMissing:
    from legible.supervisor import log_tail

    name = state.get("error_service") or ""
    svc = state.get("services", {}).get(name, {})
    tail = log_tail(svc["log"]) if svc.get("log") else []
    msg = state.get("error") or fallback
    hint = f"see {svc['log']}" if svc.get("log") else "see .legible/logs/supervisor.log"
    if "could not start" in msg:
        return PrerequisiteMissing(msg, hint=f"install the command or fix it in legible.toml; {hint}", log_tail=tail)
    return NotReady(msg, hint=hint, log_tail=tail)


def up(
    start: Path | None = None,
    *,
    wait: bool = True,
    timeout: float = 60.0,
    browser: bool = False,
    watch: bool = False,
    early: EarlyStart | None = None,
) -> UpDoc:
    """Bring up the stack of the worktree containing ``start``; idempotent.

    With ``wait``, block until every service is ready (or ``timeout`` seconds pass). Without it, return as
    soon as the supervisor runs and the plan (ports, endpoints) is known. ``browser`` also starts Chromium
    (as ``[stack] browser = true`` does); a running stack without it is reported, not changed. ``watch``
    restarts the app on file changes (as ``[app] watch`` does). ``early`` is what
    :func:`legible._early.begin` found and started, when the caller (the CLI) called it before importing this
    module; ``start`` is then ignored.

    A dead stack of this worktree (its supervisor was killed) is reclaimed first: its leftover processes are
    stopped (SIGTERM, then SIGKILL) and its port block is reused when free. A port of the block taken by a
    foreign process before the stack starts moves the stack to the next free block. SIGINT or SIGTERM while
    starting stops what was started and frees the lease.

    Returns:
        ``legible.up/v1``: ``{"schema", "key", "worktree", "already_running", "status", "ready_ms",
        "services": {name: {status, ready_ms, restarts, port, ...}}, "endpoints", "env_file", "note",
        "warnings": [str]}``.

    Raises:
        ConfigError: legible.toml is missing or invalid (exit 2).
        UsageError: ``.legible/`` cannot be written (exit 2).
        PrerequisiteMissing: VictoriaMetrics or the app's command is not installed (exit 3).
        NotReady: a service exited or missed its readiness deadline; everything was stopped (exit 4).
        LeaseConflict: no free port block, the lease is held by another live process, or a port of the
            block was taken by a foreign process while the stack started (exit 5).
        Interrupted: SIGINT/SIGTERM arrived; the starting stack was stopped and its lease freed (exit 130).

    """
    t0 = time.monotonic()
    pre = early if early is not None else begin(start)  # starts while the config is read and the plan built
    wt, procs = pre.worktree, pre.procs
    try:
        from legible._config_file import load_config_cached

        # from the stamp, without pydantic, when the file validated before (issue 12); else validated and stamped
        cfg = load_config_cached(wt.root, wt.state_dir, make_state_dir=wt.ensure_state_dir)
        if cfg.stack.backend == "docker":
            from legible.docker_backend import engine

            engine()  # PrerequisiteMissing (exit 3) with the reason when no Docker engine answers
        with _interrupts_raise():
            try:
                try:
                    wt.ensure_state_dir()
                    lock = FileLock(str(wt.state_dir / "up.lock"), timeout=timeout, mode=0o600)
                    lock.acquire()
                except OSError as exc:
                    raise _unwritable(wt, exc) from None
                try:
                    return _up_locked(
                        wt, cfg, t0, wait=wait, timeout=timeout, browser=browser, watch=watch, early=procs
                    )
                finally:
                    lock.release()
            except KeyboardInterrupt:
                raise Interrupted(
                    f"interrupted: legible up in {wt.root} stopped what it had started and freed its lease",
                    hint="run `legible up --wait` again to start the stack",
                ) from None
    finally:
        for proc in procs:  # not handed a plan (already running, an error): it has started nothing
            discard(proc)


@contextlib.contextmanager
def _interrupts_raise() -> Iterator[None]:
    """Turn SIGTERM into ``KeyboardInterrupt`` (as SIGINT is) while ``up`` runs, so both clean up."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _unwritable(wt: Worktree, exc: OSError) -> UsageError:
    return UsageError(
        f"cannot write {wt.state_dir}: {exc.strerror or exc}",
        hint=f"make it a writable directory of yours (chmod u+rwx {shlex.quote(str(wt.state_dir))}), "
        "or remove it, then run `legible up` again",
    )


def _up_locked(
    wt: Worktree,
    cfg: Any,
    t0: float,
    *,
    wait: bool,
    timeout: float,
    browser: bool,
    watch: bool = False,
    early: list[subprocess.Popen[bytes]] | None = None,
) -> UpDoc:
    state = _read(wt)
    if state and state["alive"] and state["status"] in (*LIVE, "stopping"):
        ref = ProcRef.from_dict(state["supervisor"])
        assert ref is not None
        if wait and state["status"] == "starting":
            state = _wait_for(wt, ref, t0 + timeout)
        return _up_result(
            wt, state, already=True, config_hash=_config_hash(cfg), unapplied=_unapplied(wt, browser, watch)
        )
    registry = LeaseRegistry()
    prefer, reclaimed = _reclaim_dead(wt, state, registry)
    me = ProcRef.of(os.getpid())
    assert me is not None
    from legible.plan import build_plan

    avoid: set[int] = set()
    proc: subprocess.Popen[bytes] | None = None
    try:
        while True:
            lease = registry.grant(wt.key, str(wt.root), me, prefer=prefer, avoid=frozenset(avoid))
            if ProcRef.from_dict(lease.owner) != me:
                raise LeaseConflict(
                    f"the lease of {wt.key} is held by live process {lease.owner.get('pid')} "
                    "but state.json shows no stack",
                    hint="run `legible down` (or `legible gc`) in this worktree, then `legible up`",
                )
            plan = build_plan(wt, cfg, lease, browser=browser, watch=watch)
            if cfg.stack.backend == "docker":
                from legible.docker_backend import pull

                pull(plan)  # before the readiness deadlines start
            busy = _foreign_listeners(plan.ports.values(), wt.key)
            if not busy:
                break
            registry.release(wt.key, me)  # taken since the grant: move to the next free block
            avoid.add(lease.base)
            prefer = None
            if len(avoid) >= 3:
                raise _port_conflict(busy, "before the stack started")
        try:
            plan_path = plan.write(wt.state_dir)
            wt.state_file.unlink(missing_ok=True)
            _rotate_logs(wt)
            fd = os.open(wt.logs_dir / "supervisor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _unwritable(wt, exc) from None
        with os.fdopen(fd, "ab") as log:
            proc = hand_over(early or [], plan_path) or subprocess.Popen(
                [sys.executable, "-m", "legible.supervisor", str(plan_path)],
                cwd=str(wt.root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the agent's terminal does not reach it: up stops it
                close_fds=True,
                umask=PRIVATE_UMASK,
            )
        ref = ProcRef.of(proc.pid) or ProcRef(proc.pid, time.time())
        registry.transfer(wt.key, ref)
        deadline = t0 + timeout
        if not wait:
            while time.monotonic() < deadline and not wt.state_file.exists() and proc.poll() is None:
                time.sleep(0.005)
            state = _read(wt) or {"status": "starting", "services": {}}
            close_notify(proc)
            return _up_result(wt, state, already=False, reclaimed=reclaimed)
        state = _wait_for(wt, ref, deadline, wake=proc.stdout)
    except BaseException:
        if proc is not None:
            _stop_started(wt, proc, registry)
            close_notify(proc)
        registry.release(wt.key, me)
        raise
    close_notify(proc)
    if state.get("status") in ("ready", "degraded"):
        return _up_result(wt, state, already=False, reclaimed=reclaimed)
    if state.get("status") in ("failed", "stopped", "dead"):
        wait_gone(ref, 15.0)
        busy = _foreign_listeners(_service_ports(state, plan), wt.key)
        if busy:
            raise _port_conflict(busy, "while the stack started")
        raise _failure(state, "the stack failed to start")
    # timed out: stop what started, then report the service that was not ready
    _stop_started(wt, proc, registry)
    # the user's services first: under load the collector may be late too, but the app is what was awaited
    services = state.get("services", {})
    waiting = sorted(
        (n for n, s in services.items() if s.get("status") != "ready"),
        key=lambda n: (services[n].get("status") != "starting", services[n].get("role") != "app"),
    )
    name = waiting[0] if waiting else ""
    state = {
        **state,
        "error_service": name,
        "error": f"{name or 'the stack'} was not ready within --timeout {timeout:g} s",
    }
    raise _failure(state, "not ready in time")


def _stop_started(wt: Worktree, proc: subprocess.Popen[bytes], registry: LeaseRegistry) -> None:
    """Stop a supervisor ``up`` started (it stops its services), then anything of the stack left, and free the lease.

    A second Ctrl-C while this runs is ignored, so the cleanup is not cut short.
    """
    with _signals_ignored():
        _stop_started_now(wt, proc, registry)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _stop_started_now(wt: Worktree, proc: subprocess.Popen[bytes], registry: LeaseRegistry) -> None:
    ref = ProcRef.of(proc.pid)
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    if ref is not None and not wait_gone(ref, 15.0):
        proc.kill()
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        pass
    terminate(stack_processes(wt.key, registry=str(registry.path)), timeout=2.0)
    registry.release(wt.key)


def _reclaim_dead(wt: Worktree, state: dict[str, Any] | None, registry: LeaseRegistry) -> tuple[int | None, list[int]]:
    """Stop what a dead stack of ``wt`` left running; return ``(its block base, pids signalled)``.

    A stack is dead when state.json says so (its supervisor is gone) or its lease's owner is gone. Its
    processes are found by ``LEGIBLE_STACK`` (even grandchildren), SIGTERM then SIGKILL (for those that
    ignore SIGTERM), so its ports are free again and the block can be reused.
    """
    lease = registry.get(wt.key)
    dead_lease = lease is not None and not lease.owner_alive()
    if not dead_lease and not (state and state.get("status") == "dead"):
        return None, []
    killed = terminate(stack_processes(wt.key, registry=str(registry.path)), timeout=2.0)
    if dead_lease:
        assert lease is not None
        registry.release(wt.key, ProcRef.from_dict(lease.owner))
    base = (state or {}).get("lease_base") or (lease.base if lease else None)
    return (int(base) if base else None), killed


def _service_ports(state: dict[str, Any], plan: Any) -> list[int]:
    ports = [int(s["port"]) for s in state.get("services", {}).values() if s.get("port")]
    return [*ports, plan.ports["otlp-grpc"], plan.ports["supervisor"]]


def _foreign_listeners(ports: Any, key: str) -> list[tuple[int, int | None, str]]:
    """``[(port, pid, name)]`` for each of ``ports`` with a TCP listener on it that is not of stack ``key``."""
    from legible.lease import port_free

    wanted = [p for p in ports if not port_free(p)]
    if not wanted:
        return []
    owners: dict[int, int | None] = {p: None for p in wanted}
    try:
        for c in psutil.net_connections("tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in owners:
                owners[c.laddr.port] = c.pid
    except (psutil.AccessDenied, OSError):
        pass
    out = []
    for port, pid in owners.items():
        name = ""
        if pid is None and port_free(port):
            continue  # its listener closed between the two looks (a service of this stack still exiting)
        if pid is not None:
            try:
                proc = psutil.Process(pid)
                if proc.environ().get(STACK_ENV) == key:
                    continue  # ours (a leftover of this very stack is reclaimed, not reported)
                name = proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        out.append((port, pid, name))
    return out


def _port_conflict(busy: list[tuple[int, int | None, str]], when: str) -> LeaseConflict:
    port, pid, name = busy[0]
    owner = f"process {pid} ({name})" if pid is not None else "another user's process"
    return LeaseConflict(
        f"port {port} of this stack's lease was taken by {owner} {when}",
        hint=f"stop {owner} or let it pick another port, then run `legible up` again",
    )


def _config_hash(cfg: Any) -> str:
    import hashlib

    raw = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _rotate_logs(wt: Worktree) -> None:
    """Keep one previous generation of each service log (``<service>.log.1``) so a fresh run starts clean."""
    wt.logs_dir.mkdir(parents=True, exist_ok=True)
    for log in wt.logs_dir.glob("*.log"):
        os.replace(log, log.with_suffix(".log.1"))


def _mark_idle_browser(wt: Worktree, services: dict[str, Any]) -> None:
    """Show a ready browser agent whose Chromium has not started yet (the lazy browser) as ``idle``."""
    chromium = services.get("chromium")
    if chromium and chromium.get("status") == "ready":
        from legible.browser.client import browser_launched

        if not browser_launched(wt.state_dir):
            chromium["status"] = "idle"  # the agent answers; Chromium starts at the first browser call


def _unapplied(wt: Worktree, browser: bool, watch: bool) -> list[str]:
    """The ``up`` options (``--browser``, ``--watch``) a running stack was not started with: they apply at start."""
    try:
        plan = json.loads((wt.state_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return []
    services = {sp.get("name"): sp for sp in plan.get("services", [])}
    missing = []
    if browser and "chromium" not in services:
        missing.append("--browser")
    if watch and not (services.get("app") or {}).get("watch"):
        missing.append("--watch")
    return missing


def _up_result(
    wt: Worktree,
    state: dict[str, Any],
    *,
    already: bool,
    config_hash: str = "",
    reclaimed: list[int] | None = None,
    unapplied: list[str] | None = None,
) -> UpDoc:
    note = ""
    if already and config_hash and state.get("config_hash") and config_hash != state["config_hash"]:
        note = "legible.toml changed since this stack started: run `legible down && legible up` to apply it"
    elif unapplied:
        opts = " ".join(unapplied)
        note = f"the running stack was started without {opts}: run `legible down && legible up --wait {opts}` to apply"
    if reclaimed:
        note = f"reclaimed this worktree's dead stack first: stopped {len(reclaimed)} processes it left running"
    _mark_idle_browser(wt, state.get("services", {}))
    return {
        "schema": UP_SCHEMA,
        "key": wt.key,
        "worktree": str(wt.root),
        "already_running": already,
        "status": state.get("status", "starting"),
        "ready_ms": state.get("ready_ms"),
        "services": state.get("services", {}),
        "endpoints": state.get("endpoints", {}),
        "env_file": str(wt.env_file),
        "note": note,
        "reclaimed_pids": list(reclaimed or []),
        "warnings": _warnings(state),
    }


def _warnings(state: dict[str, Any]) -> list[str]:
    """What the stack does that weakens its isolation: today, a Chromium CDP port (``[stack] cdp_port = true``)."""
    port = (state.get("services", {}).get("chromium") or {}).get("port")
    if not port:
        return []
    return [
        f"Chromium's CDP port listens on 127.0.0.1:{port} ([stack] cdp_port = true): any local process can drive "
        "the browser; remove cdp_port unless a debugger needs it"
    ]


def down(start: Path | None = None, *, purge: bool = False, timeout: float = 15.0) -> DownDoc:
    """Stop the worktree's stack, free its ports and lease; keep ``.legible/`` unless ``purge``.

    Returns:
        ``legible.down/v1``: ``{"schema", "key", "was_running", "stopped": [service...],
        "sigkilled": [{"service", "after_s"}...], "killed_orphans": [pid...], "purged", "took_ms"}``;
        ``sigkilled`` lists the services that ignored SIGTERM and were killed after ``after_s`` seconds
        (from the supervisor's last ``state.json``).

    """
    t0 = time.monotonic()
    wt = find_worktree(start)
    state = _read(wt)
    stopped: list[str] = []
    was_running = bool(state and state["alive"])
    if state and state["alive"]:
        ref = ProcRef.from_dict(state["supervisor"])
        assert ref is not None
        stopped = [n for n, s in state.get("services", {}).items() if s.get("pid")]
        try:
            os.kill(ref.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not wait_gone(ref, timeout):
            os.kill(ref.pid, signal.SIGKILL)
            wait_gone(ref, 2.0)
    final = _read(wt) if was_running else None
    sigkilled: list[SigkilledDoc] = [
        {"service": n, "after_s": s["killed_after_s"]}
        for n, s in (final or {}).get("services", {}).items()
        if s.get("killed_after_s") is not None
    ]
    registry = LeaseRegistry()
    orphans = terminate(stack_processes(wt.key, registry=str(registry.path)), timeout=3.0)
    if _runs_containers(wt):
        from legible.docker_backend import remove_containers

        remove_containers(wt.key)  # what a killed supervisor left running in the engine
    registry.release(wt.key)
    from legible.browser.client import browser_tmp_dir

    shutil.rmtree(wt.state_dir / "tmp", ignore_errors=True)  # the browser's profile and temp files
    shutil.rmtree(browser_tmp_dir(wt.state_dir), ignore_errors=True)
    from legible.services.databases import remove_socket_dirs

    remove_socket_dirs(wt.state_dir, wt.key)  # the database services' socket directories (/tmp fallback too)
    if purge and wt.state_dir.exists():
        shutil.rmtree(wt.state_dir, ignore_errors=True)
    return {
        "schema": DOWN_SCHEMA,
        "key": wt.key,
        "was_running": was_running,
        "stopped": stopped,
        "sigkilled": sigkilled,
        "killed_orphans": orphans,
        "purged": purge,
        "took_ms": round((time.monotonic() - t0) * 1000, 1),
    }


def status(start: Path | None = None) -> StatusDoc:
    """The worktree's stack as recorded in ``state.json``, checked against the live processes.

    Returns:
        ``legible.status/v1``: ``{"schema", "key", "worktree", "status", "alive", "ready_ms", "error",
        "services", "left_running", "endpoints", "env_file"}``; ``status`` is ``down`` when no stack ever ran
        here, ``dead`` when its supervisor is gone: then no service is ``ready``, each is ``orphaned``
        (still running, listed in ``left_running``) or ``gone``. The ``chromium`` service is ``idle`` while
        its agent is ready but has not launched Chromium yet (it does at the first browser call). The CLI
        exits 4 for ``dead`` and ``failed``.

    """
    wt = find_worktree(start)
    state = _read(wt)
    if state is None:
        return {
            "schema": STATUS_SCHEMA,
            "key": wt.key,
            "worktree": str(wt.root),
            "status": "down",
            "alive": False,
            "services": {},
            "left_running": [],
            "endpoints": {},
            "error": "",
            "ready_ms": None,
            "env_file": str(wt.env_file),
        }
    left: list[str] = []
    for name, svc in state.get("services", {}).items():
        ref = ProcRef(svc["pid"], svc["create_time"]) if svc.get("pid") and svc.get("create_time") else None
        if state["alive"]:
            if svc.get("status") == "ready" and ref and not ref.alive():
                svc["status"] = "exited"  # between the crash and the supervisor's next tick
        elif svc.get("status") in ("ready", "starting", "backoff", "pending"):
            # no supervisor watches it: a process still running is left over, never "ready"
            if ref and ref.alive():
                svc["status"] = "orphaned"
                left.append(name)
            else:
                svc["status"] = "gone"
    if state["alive"]:
        _mark_idle_browser(wt, state.get("services", {}))
    if state["status"] == "dead" and left:
        state["error"] = (
            f"the supervisor is gone (killed?) and left {', '.join(left)} running; "
            "`legible up` reclaims them (or `legible gc`)"
        )
    elif state["status"] == "dead":
        state["error"] = "the supervisor is gone (killed?); `legible up` starts the stack again"
    doc: StatusDoc = {
        "schema": STATUS_SCHEMA,
        "key": wt.key,
        "worktree": str(wt.root),
        "status": state["status"],
        "alive": state["alive"],
        "ready_ms": state.get("ready_ms"),
        "error": state.get("error", ""),
        "services": state.get("services", {}),
        "left_running": left,
        "endpoints": state.get("endpoints", {}) if state["alive"] else {},
        "env_file": str(wt.env_file),
    }
    if state["alive"]:
        fwd = _forward_health(wt)
        if fwd:
            doc["forward"] = fwd
    return doc


def _runs_containers(wt: Worktree) -> bool:
    try:
        plan = json.loads((wt.state_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return False
    return any(sp.get("argv", [])[:2] == ["docker", "run"] for sp in plan.get("services", []))


def _forward_health(wt: Worktree) -> list[ForwardHealth]:
    """Forwarding health of the running stack (empty when it forwards nothing); see :func:`legible.forward.health`."""
    try:
        plan = json.loads((wt.state_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return []
    services = {sp["name"]: sp for sp in plan.get("services", [])}
    coll = services.get("collector", {}).get("argv", [])
    if "vmagent" not in services and not any(str(a).startswith("--forward-config=") for a in coll):
        return []
    from legible import forward

    return forward.health(wt.state_dir, plan.get("ports", {}), services)


def require_running(start: Path | None = None) -> StackState:
    """Return the live state of the worktree's stack.

    Raises:
        NotRunning: no live stack here.

    """
    wt = find_worktree(start)
    state = _read(wt)
    if not state or not state["alive"]:
        raise NotRunning(f"no stack is running for {wt.key}", hint="run `legible up --wait` first")
    return cast("StackState", state)


def ps() -> PsDoc:
    """Every stack on this machine, from the lease registry and each worktree's state.json.

    Returns:
        ``legible.ps/v1``: ``{"schema", "stacks": [{"key", "worktree", "status", "alive", "ports":
        "<base>-<last>", "app", "services": n, "restarts": n, "uptime_s"}]}``.

    """
    rows = []
    for lease in LeaseRegistry().all():
        wt = Worktree(Path(lease.worktree), lease.key)
        state = _read(wt) if Path(lease.worktree).is_dir() else None
        alive = lease.owner_alive()
        services = (state or {}).get("services", {})
        rows.append(
            {
                "key": lease.key,
                "worktree": lease.worktree,
                "status": (state or {}).get("status", "unknown") if alive else "dead",
                "alive": alive,
                "ports": f"{lease.base}-{lease.base + 15}",
                "app": (state or {}).get("endpoints", {}).get("app", ""),
                "services": len(services),
                "restarts": sum(int(s.get("restarts") or 0) for s in services.values()),
                "uptime_s": round(time.time() - float((state or {}).get("started_at") or time.time()), 1)
                if alive
                else None,
            }
        )
    return {"schema": PS_SCHEMA, "stacks": cast("list[PsRow]", rows)}


def gc(*, dry_run: bool = False) -> GcDoc:
    """Reclaim stacks whose supervisor or worktree is gone, and kill orphaned service processes.

    A lease is reclaimed when its owner process is dead or its worktree directory no longer exists. A
    process is an orphan when it carries ``LEGIBLE_STACK=<key>`` and no live supervisor holds that key.

    Returns:
        ``legible.gc/v1``: ``{"schema", "dry_run", "leases": [{"key", "worktree", "why"}],
        "orphans": [{"pid", "key", "name", "cmdline"}]}``.

    """
    registry = LeaseRegistry()
    leases = registry.all()
    live_keys = set()
    reclaim = []
    for lease in leases:
        gone = not Path(lease.worktree).is_dir()
        if lease.owner_alive() and not gone:
            live_keys.add(lease.key)
            continue
        reclaim.append(
            {"key": lease.key, "worktree": lease.worktree, "why": "worktree removed" if gone else "supervisor gone"}
        )
    orphans = []
    procs = []
    from legible._procs import STACK_ENV

    for p in stack_processes(registry=str(registry.path)):
        try:
            key = p.environ().get(STACK_ENV, "")
            if key in live_keys:
                continue
            orphans.append({"pid": p.pid, "key": key, "name": p.name(), "cmdline": " ".join(p.cmdline())[:200]})
            procs.append(p)
        except Exception:  # noqa: BLE001,S112 - the process vanished while we looked
            continue
    if not dry_run:
        terminate(procs, timeout=3.0)
        for r in reclaim:
            stale = registry.get(r["key"])
            if stale is None:
                continue
            owner = ProcRef.from_dict(stale.owner)
            if owner is not None and owner.alive():  # worktree removed under a live stack: stop it first
                os.kill(owner.pid, signal.SIGTERM)
                wait_gone(owner, 15.0)
            registry.release(r["key"])
    return {
        "schema": GC_SCHEMA,
        "dry_run": dry_run,
        "leases": cast("list[GcLease]", reclaim),
        "orphans": cast("list[GcOrphan]", orphans),
    }
