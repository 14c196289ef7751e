"""The docs cannot drift from the CLI: every command, subcommand and long option is in docs/*.md or README.md.

Walks the real typer app (``legible.cli.main.app`` through ``typer.main.get_command``), like sqlite-utils'
``tests/test_docs.py``; a new command or option without a line of documentation fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from legible.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
#: The docs cut at their headings: an option counts as documented in a section that names its command.
SECTIONS = re.split(r"(?m)^#+ ", DOCS)


def _walk(command: typer.core.TyperGroup | typer.core.TyperCommand, path: tuple[str, ...] = ()) -> Iterator:
    """(command path, click command) for every command and group below ``command``."""
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield (*path, name), sub
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))
OPTIONS = sorted(
    {
        (" ".join(path), opt)
        for path, cmd in COMMANDS
        for param in cmd.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--") and opt != "--help"
    }
)


def test_the_walk_sees_the_whole_app() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"up", "logs", "browser", "browser open", "journey run", "skills install"} <= names
    assert ("logs", "--since") in OPTIONS and ("browser network", "--slow-ms") in OPTIONS


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in COMMANDS])
def test_every_command_is_documented(path: str) -> None:
    assert re.search(rf"legible {re.escape(path)}\b", DOCS), f"`legible {path}` is in no doc"


@pytest.mark.parametrize(("path", "option"), OPTIONS)
def test_every_long_option_is_documented_next_to_its_command(path: str, option: str) -> None:
    sections = [s for s in SECTIONS if re.search(rf"legible {re.escape(path)}\b", s)]
    assert any(re.search(rf"{re.escape(option)}(?![\w-])", s) for s in sections), (
        f"`legible {path} {option}` is in no doc section that names `legible {path}`"
    )
