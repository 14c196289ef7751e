"""The ``legible`` entry point: one typer app; each command group lives in its own module.

To add a command group, write ``clis/<group>.py`` with a ``register(app: typer.Typer)`` function and list
the module in :data:`COMMAND_MODULES`. Modules must import heavy libraries inside their commands.
"""

from __future__ import annotations

import importlib

import typer

#: Modules whose ``register(app)`` adds commands, in ``--help`` order.
COMMAND_MODULES = [
    "clis.stack",
    "clis.doctor",
    "clis.logs",
    "clis.traces",
    "clis.metrics",
    "clis.check",
    "clis.browser",
    "clis.journey",
    "clis.proof",
    "clis.skills",
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
    importlib.import_module(_mod).register(app)


def main() -> None:
    """Run the CLI (the ``legible`` console script)."""
    app()


if __name__ == "__main__":
    main()
