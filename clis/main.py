"""The ``legible`` entry point: the command table and the root help; each command group in its own module.

To add a command, write ``clis/<group>.py`` (installed as ``legible.cli.<group>``) with a
``register(app: typer.Typer)`` function and add a row per command to :data:`COMMANDS`: its name, its module
and the one line ``legible --help`` shows. Modules must import heavy libraries inside their commands.

Commands load lazily (click's documented "LazyGroup" pattern): ``legible --help`` renders the names and
one-line helps of :data:`COMMANDS` without importing a command module, and ``legible logs ...`` imports
``clis/logs.py`` only. The root group's ``commands`` is a mapping whose keys come from the table and whose
values are built on first access, so everything that reads ``commands`` (click's resolution, typer's "did
you mean", ``tests/test_docs.py``'s walk) sees every command.

Errors are turned into the CLI contract's output in one place, :meth:`legible.cli._app.LegibleGroup.main`:
a usage error of click (an unknown option, a bad value, a missing argument or command) and a
:class:`~legible._errors.LegibleError` escaping a command both print ``error: ...`` and ``hint: ...`` on
stderr, or one ``legible.error/v1`` document on stdout when ``--json`` is in the arguments, and exit with
the error's code (2 for usage errors). Long options must be spelled out: click matches them exactly.

``legible``, ``legible --help`` and ``legible -h`` print :func:`root_help` without importing typer or any
command module (the text is the one click renders from :data:`COMMANDS`, for a terminal of 80 columns or
more; ``tests/test_cli_start.py`` compares the two); every other command line goes through the typer app
``legible.cli.main.app`` (built in ``legible.cli._app`` on first use). On a running stack, the short
read-only and browser commands (:data:`legible.forkserver.ROUTED`) are first offered to the stack's fork
server, whose forked child runs this very function with the caller's environment, working directory and
terminal (:mod:`legible.forkserver`); without one they run here. ``legible up`` starts its stack's
supervisor (:func:`legible._early.start_ahead`) before typer is imported, and ``up`` and ``down`` end
their process without the interpreter's teardown once their output is written (:func:`_end`).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the root help and the routed commands never import typing
if TYPE_CHECKING:
    from typing import Any

#: The root help paragraph (``legible --help`` and the typer app's ``help``).
HELP = "Make this worktree's running app legible: stack, logs, metrics, traces, browser, checks, proof."

#: Every top-level command, in ``--help`` order: name -> (module relative to this package whose
#: ``register(app)`` adds it, the one line ``legible --help`` shows, at most 65 characters so that an
#: 80-column help never cuts it). The line is also the loaded command's ``short_help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("stack", "Write a commented legible.toml, guessing the app's command."),
    "up": ("stack", "Start this worktree's stack (a running stack is reported)."),
    "down": ("stack", "Stop this worktree's stack and free its ports."),
    "status": ("stack", "Show each service's state, ready time, restarts and endpoint."),
    "ps": ("stack", "List every legible stack on this machine."),
    "gc": ("stack", "Reclaim stacks whose supervisor or worktree is gone."),
    "restart": ("restart", "Restart the app as a new deploy; the stack stays up."),
    "deploys": ("restart", "List this worktree's last deploys."),
    "reset": ("reset", "Empty databases back to a fresh state."),
    "doctor": ("doctor", "Report each component: present, version, install command."),
    "logs": ("logs", "Show logs: groups of similar lines, or --raw, --follow, --sql."),
    "traces": ("traces", "List recent traces, or the --slowest N."),
    "trace": ("traces", "Show one trace as an indented tree with its log lines."),
    "metrics": ("metrics", "Query the stack's VictoriaMetrics with PromQL."),
    "check": ("check", "Evaluate checks against the stack's signals; exit 1 on failure."),
    "diff": ("diff", "What changed between two deploys."),
    "proof": ("proof", "Run journeys (recorded) and checks; write the evidence bundle."),
    "mcp": ("mcp", "Serve this worktree's legible commands as MCP tools over stdio."),
    "browser": ("browser", "Drive this stack's headless Chromium (state persists)."),
    "journey": ("journey", "Named browser journeys from legible.toml: list, run."),
    "skills": ("skills", "Agent Skills that teach coding agents the legible commands."),
    "hook": ("hook", "Hooks that agents run (Claude Code, Codex)."),
}

#: Click's help is as wide as the terminal, at most 80 columns (``HelpFormatter`` wraps at 78).
_HELP_COLUMNS = 80


def root_help() -> str:
    """Return what click prints for ``legible --help`` in a terminal of 80 columns or more.

    Built from :data:`HELP` and :data:`COMMANDS` in click's layout (usage line, help paragraph indented by 2
    and wrapped at 78 columns, the options, then the commands as a two-column list), without a trailing
    newline.
    """
    import textwrap

    width = max(len(name) for name in COMMANDS) + 2
    paragraph = textwrap.fill(HELP, 78, initial_indent="  ", subsequent_indent="  ")
    rows = "\n".join(f"  {name:<{width}}{line}" for name, (_mod, line) in COMMANDS.items())
    return (
        f"Usage: legible [OPTIONS] COMMAND [ARGS]...\n\n{paragraph}\n\n"
        f"Options:\n  -h, --help  Show this message and exit.\n\nCommands:\n{rows}"
    )


def _wide_terminal() -> bool:
    """Whether click would lay the help out for at least 80 columns (``COLUMNS``, the terminal, or 80)."""
    import shutil

    return shutil.get_terminal_size().columns >= _HELP_COLUMNS


def __getattr__(name: str) -> Any:
    """``app``, ``LegibleGroup``, ``LazyCommands``, ``usage_error``: loaded from ``legible.cli._app`` (PEP 562)."""
    if name in {"app", "LegibleGroup", "LazyCommands", "usage_error"}:
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _end(code: int) -> None:
    """End this process with ``code``: exit handlers, flush of stdout and stderr, then ``os._exit(code)``.

    Used once the fork server's child ran the command (this process only relayed it: its output went to the
    caller's fds from the child), and after ``up`` or ``down`` returned (their files are written and closed
    by then). The interpreter's finalisation (tearing down every module: 5-20 ms, issue 12) has nothing left
    to do; the exit handlers (``atexit``, e.g. a ``sitecustomize``'s, logging's flush) and the flush of
    stdout and stderr are all of it that is kept.
    """
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: the interpreter would only report it
            pass
    os._exit(code)


def main() -> None:
    """Run the CLI (the ``legible`` console script); the root help is answered without typer."""
    if sys.argv[1:] in ([], ["--help"], ["-h"]) and _wide_terminal():
        sys.stdout.write(root_help() + "\n")
        return
    from legible.forkserver import run_remote

    code = run_remote(sys.argv)  # a running stack's fork server answers warm (legible.forkserver)
    if code is not None:
        _end(code)
    if sys.argv[1:2] == ["up"] and not {"--help", "-h"} & set(sys.argv[2:]):
        from legible._early import start_ahead

        start_ahead()  # the stack's supervisor starts while typer and the command are imported (issue 12)
    import atexit
    import gc

    # A command ends its process once its output is written: at exit, move every object to the collector's
    # permanent generation, so the interpreter's final collections do not walk the heap (typer's, pydantic's
    # objects): 50-100 ms of CPU after `legible up` printed its document, ~10 ms for `check --help` (issue 12).
    # Objects are still freed by reference counting; a long-lived process (`legible mcp`) pays it once, at exit.
    atexit.register(gc.freeze)
    from ._app import app

    if sys.argv[1:2] not in (["up"], ["down"]):
        app()
        return
    # `up` and `down` write their document and the files they own (closed) before they return: their process
    # ends as a routed command's does, without the interpreter's teardown of typer, pydantic and psutil
    # (10-20 ms after the document is printed, which `up --wait`'s caller waits out; issue 12).
    try:
        app()
    except SystemExit as done:
        _end(_exit_code(done.code))
    _end(0)


def _exit_code(code: object) -> int:
    """The process exit status ``sys.exit(code)`` gives: ``None`` is 0, an int itself, anything else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


if __name__ == "__main__":
    main()
