"""The typer side of ``legible``: the root group, its lazily loaded commands and its error reporting.

Imported by :func:`legible.cli.main.main` for every command line except the root help, and by whoever uses
``legible.cli.main.app`` (tests, the MCP server). See :mod:`legible.cli.main` for the contract.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from legible._errors import LegibleError, UsageError

from ._output import report
from .main import COMMANDS, HELP

#: The settings of the root app, which every lazily built command group is built with too.
_APP_SETTINGS: dict[str, Any] = {"add_completion": False, "pretty_exceptions_enable": False, "rich_markup_mode": None}

#: Click commands built from a command module (module name -> command name -> command), kept for the process.
#: typer builds the root group anew at every ``app(...)`` call; building a module's commands again each time
#: (typer inspects every function's signature and type hints) cost ~20 ms a call for ``browser`` in a warm
#: process. The commands depend only on code (no default is read from the environment), and click keeps a
#: call's state in its ``Context``, never on the command, so one build serves every call.
_BUILT: dict[str, dict[str, Any]] = {}


class LazyCommands(MutableMapping[str, Any]):
    """The root group's ``commands``: names from :data:`COMMANDS`, click commands built on first access.

    Reading a name imports its module, lets its ``register(app)`` add its commands to a fresh
    :class:`typer.Typer` (built with the root app's settings, so help and parsing are the same as when
    registered on the root) and keeps every command the module added. ``keys()``, ``in`` and ``len()``
    import nothing.

    Raises:
        KeyError: reading a name that is not in the table (or that its module does not register).

    """

    def __init__(self, table: dict[str, tuple[str, str]]) -> None:
        """Serve the commands of ``table`` (name -> (module, one-line help), see :data:`COMMANDS`)."""
        self._table = table
        self._loaded: dict[str, Any] = {}
        self._modules: set[str] = set()

    def _load(self, module: str) -> None:
        built = _BUILT.get(module)
        if built is None:
            sub = typer.Typer(**_APP_SETTINGS)
            importlib.import_module(f".{module}", __package__).register(sub)
            built = dict(typer.main.get_group(sub).commands)
            for name, cmd in built.items():
                if name in self._table:
                    cmd.short_help = self._table[name][1]
            _BUILT[module] = built
        for name, cmd in built.items():
            self._loaded.setdefault(name, cmd)
        self._modules.add(module)

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded and name in self._table and self._table[name][0] not in self._modules:
            self._load(self._table[name][0])
        return self._loaded[name]

    def __setitem__(self, name: str, cmd: Any) -> None:
        self._loaded[name] = cmd

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._table, *(n for n in self._loaded if n not in self._table)])

    def __len__(self) -> int:
        return len(self._table) + sum(1 for n in self._loaded if n not in self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._loaded


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
    """The root command: loads commands lazily, runs click in non-standalone mode, reports errors by contract."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build the group as :class:`typer.core.TyperGroup` does, with :class:`LazyCommands` as its commands."""
        super().__init__(*args, **kwargs)
        lazy = LazyCommands(COMMANDS)
        for name, cmd in self.commands.items():
            lazy[name] = cmd
        self.commands = lazy

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Write the "Commands" section from :data:`COMMANDS`, importing no command module."""
        rows = [(name, help_line) for name, (_mod, help_line) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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


def _root() -> None:
    """The root's callback: nothing to do before a command (typer builds a group only for an app with one)."""


class LegibleTyper(typer.Typer):
    """The root app: a :class:`typer.Typer` that can keep its click command once built (:meth:`prebuild`).

    typer builds the click command from the app's functions on every call, about 10 ms with the command's
    group loaded; a process that runs many command lines from one warm image (the fork server,
    :mod:`legible.forkserver`) builds it once, with every command loaded, before it forks.
    """

    _command: Any = None

    def prebuild(self) -> None:
        """Build the click command now, load every command of :data:`COMMANDS` into it, and keep it."""
        cmd: Any = typer.main.get_command(self)
        for name in COMMANDS:
            cmd.commands[name]  # noqa: B018 - the access loads the command (LazyCommands)
        self._command = cmd

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line as :meth:`typer.Typer.__call__` does, on the kept command if there is one.

        typer's call installs its exception hook and marks an escaping exception for its pretty printing;
        this app turns pretty exceptions off, so the hook prints any exception with Python's own hook, as
        here.
        """
        if self._command is None:
            return super().__call__(*args, **kwargs)
        if sys.excepthook != typer.main.except_hook:
            sys.excepthook = typer.main.except_hook
        return self._command(*args, **kwargs)


app = LegibleTyper(
    name="legible",
    cls=LegibleGroup,
    callback=_root,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
    **_APP_SETTINGS,
)
