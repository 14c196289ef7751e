"""Stack lifecycle: ``up``, ``down``, ``status``, ``ps``, ``gc`` as library calls (the CLI only renders).

Every function returns plain dicts shaped like the ``--json`` documents (with a ``schema`` field) and
raises :mod:`legible._errors` exceptions; none of them prints.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from legible._errors import LeaseConflict, NotReady, NotRunning, PrerequisiteMissing
from legible._procs import ProcRef, stack_processes, terminate, wait_gone
from legible.lease import LeaseRegistry
from legible.worktree import Worktree, find_worktree

UP_SCHEMA = "legible.up/v1"
DOWN_SCHEMA = "legible.down/v1"
STATUS_SCHEMA = "legible.status/v1"
PS_SCHEMA = "legible.ps/v1"
GC_SCHEMA = "legible.gc/v1"
LIVE = ("starting", "ready", "degraded")


def read_state(wt: Worktree) -> dict[str, Any] | None:
    """Return ``state.json`` of ``wt`` with ``alive`` (the supervisor runs) added, or ``None``."""
    try:
        state: dict[str, Any] = json.loads(wt.state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    ref = ProcRef.from_dict(state.get("supervisor"))
    state["alive"] = bool(ref and ref.alive())
    if not state["alive"] and state.get("status") in (*LIVE, "stopping"):
        state["status"] = "dead"
        state["error"] = state.get("error") or "the supervisor is gone (killed?); run `legible gc` then `legible up`"
    return state


def _wait_for(wt: Worktree, ref: ProcRef, deadline: float) -> dict[str, Any]:
    """Poll state.json until the stack is ready, failed or degraded, the supervisor dies, or the deadline."""
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = read_state(wt)
        if state and state.get("supervisor") and ProcRef.from_dict(state["supervisor"]) == ref:
            if state["status"] in ("ready", "degraded", "failed", "stopped", "dead"):
                return state
        elif not ref.alive():
            break
        time.sleep(0.01)
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
    start: Path | None = None, *, wait: bool = True, timeout: float = 60.0, browser: bool = False, watch: bool = False
) -> dict[str, Any]:
    """Bring up the stack of the worktree containing ``start``; idempotent.

    With ``wait``, block until every service is ready (or ``timeout`` seconds pass). Without it, return as
    soon as the supervisor runs and the plan (ports, endpoints) is known. ``browser`` also starts Chromium
    (as ``[stack] browser = true`` does); a running stack without it is reported, not changed. ``watch``
    restarts the app on file changes (as ``[app] watch`` does).

    Returns:
        ``legible.up/v1``: ``{"schema", "key", "worktree", "already_running", "status", "ready_ms",
        "services": {name: {status, ready_ms, restarts, port, ...}}, "endpoints", "env_file", "note"}``.

    Raises:
        ConfigError: legible.toml is missing or invalid (exit 2).
        PrerequisiteMissing: VictoriaMetrics or the app's command is not installed (exit 3).
        NotReady: a service exited or missed its readiness deadline; everything was stopped (exit 4).
        LeaseConflict: no free port block, or the lease is held by another live process (exit 5).

    """
    from legible.config import load_config  # pydantic: only the commands that read the config pay for it

    t0 = time.monotonic()
    wt = find_worktree(start)
    cfg = load_config(wt.root)
    wt.ensure_state_dir()
    with FileLock(str(wt.state_dir / "up.lock"), timeout=timeout):
        state = read_state(wt)
        if state and state["alive"] and state["status"] in (*LIVE, "stopping"):
            ref = ProcRef.from_dict(state["supervisor"])
            assert ref is not None
            if wait and state["status"] == "starting":
                state = _wait_for(wt, ref, t0 + timeout)
            return _up_result(wt, state, already=True, config_hash=_config_hash(cfg))
        registry = LeaseRegistry()
        me = ProcRef.of(os.getpid())
        assert me is not None
        lease = registry.grant(wt.key, str(wt.root), me)
        if ProcRef.from_dict(lease.owner) != me:
            raise LeaseConflict(
                f"the lease of {wt.key} is held by live process {lease.owner.get('pid')} but state.json shows no stack",
                hint="run `legible down` (or `legible gc`) in this worktree, then `legible up`",
            )
        from legible.plan import build_plan

        try:
            plan = build_plan(wt, cfg, lease, browser=browser, watch=watch)
            plan_path = plan.write(wt.state_dir)
            wt.state_file.unlink(missing_ok=True)
            _rotate_logs(wt)
            with open(wt.logs_dir / "supervisor.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "legible.supervisor", str(plan_path)],
                    cwd=str(wt.root),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except BaseException:
            registry.release(wt.key, me)
            raise
        ref = ProcRef.of(proc.pid) or ProcRef(proc.pid, time.time())
        registry.transfer(wt.key, ref)
        deadline = t0 + timeout
        if not wait:
            while time.monotonic() < deadline and not wt.state_file.exists() and proc.poll() is None:
                time.sleep(0.005)
            state = read_state(wt) or {"status": "starting", "services": {}}
            return _up_result(wt, state, already=False)
        state = _wait_for(wt, ref, deadline)
        if state.get("status") in ("ready", "degraded"):
            return _up_result(wt, state, already=False)
        if state.get("status") in ("failed", "stopped", "dead"):
            wait_gone(ref, 15.0)
            raise _failure(state, "the stack failed to start")
        # timed out: stop what started, then report the service that was not ready
        os.kill(proc.pid, signal.SIGTERM)
        wait_gone(ref, 15.0)
        waiting = [n for n, s in state.get("services", {}).items() if s.get("status") != "ready"]
        name = waiting[0] if waiting else ""
        state = {
            **state,
            "error_service": name,
            "error": f"{name or 'the stack'} was not ready within --timeout {timeout:g} s",
        }
        raise _failure(state, "not ready in time")


def _config_hash(cfg: Any) -> str:
    import hashlib

    raw = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _rotate_logs(wt: Worktree) -> None:
    """Keep one previous generation of each service log (``<service>.log.1``) so a fresh run starts clean."""
    wt.logs_dir.mkdir(parents=True, exist_ok=True)
    for log in wt.logs_dir.glob("*.log"):
        os.replace(log, log.with_suffix(".log.1"))


def _up_result(wt: Worktree, state: dict[str, Any], *, already: bool, config_hash: str = "") -> dict[str, Any]:
    note = ""
    if already and config_hash and state.get("config_hash") and config_hash != state["config_hash"]:
        note = "legible.toml changed since this stack started: run `legible down && legible up` to apply it"
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
    }


def down(start: Path | None = None, *, purge: bool = False, timeout: float = 15.0) -> dict[str, Any]:
    """Stop the worktree's stack, free its ports and lease; keep ``.legible/`` unless ``purge``.

    Returns:
        ``legible.down/v1``: ``{"schema", "key", "was_running", "stopped": [service...],
        "killed_orphans": [pid...], "purged", "took_ms"}``.

    """
    t0 = time.monotonic()
    wt = find_worktree(start)
    state = read_state(wt)
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
    registry = LeaseRegistry()
    orphans = terminate(stack_processes(wt.key, registry=str(registry.path)), timeout=3.0)
    registry.release(wt.key)
    if purge and wt.state_dir.exists():
        shutil.rmtree(wt.state_dir, ignore_errors=True)
    return {
        "schema": DOWN_SCHEMA,
        "key": wt.key,
        "was_running": was_running,
        "stopped": stopped,
        "killed_orphans": orphans,
        "purged": purge,
        "took_ms": round((time.monotonic() - t0) * 1000, 1),
    }


def status(start: Path | None = None) -> dict[str, Any]:
    """The worktree's stack as recorded in ``state.json``, checked against the live processes.

    Returns:
        ``legible.status/v1``: ``{"schema", "key", "worktree", "status", "alive", "ready_ms", "error",
        "services", "endpoints", "env_file"}``; ``status`` is ``down`` when no stack ever ran here.

    """
    wt = find_worktree(start)
    state = read_state(wt)
    if state is None:
        return {
            "schema": STATUS_SCHEMA,
            "key": wt.key,
            "worktree": str(wt.root),
            "status": "down",
            "alive": False,
            "services": {},
            "endpoints": {},
            "error": "",
            "ready_ms": None,
            "env_file": str(wt.env_file),
        }
    if state["alive"]:
        for svc in state.get("services", {}).values():
            ref = ProcRef(svc["pid"], svc["create_time"]) if svc.get("pid") and svc.get("create_time") else None
            if svc.get("status") == "ready" and ref and not ref.alive():
                svc["status"] = "exited"  # between the crash and the supervisor's next tick
    return {
        "schema": STATUS_SCHEMA,
        "key": wt.key,
        "worktree": str(wt.root),
        "status": state["status"],
        "alive": state["alive"],
        "ready_ms": state.get("ready_ms"),
        "error": state.get("error", ""),
        "services": state.get("services", {}),
        "endpoints": state.get("endpoints", {}) if state["alive"] else {},
        "env_file": str(wt.env_file),
    }


def require_running(start: Path | None = None) -> dict[str, Any]:
    """Return the live state of the worktree's stack.

    Raises:
        NotRunning: no live stack here.

    """
    wt = find_worktree(start)
    state = read_state(wt)
    if not state or not state["alive"]:
        raise NotRunning(f"no stack is running for {wt.key}", hint="run `legible up --wait` first")
    return state


def ps() -> dict[str, Any]:
    """Every stack on this machine, from the lease registry and each worktree's state.json.

    Returns:
        ``legible.ps/v1``: ``{"schema", "stacks": [{"key", "worktree", "status", "alive", "ports":
        "<base>-<last>", "app", "services": n, "restarts": n, "uptime_s"}]}``.

    """
    rows = []
    for lease in LeaseRegistry().all():
        wt = Worktree(Path(lease.worktree), lease.key)
        state = read_state(wt) if Path(lease.worktree).is_dir() else None
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
    return {"schema": PS_SCHEMA, "stacks": rows}


def gc(*, dry_run: bool = False) -> dict[str, Any]:
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
    return {"schema": GC_SCHEMA, "dry_run": dry_run, "leases": reclaim, "orphans": orphans}
