"""``legible init | up | down | status | ps | gc``: the stack lifecycle commands (thin over legible.stack)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from ._output import OUT_HELP, emit_json, fmt_ms, run, table, write_out

JSON = typer.Option(False, "--json", help="Print one JSON document (stable `schema` field) instead of text.")
OUT = typer.Option(None, "--out", help=OUT_HELP)


def _service_rows(services: dict[str, Any], endpoints: dict[str, str]) -> list[list[str]]:
    urls = {
        "app": endpoints.get("app", ""),
        "victoria-metrics": endpoints.get("vmui", ""),
        "collector": endpoints.get("otlp-http", ""),
    }
    rows = []
    for name, s in services.items():
        extra = []
        if s.get("restarts"):
            extra.append(f"restarts={s['restarts']}")
        if s.get("error") and s.get("status") != "ready":
            extra.append(s["error"])
        url = urls.get(name) or (f"127.0.0.1:{s['port']}" if s.get("port") else "")
        rows.append(
            [
                f"  {name}",
                s.get("status", "?"),
                fmt_ms(s.get("first_ready_ms") or s.get("ready_ms")),
                url,
                " ".join(extra),
            ]
        )
    return rows


def up(
    wait: bool = typer.Option(False, "--wait", help="Block until every service is ready (exit 4 if not in time)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for readiness with --wait."),
    browser: bool = typer.Option(False, "--browser", help="Also start a headless Chromium (CDP on loopback)."),
    watch: bool = typer.Option(
        False, "--watch", help="Restart the app when files change ([app] watch globs, else any file); each is a deploy."
    ),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Start this worktree's stack (idempotent: a running stack is reported, not restarted)."""
    from legible.stack import up as do_up

    t0 = time.monotonic()
    res = run(lambda: do_up(wait=wait, timeout=timeout, browser=browser, watch=watch), as_json, out)
    res["took_ms"] = round((time.monotonic() - t0) * 1000, 1)
    write_out(out, res)
    if as_json:
        emit_json(res)
        return
    head = "already running" if res["already_running"] else res["status"]
    when = f" in {fmt_ms(res['ready_ms'])}" if res["ready_ms"] and not res["already_running"] else ""
    if out:
        print(f"stack {res['key']} {head}{when}: app {res['endpoints'].get('app', '?')}; json: {out}")
        return
    print(f"stack {res['key']} {head}{when}")
    print(table(_service_rows(res["services"], res["endpoints"])))
    print(f"env: set -a; . {res['env_file']}; set +a")
    if res["status"] == "starting":
        print("services are still starting: `legible status` shows progress, `legible up --wait` blocks")
    if res["status"] == "degraded":
        print("warning: a service failed after start; see `legible status` and .legible/logs/")
    if res["note"]:
        print(f"note: {res['note']}")


def down(
    purge: bool = typer.Option(False, "--purge", help="Also delete .legible/ (stores, logs, proof)."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Stop this worktree's stack and free its ports; data stays until --purge."""
    from legible.stack import down as do_down

    res = run(lambda: do_down(purge=purge), as_json, out)
    write_out(out, res)
    if as_json:
        emit_json(res)
        return
    if res["was_running"]:
        msg = f"stack {res['key']} stopped in {fmt_ms(res['took_ms'])} ({', '.join(res['stopped'])})"
    else:
        msg = f"stack {res['key']} was not running"
    if res["killed_orphans"]:
        msg += f"; killed {len(res['killed_orphans'])} orphaned processes"
    print(msg + ("; .legible/ purged" if res["purged"] else "; data kept in .legible/ (use --purge to delete)"))


def status(as_json: bool = JSON) -> None:
    """Show this worktree's stack: each service's state, ready time, restarts and endpoint."""
    from legible.stack import status as do_status

    res = run(do_status, as_json)
    _add_deploy(res)
    if as_json:
        emit_json(res)
        return
    if res["status"] == "down":
        print(f"stack {res['key']}: down (no stack has run here; `legible up --wait` starts one)")
        return
    ready = f", ready in {fmt_ms(res['ready_ms'])}" if res["ready_ms"] else ""
    print(f"stack {res['key']}: {res['status']}{ready}")
    if res["error"]:
        print(f"error: {res['error']}")
    from .restart import status_lines

    for line in status_lines(res):
        print(line)
    print(table(_service_rows(res["services"], res["endpoints"])))
    if not res["alive"]:
        print("not running: `legible up --wait` starts it; queries still read the kept data")


def _add_deploy(res: dict[str, Any]) -> None:
    """Add ``deploy`` (the current deploy record) and ``stale`` (see legible.deploys.stale_note) to ``res``."""
    from legible.deploys import current, stale_note

    state_dir = Path(res["worktree"]) / ".legible"
    dep = current(state_dir)
    res["deploy"] = {k: v for k, v in dep.items() if k != "files"} if dep else None
    res["stale"] = stale_note(Path(res["worktree"]), state_dir, alive=bool(res.get("alive")))


def ps(as_json: bool = JSON) -> None:
    """List every legible stack on this machine."""
    from legible.stack import ps as do_ps

    res = run(do_ps, as_json)
    if as_json:
        emit_json(res)
        return
    stacks = res["stacks"]
    if not stacks:
        print("no stacks on this machine")
        return
    rows = [
        [
            s["key"],
            s["status"],
            s["ports"],
            s["app"],
            str(s["restarts"]),
            f"{s['uptime_s']:.0f}s" if s["uptime_s"] is not None else "-",
            s["worktree"],
        ]
        for s in stacks
    ]
    print(f"{len(stacks)} stacks ({sum(s['alive'] for s in stacks)} alive)")
    print(table(rows, ["KEY", "STATUS", "PORTS", "APP", "RESTARTS", "UP", "WORKTREE"]))


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be reclaimed."),
    as_json: bool = JSON,
) -> None:
    """Reclaim stacks whose supervisor or worktree is gone, and kill their orphaned processes."""
    from legible.stack import gc as do_gc

    res = run(lambda: do_gc(dry_run=dry_run), as_json)
    if as_json:
        emit_json(res)
        return
    verb = "would reclaim" if dry_run else "reclaimed"
    kill = "would kill" if dry_run else "killed"
    print(f"{verb} {len(res['leases'])} leases, {kill} {len(res['orphans'])} orphaned processes")
    for lease in res["leases"][:20]:
        print(f"  lease {lease['key']}: {lease['why']} ({lease['worktree']})")
    for o in res["orphans"][:20]:
        print(f"  pid {o['pid']} of {o['key']}: {o['cmdline'][:100]}")
    cut = max(0, len(res["leases"]) - 20) + max(0, len(res["orphans"]) - 20)
    if cut:
        print(f"... {cut} more not shown; --json lists all")


def init(
    force: bool = typer.Option(False, "--force", help="Overwrite an existing legible.toml."),
    keep: bool = typer.Option(False, "--keep", help="Succeed without writing when legible.toml exists (for hooks)."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Write a commented legible.toml for this worktree, guessing the app's command from the repo."""
    from legible.init import write_config

    res = run(lambda: write_config(Path.cwd(), force=force, keep=keep), as_json, out)
    write_out(out, res)
    if as_json:
        emit_json(res)
        return
    if not res["written"]:
        print(f"kept {res['path']} (already there)")
        return
    print(f"wrote {res['path']} (app: {res['command']}; guessed from {res['guessed_from']})")
    if not out:
        print("next: check the command, then `legible up --wait`")


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to ``app``."""
    app.command()(init)
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(ps)
    app.command()(gc)
