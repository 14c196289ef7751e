"""``legible.cli._direct``: the query commands without typer give what typer gives, byte for byte.

On the kept store (the "after `legible down`" path, no stack) each command line runs both ways in this
process (typer's ``app(args, standalone_mode=False)`` and :func:`legible.cli._direct.run`) and the exit
code, stdout and stderr are compared; what the clock moves (``SEEN 3 s ago``) is compared once more after a
retry, and only the window start computed from "now" (``"since"`` of a ``--json`` document) and a check
run's own duration (``(N ms)``, ``took_ms``) are masked if they still differ.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from legible.cli import _direct
from legible.cli.main import app

from ._query_fixtures import T_ERR, build_store, git_repo
from .conftest import REPO

TOML = """\
[app]
command = "python app.py"

[checks.no-errors]
logs = { level = "error", max_count = 0 }
"""


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = git_repo(tmp_path_factory.mktemp("direct") / "wt")
    (root / "legible.toml").write_text(TOML)
    build_store(root)
    return root


def _kind(param: Any) -> str:
    if isinstance(param, typer.core.TyperArgument):
        return "many" if param.nargs == -1 else "one"
    if param.is_flag:
        return "flag"
    if param.multiple:
        return "list"
    name = getattr(param.type, "name", "")
    return {"integer": "int", "text": "str"}.get(name, "path" if "Path" in type(param.type).__name__ else name)


@pytest.mark.parametrize("command", sorted(_direct.SPECS))
def test_specs_are_the_typer_commands_options(command: str) -> None:
    click_cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    options: dict[str, tuple[str, str]] = {}
    positional = None
    for param in click_cmd.params:
        if isinstance(param, typer.core.TyperArgument):
            positional = (param.name, _kind(param))
        else:
            options.update({opt: (param.name, _kind(param)) for opt in [*param.opts, *param.secondary_opts]})
    assert _direct.SPECS[command] == (options, positional)


@pytest.mark.parametrize(
    "argv",
    [
        ["logs", "--help"],
        ["logs", "-h"],
        ["logs", "--limit", "-3"],
        ["logs", "--limit", "5x"],
        ["logs", "--limit", "٣"],  # a digit to str.isdigit, not to click
        ["logs", "-n5"],
        ["logs", "-rf"],
        ["logs", "--raw=1"],
        ["logs", "--raw", "--raw"],
        ["logs", "--since"],
        ["logs", "--grep", "--json"],
        ["logs", "--bogus"],
        ["logs", "--", "x"],
        ["logs", "extra"],
        ["logs", "--from", ""],
        ["traces", "--slowest", "1", "--slowest", "2"],
        ["trace"],
        ["trace", "abc123", "def456"],
        ["metrics", "up"],
        [],
    ],
)
def test_what_is_not_plain_is_left_to_typer(argv: list[str]) -> None:
    assert _direct.parse(argv) is None


def test_plain_lines_parse_to_what_typer_passes() -> None:
    parsed = _direct.parse(["logs", "-s", "app", "--service=worker", "--limit", "07", "--raw", "--from", "b"])
    assert parsed is not None and parsed[0] == "logs"
    kwargs = parsed[1]
    assert kwargs["service"] == ["app", "worker"] and kwargs["limit"] == 7 and kwargs["raw"] is True
    assert kwargs["from_"] == Path("b") and kwargs["attr"] == [] and kwargs["since"] is None
    assert _direct.parse(["check"]) == ("check", {**_direct.parse(["check", "a"])[1], "names": None})  # type: ignore[index]
    assert _direct.parse(["trace", "-n", "3", "abc"])[1]["trace_id"] == "abc"  # type: ignore[index]


def _both(root: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    monkeypatch.chdir(root)

    def call(fn: Any) -> tuple[Any, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = fn()
        return code, out.getvalue(), err.getvalue()

    assert _direct.parse(argv) is not None, argv  # the direct path takes this line
    return call(lambda: app(list(argv), standalone_mode=False)), call(lambda: _direct.run(list(argv)))


CASES = [
    ["logs"],
    ["logs", "--level", "warn", "--json"],
    ["logs", "--raw", "-n", "5", "--fields", "ts,level,service,body,trace_id"],
    ["logs", "--grep", "declined", "--since", "1h"],
    ["logs", "-a", "http.route=/error", "--since", "all", "--json"],
    ["logs", "--trace-id", T_ERR[:8]],
    ["logs", "--sql", "SELECT level, count(*) AS n FROM logs GROUP BY ALL ORDER BY 1"],
    ["logs", "--sql", "DROP TABLE logs"],  # UsageError, exit 2
    ["logs", "--sql", "DROP TABLE logs", "--json"],  # the same as a legible.error/v1 document
    ["logs", "--level", "loud"],
    ["logs", "--since", "yesterday-ish"],
    ["traces"],
    ["traces", "--slowest", "3", "--json"],
    ["traces", "--errors", "--service", "app"],
    ["traces", "--min-duration", "500ms", "--name", "slow"],
    ["trace", T_ERR],
    ["trace", T_ERR[:10], "--json"],
    ["trace", "ffffffffffff"],
    ["check", "--logs", "level=error,max_count=1000", "--span", "max=2s,percentile=99"],
    ["check", "--logs", "level=error", "--json"],
    ["check", "no-errors"],
    ["check", "nonexistent"],
    ["check", "--span", "max=2"],
    ["check", "--span", "max=2s,colour=red", "--json"],
    ["check", "--db", "max_statement=50ms", "--startup", "1s"],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c)[:60] for c in CASES])
def test_direct_prints_what_typer_prints(kept: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    typer_answer, direct_answer = _both(kept, argv, monkeypatch)
    if typer_answer != direct_answer:  # a second apart ("3 s ago" became "4 s ago", "(12 ms)"): once more
        typer_answer, direct_answer = _both(kept, argv, monkeypatch)
    if typer_answer != direct_answer:  # the window's start from "now" (--json), the check run's "(N ms)"
        timing = re.compile(r"\(\d+ ms\)|\"took_ms\": [0-9.]+|\"since\": \"[0-9T:.-]+Z\"")
        typer_answer = tuple(timing.sub("T", x) if isinstance(x, str) else x for x in typer_answer)
        direct_answer = tuple(timing.sub("T", x) if isinstance(x, str) else x for x in direct_answer)
    assert direct_answer == typer_answer
    assert typer_answer[1] or typer_answer[2]  # each case prints something


def test_a_query_on_the_kept_store_imports_no_typer(kept: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "legible.cli.main", "traces", "--slowest", "2"],
        cwd=kept,
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert sorted(m for m in imported if m.split(".")[0] in ("typer", "click", "pydantic", "psutil")) == []
    assert "slowest" in proc.stdout or "traces" in proc.stdout
