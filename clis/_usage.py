"""Typer command and group classes whose usage errors follow the CLI contract, worded as argparse words them.

Click reports a bad option with a usage block and ``Error: ...``. The query and browser commands report it
like every other legible error: ``error: legible logs: unrecognized arguments: --bogus`` then
``hint: see `legible logs --help```, exit 2, or a ``legible.error/v1`` document with ``--json``. The wording
is argparse's (these commands were parsed by argparse before, and scripts and tests match it), and so are
two parsing rules click lacks: a negative number (``-5``, ``-.5``) is a positional argument, not an unknown
option, and a long option may be shortened to a unique prefix (``--lim 5``).

Use ``app.command(cls=Command)`` on a command and ``typer.Typer(cls=Group)`` on a group of subcommands.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from legible._errors import LegibleError, UsageError

from ._output import fail

__all__ = ["Command", "Group"]

#: Click's exceptions module: typer 0.28 vendors click, older typers use the click package.
_click_errors: Any = importlib.import_module(typer.BadParameter.__module__)
#: What argparse takes for a negative number rather than an option.
_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")
#: Click's message for a value its type rejects: "'x' is not a valid int." (or integer, float).
_NOT_VALID = re.compile(r"^(.+) is not a valid \w+\.$")
#: argparse's names of the types click calls int, integer and float.
_ARGPARSE_TYPE = {"int": "int", "integer": "int", "float": "float"}


def _usage_error(ctx: Any, message: str) -> UsageError:
    """``UsageError("legible CMD: message")`` with a hint to the command's ``--help``."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    prog = " ".join(["legible", *reversed(names)])
    return UsageError(f"{prog}: {message}", hint=f"see `{prog} --help`")


def _name(param: Any) -> str:
    """How argparse names a parameter in errors: ``--limit/-n``, or an argument's metavar or name."""
    if param.param_type_name == "option":
        return "/".join(param.opts)
    return str(param.metavar or param.name)


def _translate(ctx: Any, err: Any, missing: list[str]) -> UsageError:
    """Click's usage error ``err`` as argparse would have said it; ``missing`` names the absent arguments."""
    param = getattr(err, "param", None)
    if isinstance(err, _click_errors.MissingParameter) and missing:
        return _usage_error(ctx, f"the following arguments are required: {', '.join(missing)}")
    if isinstance(err, _click_errors.BadParameter) and param is not None:
        kind = _ARGPARSE_TYPE.get(getattr(param.type, "name", ""))
        invalid = _NOT_VALID.match(err.message)
        if kind and invalid:
            return _usage_error(ctx, f"argument {_name(param)}: invalid {kind} value: {invalid[1]}")
        return _usage_error(ctx, f"argument {_name(param)}: {err.message}")
    if isinstance(err, _click_errors.NoSuchOption):
        return _usage_error(ctx, f"unrecognized arguments: {err.option_name}")
    if isinstance(err, _click_errors.BadOptionUsage):
        options = [p for p in ctx.command.get_params(ctx) if err.option_name in getattr(p, "opts", ())]
        if options and not options[0].is_flag:
            return _usage_error(ctx, f"argument {_name(options[0])}: expected one argument")
    return _usage_error(ctx, err.message[:1].lower() + err.message[1:])


def _arrange(ctx: Any, params: list[Any], args: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Split ``args`` as argparse would: return (options then ``--`` then positionals, unrecognized, positionals).

    Options keep their order and values (a value may start with ``-``); a negative number is a positional;
    a long option's unique prefix becomes the option. Unknown options and positionals beyond the command's
    arguments are returned as unrecognized instead.
    """
    options = {name: p for p in params if p.param_type_name == "option" for name in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in params if p.param_type_name == "argument"]
    slots = len(args) if any(p.nargs < 0 for p in arguments) else sum(p.nargs for p in arguments)
    front: list[str] = []
    positional: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if arg[:1] != "-" or arg == "-" or _NEGATIVE.match(arg):
            positional.append(arg)
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name not in options:
                matches = [o for o in options if o.startswith(name)]
                if len(matches) > 1:
                    raise _usage_error(ctx, f"ambiguous option: {name} could match {', '.join(matches)}")
                if not matches:
                    unknown.append(arg)
                    continue
                name = matches[0]
                arg = name + eq + value
            front.append(arg)
            needs_value = not options[name].is_flag and not eq
        else:  # -n 5, -n5, -n=5, or a cluster of flags that may end with an option taking a value: -fn 5
            if "-" + arg[1] not in options:
                unknown.append(arg)
                continue
            if arg[2:3] == "=" and not options[arg[:2]].is_flag:
                front += [arg[:2], arg[3:]]
                continue
            front.append(arg)
            needs_value = False
            for j, char in enumerate(arg[1:], 1):
                option = options.get("-" + char)
                if option is None or not option.is_flag:
                    needs_value = option is not None and j == len(arg) - 1
                    break
        if needs_value and i < len(args):
            front.append(args[i])
            i += 1
    unrecognized = unknown + positional[slots:]
    positional = positional[:slots]
    return front + (["--", *positional] if positional else []), unrecognized, positional


class Command(TyperCommand):
    """A typer command whose usage errors are one argparse-worded line (see the module docstring)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Parse ``args`` into ``ctx``; a usage error prints ``error:`` and ``hint:`` lines and exits 2."""
        as_json = "--json" in args
        params = self.get_params(ctx)
        positional: list[str] = []
        try:
            arranged, unrecognized, positional = _arrange(ctx, params, args)
            rest = super().parse_args(ctx, arranged)
            if unrecognized:  # argparse names the top parser: `legible browser`, not `legible browser status`
                top = ctx.parent if ctx.parent is not None and ctx.parent.parent is not None else ctx
                raise _usage_error(top, f"unrecognized arguments: {' '.join(unrecognized)}")
            return rest
        except _click_errors.UsageError as err:
            arguments = [p for p in params if p.param_type_name == "argument"]
            missing = [_name(p) for p in arguments[len(positional) :] if p.required]
            fail(_translate(ctx, err, missing), as_json)
        except LegibleError as err:
            fail(err, as_json)


class Group(TyperGroup):
    """A typer group whose usage errors are one argparse-worded line, naming the subcommand ``COMMAND``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Parse ``args`` up to the subcommand; a missing or unknown subcommand is a usage error (exit 2)."""
        as_json = "--json" in args
        try:
            command = next((a for a in args if not a.startswith("-")), None)
            if command is None and not set(ctx.help_option_names) & set(args):
                raise _usage_error(ctx, "the following arguments are required: COMMAND")
            if command is not None and command not in self.commands:
                choices = ", ".join(repr(c) for c in self.commands)
                raise _usage_error(ctx, f"argument COMMAND: invalid choice: {command!r} (choose from {choices})")
            return super().parse_args(ctx, args)
        except _click_errors.UsageError as err:
            fail(_translate(ctx, err, []), as_json)
        except LegibleError as err:
            fail(err, as_json)
