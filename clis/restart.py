"""``legible restart [SERVICE...]`` and ``legible deploys``: the inner loop's commands (thin over legible.deploys)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from legible._duration import format_ms as fmt_ms
from legible.render import table

from ._output import OUT_HELP, emit_json, run, write_out


def describe(rec: dict[str, Any]) -> str:
    """``commit abc1234, dirty`` for a deploy record."""
    commit = str(rec.get("commit") or "")[:7] or "no commit"
    return f"commit {commit}{', dirty' if rec.get('dirty') else ''}"


def restart(
    services: list[str] = typer.Argument(
        None, metavar="[SERVICE]...", help="user services to restart (default: the app and its extra services)"
    ),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for readiness (exit 4 if not)."),
    out: Path = typer.Option(None, "--out", help=OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.restart/v1)"),
) -> None:
    """Restart the app (and services that depend on it) as a new deploy; the stack and the browser stay up."""
    from legible.deploys import restart as do_restart

    res = run(lambda: do_restart(services=services or [], timeout=timeout), out)
    write_out(out, res)
    if as_json:
        emit_json(res)
        return
    rec = res["deploy"]
    names = ", ".join(rec.get("services") or [])
    print(
        f"{names} restarted: deploy {rec['number']} ready in {fmt_ms(res['ready_ms'])} "
        f"({describe(rec)}; took {fmt_ms(res['took_ms'])})"
    )


def deploys(
    limit: int = typer.Option(10, "--limit", "-n", help="deploys shown, newest first (at most 50)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.deploys/v1)"),
) -> None:
    """List this worktree's last deploys: number, trigger, age, commit, time to ready, status."""
    from legible.deploys import listing

    res = listing(limit=limit)
    if as_json:
        emit_json(res)
        return
    if not res["deploys"]:
        print(f"no deploys in {res['key']} yet: `legible up --wait` makes deploy 1")
        return
    print(
        f"{res['total']} deploys in {res['key']}, current: {res['current']}; {len(res['deploys'])} shown, newest first"
    )
    rows = []
    for d in res["deploys"]:
        rows.append(
            [
                str(d["number"]),
                d.get("trigger", ""),
                _age(d["age_s"]),
                str(d.get("commit") or "")[:7] or "-",
                f"+{d['files_changed']} files" if d.get("dirty") else "clean",
                fmt_ms(d.get("ready_ms")),
                d.get("status", ""),
                (d.get("error") or "")[:80],
            ]
        )
    print(table(rows, ["N", "TRIGGER", "AGE", "COMMIT", "TREE", "READY", "STATUS", "ERROR"]))
    if res["total"] > len(res["deploys"]):
        print(f"... {res['total'] - len(res['deploys'])} older not shown; --limit N shows more")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def status_lines(res: Mapping[str, Any]) -> list[str]:
    """The deploy and stale-code lines ``legible status`` prints under the stack line."""
    dep = res.get("deploy")
    if not dep:
        return []
    age = _age(time.time() - float(dep["started_at"]))
    lines = [
        f"deploy {dep['number']} ({dep.get('trigger')}, {describe(dep)}) started {age}: "
        + (f"ready in {fmt_ms(dep.get('ready_ms'))}" if dep.get("status") == "ready" else str(dep.get("status")))
    ]
    if dep.get("status") == "failed" and res.get("alive"):
        who = dep.get("failed_service") or "app"
        lines.append(f"{who} is down: {dep.get('error')}; the observability stack runs: fix it, then `legible restart`")
    stale = res.get("stale") or {}
    if stale.get("message"):
        lines.append(f"warning: {stale['message']}")
    return lines


def register(app: typer.Typer) -> None:
    """Add ``restart`` and ``deploys`` to ``app``."""
    app.command()(restart)
    app.command()(deploys)
