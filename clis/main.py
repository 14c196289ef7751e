"""The ``legible`` entry point: one typer app; each command group lives in its own module.

To add a command group, write ``clis/<group>.py`` (installed as ``legible.cli.<group>``) with a
``register(app: typer.Typer)`` function and list the module in :data:`COMMAND_MODULES`. Modules must import
heavy libraries inside their commands.
"""

from __future__ import annotations

import importlib

import typer

#: Modules (relative to this package) whose ``register(app)`` adds commands, in ``--help`` order.
COMMAND_MODULES = [
    "stack",
    "restart",
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
]

app = typer.Typer(
    name="legible",
    help="Make this worktree's running app legible: stack, logs, metrics, traces, browser, checks, proof.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _mod in COMMAND_MODULES:
    importlib.import_module(f".{_mod}", __package__).register(app)


def _one_line_usage_errors(typer_app: typer.Typer) -> None:
    """Give every command and group of ``typer_app`` the usage-error classes of :mod:`clis._usage`.

    A bad flag is then one ``error:`` line and a ``hint:`` (or ``legible.error/v1`` with ``--json``), exit 2,
    for every command, as the CLI contract says, instead of click's usage block.
    """
    from typer.core import TyperCommand, TyperGroup

    from ._usage import Command, Group

    if not typer_app.info.cls or typer_app.info.cls is TyperGroup:  # typer's unset default is falsy
        typer_app.info.cls = Group
    for info in typer_app.registered_commands:
        if not info.cls or info.cls is TyperCommand:
            info.cls = Command
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _one_line_usage_errors(group.typer_instance)


_one_line_usage_errors(app)


def main() -> None:
    """Run the CLI (the ``legible`` console script)."""
    app()


if __name__ == "__main__":
    main()
