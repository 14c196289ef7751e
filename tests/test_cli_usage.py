"""Usage errors of every command: one ``error:`` line and a ``hint:``, exit 2, or ``legible.error/v1`` with --json.

Click parses; the entry point (legible.cli.main.LegibleGroup.main) reports. Runs in-process with typer's
CliRunner: a usage error stops before any command touches a stack.
"""

from __future__ import annotations

import json

import pytest
from legible.cli.main import app
from typer.testing import CliRunner

CASES = [
    # a bad flag
    (["logs", "--bogus"], "legible logs: no such option: --bogus"),
    (["browser", "snapshot", "--deep"], "legible browser snapshot: no such option: --deep"),
    (["journey", "list", "--all"], "legible journey list: no such option: --all"),
    (["down", "--purg"], "legible down: no such option: --purg"),  # no prefix abbreviation
    # a bad value
    (["traces", "--limit", "many"], "legible traces: invalid value for '--limit' / '-n': 'many' is not a valid int"),
    (["browser", "wait", "Done", "--timeout", "soon"], "legible browser wait: invalid value for '--timeout'"),
    (["metrics", "up", "--range"], "legible metrics: option '--range' requires an argument"),
    (
        ["browser", "record", "pause"],
        "legible browser record: invalid value for 'start|chapter|stop': 'pause' is not one",
    ),
    # a missing argument or command
    (["trace"], "legible trace: missing argument 'ID'"),
    (["browser", "fill", "e3"], "legible browser fill: missing argument 'text'"),
    (["journey"], "legible journey: missing command"),
    (["browser", "teleport"], "legible browser: no such command 'teleport'"),
    (["nosuch"], "legible: no such command 'nosuch'"),
]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_one_line_and_a_hint_exit_2(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"error: {message}"), lines
    prog = message.split(":")[0]
    assert lines[1] == f"hint: see `{prog} --help`"
    assert res.stdout == ""


#: --json after a complete command (not as the value of --range, not on a group that has no --json).
JSON_CASES = [c for c in CASES if "requires an argument" not in c[1] and "command" not in c[1]]


@pytest.mark.parametrize(("args", "message"), JSON_CASES)
def test_with_json_the_error_is_one_document(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 2, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "legible.error/v1" and doc["error"] == "UsageError" and doc["exit_code"] == 2
    assert doc["message"].startswith(message) and doc["hint"].endswith(" --help`")
    assert res.stderr == ""


def test_help_is_not_an_error() -> None:
    bare = CliRunner().invoke(app, [])
    assert bare.exit_code == 0 and bare.stdout.startswith("Usage: legible [OPTIONS] COMMAND")
    sub = CliRunner().invoke(app, ["logs", "--help"])
    assert sub.exit_code == 0 and "--since" in sub.stdout
