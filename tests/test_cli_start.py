"""What a command line pays at start: the root help without typer, and only the module of the command it runs.

``legible --help`` is printed from the command table of ``legible.cli.main`` (``root_help``); these tests
hold it equal to what click renders from the real app, and hold the table equal to what the command
modules register. The speed itself is a benchmark (``benchmarks/bench_queries.py``), never asserted here.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from legible.cli.main import COMMANDS, app, root_help
from typer.testing import CliRunner

from .conftest import make_repo

#: The command modules of ``clis/`` (``legible.cli.<module>``).
MODULES = sorted({module for module, _line in COMMANDS.values()})


#: Runs the entry point as ``python -m legible.cli.main`` does and ends stderr with the modules it loaded
#: (``sys.modules``: ``-X importtime`` misses modules loaded through ``importlib.import_module``).
PROBE = (
    "import atexit, json, runpy, sys; "
    "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n')); "
    "sys.argv = ['legible', *sys.argv[1:]]; runpy.run_module('legible.cli.main', run_name='__main__')"
)


def _run(args: list[str], cwd: Path, columns: int = 80) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``legible ARGS`` as the console script does; return the process and the modules it loaded."""
    env = {**os.environ, "COLUMNS": str(columns)}
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    last = res.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("MODULES "), res.stderr[-500:]
    return res, set(json.loads(last.removeprefix("MODULES ")))


def test_root_help_is_what_click_renders_from_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    res = CliRunner().invoke(app, ["--help"])  # through typer and click, not the entry point's shortcut
    assert res.exit_code == 0
    assert res.stdout == root_help() + "\n"


def test_root_help_lists_every_command_with_its_line() -> None:
    lines = root_help().split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in lines] == list(COMMANDS)
    assert all(line.endswith(help_line) for line, (_m, help_line) in zip(lines, COMMANDS.values(), strict=True))


@pytest.mark.parametrize("module", MODULES)
def test_the_table_names_exactly_what_each_module_registers(module: str) -> None:
    sub = typer.Typer()
    importlib.import_module(f"legible.cli.{module}").register(sub)
    registered = set(typer.main.get_group(sub).commands)
    assert registered == {name for name, (mod, _line) in COMMANDS.items() if mod == module}


def test_every_help_line_fits_80_columns_uncut() -> None:
    """Click would cut a line longer than 78 - 6 - the longest name; the table's lines must fit whole."""
    limit = 78 - 6 - max(len(name) for name in COMMANDS)
    assert [name for name, (_m, line) in COMMANDS.items() if len(line) > limit] == []


def test_root_help_imports_neither_typer_nor_a_command_module(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "")
    for args in (["--help"], ["-h"], []):
        res, imported = _run(args, root)
        assert res.returncode == 0, res.stderr[-500:]
        assert res.stdout == root_help() + "\n"
        assert not {m for m in imported if m == "typer" or m.startswith("legible.cli.")} - {"legible.cli.main"}
        assert "typing" not in imported  # ~3 ms of every start (issue 12): TYPE_CHECKING is a plain False


def test_a_narrow_terminal_gets_clicks_own_layout(tmp_path: Path) -> None:
    """Below 80 columns click wraps to the terminal: the shortcut steps aside and typer renders the help."""
    root = make_repo(tmp_path / "r", "")
    res, imported = _run(["--help"], root, columns=60)
    assert res.returncode == 0
    assert "typer" in imported
    assert res.stdout != root_help() + "\n" and "Commands:" in res.stdout
    assert max(len(line) for line in res.stdout.splitlines()) <= 58


def test_a_command_imports_only_its_own_module(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "")
    res, imported = _run(["logs", "--help"], root)
    assert res.returncode == 0 and "--since" in res.stdout
    loaded = {m.removeprefix("legible.cli.") for m in imported if m.startswith("legible.cli.")}
    assert loaded & set(MODULES) == {"logs"}


def test_a_typo_still_gets_suggestions_from_the_table() -> None:
    res = CliRunner().invoke(app, ["tracs"])
    assert res.exit_code == 2
    assert "no such command 'tracs'. Did you mean 'traces'" in res.stderr


def test_a_modules_commands_are_built_once_per_process() -> None:
    """A warm process (tests, the MCP server, a fork server's child) reuses the commands a first call built."""
    first = CliRunner().invoke(app, ["browser", "snapshot", "--help"])
    built = typer.main.get_group(app).commands["browser"]  # typer builds the root group anew for each call
    again = CliRunner().invoke(app, ["browser", "snapshot", "--help"])
    assert typer.main.get_group(app).commands["browser"] is built
    assert first.exit_code == again.exit_code == 0
    assert first.stdout == again.stdout and "--selector" in first.stdout


def test_the_browser_module_brings_what_its_calls_need(tmp_path: Path) -> None:
    """A process that imports a command's module ahead of the call (the fork server) has the call's imports warm."""
    root = make_repo(tmp_path / "r", "")
    _res, imported = _run(["browser", "snapshot", "--help"], root)
    needed = {"legible.browser.client", "legible.contract", "legible.render", "legible.worktree"}
    assert needed <= imported, needed - imported
    assert "playwright" not in imported  # the agent's, never the CLI's


def test_prebuild_leaves_nothing_to_build_at_a_call() -> None:
    """What the fork server does before it forks: every module's commands built, kept for every call."""
    from legible.cli import _app

    _app.app.prebuild()
    try:
        assert set(_app._BUILT) == set(MODULES)
        built = {name: typer.main.get_group(app).commands[name] for name in COMMANDS}
        res = CliRunner().invoke(app, ["logs", "--help"])
        assert res.exit_code == 0 and "--since" in res.stdout
        assert all(typer.main.get_group(app).commands[name] is cmd for name, cmd in built.items())
    finally:
        _app.app._command = None  # the other tests run typer's own per-call build
