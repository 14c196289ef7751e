"""The supervisor ``legible up`` starts before anything else, and its pipes (issue 12).

``legible up`` starts ``python -m legible.supervisor - KEY REGISTRY`` as soon as it knows the worktree,
before it imports the rest of its code (:mod:`legible.stack`, pydantic) and reads the config: the
interpreter's start, the supervisor's imports and the collector's (the supervisor starts it at once as
:mod:`legible._prewarm`) overlap ``up``'s own work instead of following it. The supervisor waits for one line
on its stdin, the plan's path (:func:`hand_over`); at end of file it exits having started nothing
(:func:`discard`). Its stdout is ``up``'s notify pipe: a line each time state.json changes while the stack
starts, closed once it no longer does (:func:`legible.stack._wait_for`, :func:`legible.supervisor._notify`).

This module imports only what finding the worktree and reading state.json need, so that the supervisor
starts that much sooner.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from legible._files import PRIVATE_UMASK
from legible.worktree import Worktree, find_worktree


@dataclass
class EarlyStart:
    """What :func:`begin` found and started.

    Attributes:
        worktree: the worktree ``up`` runs in.
        procs: the early supervisor (one process), or none when a live stack runs here or it could not start.

    """

    worktree: Worktree
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


#: What :func:`start_ahead` started in this process, until :func:`take_started` hands it to ``legible up``.
_STARTED: list[EarlyStart] = []


def start_ahead() -> None:
    """Call :func:`begin` for the current directory now, keeping what it started for :func:`take_started`.

    The ``legible`` entry point calls it for ``legible up`` before it imports typer and the command's module
    (about 50 ms of CPU), so the supervisor's own start overlaps them as well (issue 12). Any error is left
    for ``up`` to find again and report in the CLI's format: outside a git worktree nothing is started. If
    ``up`` never takes it (its arguments are wrong), the process's exit closes the supervisor's stdin and it
    exits having started nothing.
    """
    from legible._errors import LegibleError

    try:
        _STARTED.append(begin())
    except LegibleError:
        pass


def take_started() -> EarlyStart | None:
    """What :func:`start_ahead` started in this process (once), or ``None``."""
    return _STARTED.pop() if _STARTED else None


def begin(start: Path | None = None) -> EarlyStart:
    """Find the worktree containing ``start`` (default: the current directory) and start its early supervisor.

    Raises:
        UsageError: ``start`` is not inside a git worktree (or git is missing).

    """
    wt = find_worktree(start)
    return EarlyStart(wt, start_supervisor(wt))


def start_supervisor(wt: Worktree) -> list[subprocess.Popen[bytes]]:
    """Start ``python -m legible.supervisor - KEY REGISTRY`` now, unless a live stack runs here; ``[]`` if not.

    The interpreter's start and the supervisor's imports (about 0.1 s) then overlap ``up``'s own work (the
    config, the lease, the plan), and so does the collector's start: given the stack's key and lease
    registry, the supervisor starts it at once as :mod:`legible._prewarm` and hands it its start later. The
    process waits for one line on its stdin, the plan's path
    (:func:`hand_over`); at end of file it exits having started nothing. Its output goes nowhere until it
    has the plan: then it appends to ``.legible/logs/supervisor.log`` itself.
    """
    from legible.contract import LIVE, read_state

    # a stopped stack is read without psutil (~15 ms before this spawn): "stopped" never skips it anyway
    state = read_state(wt.state_file, stopped_is_final=True)
    if state and state["alive"] and state["status"] in (*LIVE, "stopping"):
        return []
    from legible._paths import state_home

    registry = str(state_home(create=False) / "leases.json")  # as every service's LEGIBLE_REGISTRY says
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "legible.supervisor", "-", wt.key, registry],
            cwd=str(wt.root),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # its notify pipe: a line at each status change while it starts
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the agent's terminal does not reach it: up stops it
            close_fds=True,
            umask=PRIVATE_UMASK,
        )
    except OSError:
        return []  # the ordinary start below reports what is wrong
    return [proc]


def hand_over(early: list[subprocess.Popen[bytes]], plan_path: Path) -> subprocess.Popen[bytes] | None:
    """Give the early supervisor (if any, and still running) ``plan_path``; return it, or ``None`` if none took it."""
    if not early:
        return None
    proc = early.pop()
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"{plan_path}\n".encode())
        proc.stdin.close()
    except OSError:  # it died (a broken install): start one the ordinary way, whose log says why
        discard(proc)
        return None
    return proc


def discard(proc: subprocess.Popen[bytes]) -> None:
    """Stop an early supervisor that got no plan: end its stdin, so it stops its prewarmed collector and exits.

    It has started nothing else. SIGKILL after 5 s (then its prewarmed collector goes by ``PDEATHSIG``).
    """
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    close_notify(proc)


def close_notify(proc: subprocess.Popen[bytes]) -> None:
    """Close ``up``'s end of the early supervisor's notify pipe (its stdout), if it has one."""
    with contextlib.suppress(OSError):
        if proc.stdout is not None:
            proc.stdout.close()
