"""Commands whose options are parsed by ``argparse`` behind typer's router, for a fast start.

Why: typer 0.29 coerces every non-boolean option through a pydantic ``TypeAdapter``, so the first such
option costs the pydantic import (about 100 ms here). ``legible logs`` and ``legible traces`` must answer in
under 300 ms end to end over a million stored lines (issue 3), so these commands take the raw argument list
from typer (a ``typer.Context`` with ``allow_extra_args``) and parse it with the standard library's
``argparse`` (about 3 ms). ``legible --help`` still lists them; ``legible logs --help`` prints argparse's
help. Usage errors become :class:`legible._errors.UsageError` (one line, exit 2) like everywhere else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

import typer

from clis._output import fail
from legible._errors import UsageError

__all__ = ["ArgParser", "register_argparse_command"]


class ArgParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        """Raise ``UsageError(message)`` with a hint to ``--help``."""
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def register_argparse_command(
    app: typer.Typer,
    name: str,
    build_parser: Callable[[], ArgParser],
    handler: Callable[[argparse.Namespace], None],
    help_text: str,
) -> None:
    """Add command ``name`` to ``app``; its arguments are parsed by ``build_parser()`` and passed to ``handler``.

    Args:
        app: the typer app (see ``clis/main.py``).
        name: the command name.
        build_parser: returns the parser (``prog`` should be ``"legible NAME"``); called per invocation.
        handler: does the work; it may raise :class:`legible._errors.LegibleError`.
        help_text: the one-paragraph help shown by ``legible --help``.

    """

    def command(ctx: typer.Context) -> None:
        args = list(ctx.args)
        as_json = "--json" in args
        try:
            ns = build_parser().parse_args(args)
        except UsageError as err:
            fail(err, as_json)
        handler(ns)

    command.__doc__ = help_text
    app.command(
        name,
        help=help_text,
        add_help_option=False,
        context_settings={
            "ignore_unknown_options": True,
            "allow_extra_args": True,
            "allow_interspersed_args": False,
            "help_option_names": [],
        },
    )(command)


def print_lines(lines: list[str]) -> None:
    """Write ``lines`` to stdout, one per line."""
    sys.stdout.write("\n".join(lines) + "\n")
