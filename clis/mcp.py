"""``legible mcp``: serve the legible commands as MCP tools over stdio (thin over legible.mcp_server)."""

from __future__ import annotations

import typer

from ._output import run


def mcp() -> None:
    """Serve this worktree's legible commands as MCP tools over stdio (for Claude Code, Codex, Cursor).

    Each tool prints what the command of the same name prints. Register it with
    `legible skills install --mcp` (writes .mcp.json, prints the Codex command).
    """
    from legible.mcp_server import serve

    run(serve)


def register(app: typer.Typer) -> None:
    """Add ``mcp`` to ``app``."""
    app.command("mcp")(mcp)
