"""The ``legible`` entry point: one typer app; each command group lives in its own module.

To add a command group, write ``clis/<group>.py`` (installed as ``legible.cli.<group>``) with a
``register(app: typer.Typer)`` function and list the module in :data:`COMMAND_MODULES`. Modules must import
heavy libraries inside their commands.

Errors are turned into the CLI contract's output in one place, :meth:`LegibleGroup.main`: a usage error of
click (an unknown option, a bad value, a missing argument or command) and a
:class:`~legible._errors.LegibleError` escaping a command both print ``error: ...`` and ``hint: ...`` on
stderr, or one ``legible.error/v1`` document on stdout when ``--json`` is in the arguments, and exit with
the error's code (2 for usage errors). Long options must be spelled out: click matches them exactly.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from legible._errors import LegibleError, UsageError

from ._output import report

#: Modules (relative to this package) whose ``register(app)`` adds commands, in ``--help`` order.
COMMAND_MODULES = [
    "stack",
    "restart",
    "reset",
    "doctor",
    "logs",
    "traces",
    "metrics",
    "check",
    "diff",
    "browser",
    "journey",
    "proof",
    "skills",
    "mcp",
    "hook",
]


def _command_path(ctx: Any, root: Any, argv: list[str]) -> str:
    """``legible browser open``: the command the error is about (the root is always called ``legible``).

    From the error's click context when it has one, else (click raises some option errors without one)
    from the leading words of ``argv`` that name commands of ``root`` and of its groups.
    """
    names: list[str] = []
    if ctx is not None:
        while ctx.parent is not None:
            names.insert(0, ctx.info_name)
            ctx = ctx.parent
    else:
        group = root
        for word in argv:
            sub = getattr(group, "commands", {}).get(word)
            if sub is None:
                break
            names.append(word)
            group = sub
    return " ".join(["legible", *names])


def usage_error(err: typer.TyperException, root: Any, argv: list[str]) -> UsageError:
    """Click's usage error ``err`` as ``UsageError("legible CMD: message")`` with a hint to ``--help``.

    Args:
        err: an exception of click's ``ClickException`` tree (``UsageError``, ``BadParameter``,
            ``NoSuchOption``, ``MissingParameter``...), whose public base in typer is ``TyperException``.
        root: the root command, to name the command from ``argv`` when ``err`` carries no context.
        argv: the command line, without the program name.
    """
    prog = _command_path(getattr(err, "ctx", None), root, argv)
    message = err.format_message().strip()
    if message[:1].isupper() and message[1:2].islower():  # "No such option" -> "no such option", keep "PROMQL"
        message = message[0].lower() + message[1:]
    return UsageError(f"{prog}: {' '.join(message.split())}", hint=f"see `{prog} --help`")


class LegibleGroup(TyperGroup):
    """The root command: runs click in non-standalone mode and reports every error by the CLI contract."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line ``args`` (default ``sys.argv[1:]``); exit with the command's code.

        ``legible`` alone prints the help. Returns the exit code instead of exiting when
        ``standalone_mode`` is false.
        """
        argv = list(sys.argv[1:] if args is None else args) or ["--help"]
        as_json = "--json" in argv
        try:
            rv = super().main(argv, prog_name or "legible", complete_var, False, windows_expand_args, **extra)
            code = rv if isinstance(rv, int) else 0
        except typer.TyperException as err:  # click's usage errors; the exception tree lives in click
            code = report(usage_error(err, self, argv), as_json)
        except LegibleError as err:
            code = report(err, as_json)
        except typer.Abort:
            sys.stderr.write("aborted\n")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    name="legible",
    cls=LegibleGroup,
    help="Make this worktree's running app legible: stack, logs, metrics, traces, browser, checks, proof.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _mod in COMMAND_MODULES:
    importlib.import_module(f".{_mod}", __package__).register(app)


def main() -> None:
    """Run the CLI (the ``legible`` console script)."""
    app()


if __name__ == "__main__":
    main()
