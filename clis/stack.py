"""``legible init | up | down | status | ps | gc``: the stack lifecycle commands (thin over legible.stack)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from legible.contract import StatusDoc

from ._output import OUT_HELP, emit_json, print_lines, run, write_out

JSON = typer.Option(False, "--json", help="Print one JSON document (stable `schema` field) instead of text.")
OUT = typer.Option(None, "--out", help=OUT_HELP)


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
    from legible._early import begin, take_started

    t0 = time.monotonic()
    # the supervisor starts before the rest of `up` is imported (issue 12); `legible up` started it even
    # before typer (legible.cli.main)
    early = take_started() or run(begin, out)
    from legible.render import render_up
    from legible.stack import up as do_up

    res = run(lambda: do_up(wait=wait, timeout=timeout, browser=browser, watch=watch, early=early), out)
    res["took_ms"] = round((time.monotonic() - t0) * 1000, 1)
    write_out(out, res)
    emit_json(res) if as_json else print_lines(render_up(res, out))


def down(
    purge: bool = typer.Option(False, "--purge", help="Also delete .legible/ (stores, logs, proof)."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Stop this worktree's stack and free its ports; data stays until --purge."""
    from legible.render import render_down
    from legible.stack import down as do_down

    res = run(lambda: do_down(purge=purge), out)
    write_out(out, res)
    emit_json(res) if as_json else print_lines(render_down(res))


#: ``legible status`` exits 4 ("not ready") for these: the stack is not running though it was not stopped.
STATUS_NOT_OK = ("dead", "failed")


def status(as_json: bool = JSON) -> None:
    """Show this worktree's stack: each service's state, ready time, restarts and endpoint.

    Exits 4 when the stack is dead (its supervisor is gone) or failed, 0 otherwise (also when down).
    """
    from legible.render import render_status
    from legible.stack import status as do_status

    res = do_status()
    _add_deploy(res)
    if as_json:
        emit_json(res)
    else:
        from .restart import status_lines

        lines = render_status(res)
        at = 2 if res["error"] else 1  # under the stack line (and its error), above the services
        lines[at:at] = status_lines(res)
        print_lines(lines)
    if res["status"] in STATUS_NOT_OK:
        raise typer.Exit(4)


def _add_deploy(res: StatusDoc) -> None:
    """Add ``deploy`` (the current deploy record) and ``stale`` (see legible.deploys.stale_note) to ``res``."""
    from legible.deploys import current, stale_note

    state_dir = Path(res["worktree"]) / ".legible"
    dep = current(state_dir)
    res["deploy"] = {k: v for k, v in dep.items() if k != "files"} if dep else None
    res["stale"] = stale_note(Path(res["worktree"]), state_dir, alive=bool(res.get("alive")))


def ps(as_json: bool = JSON) -> None:
    """List every legible stack on this machine."""
    from legible.render import render_ps
    from legible.stack import ps as do_ps

    res = do_ps()
    emit_json(res) if as_json else print_lines(render_ps(res))


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be reclaimed."),
    as_json: bool = JSON,
) -> None:
    """Reclaim stacks whose supervisor or worktree is gone, and kill their orphaned processes."""
    from legible.render import render_gc
    from legible.stack import gc as do_gc

    res = do_gc(dry_run=dry_run)
    emit_json(res) if as_json else print_lines(render_gc(res, dry_run))


def init(
    force: bool = typer.Option(False, "--force", help="Overwrite an existing legible.toml."),
    keep: bool = typer.Option(False, "--keep", help="Succeed without writing when legible.toml exists (for hooks)."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Write a commented legible.toml for this worktree, guessing the app's command from the repo."""
    from legible.init import write_config
    from legible.render import render_init

    res = run(lambda: write_config(Path.cwd(), force=force, keep=keep), out)
    write_out(out, res)
    emit_json(res) if as_json else print_lines(render_init(res, out))


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to ``app``."""
    app.command()(init)
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(ps)
    app.command()(gc)
