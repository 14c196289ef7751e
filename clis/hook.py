"""``legible hook stop``: the agent Stop hook (thin over legible.hooks); installed by ``skills install --hooks``."""

from __future__ import annotations

import sys

import typer

hook_app = typer.Typer(help="Hooks that agents run (Claude Code, Codex): see docs/orchestrators.md.")


@hook_app.command("stop")
def stop(
    codex: bool = typer.Option(
        False, "--codex", help='answer in Codex\'s form: {"decision": "block", "reason": ...} on stdout, exit 0'
    ),
) -> None:
    """Stop hook: read the hook JSON on stdin; exit 2 with the failing checks on stderr, else exit 0 silently."""
    from legible.hooks import stop_hook

    decision = stop_hook(sys.stdin.read())
    code, out, err = decision.codex() if codex else (decision.exit_code, "", decision.stderr)
    if out:
        sys.stdout.write(out + "\n")
    if err:
        sys.stderr.write(err + "\n")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``hook`` to ``app``."""
    app.add_typer(hook_app, name="hook")
