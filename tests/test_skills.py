"""The skills follow the Agent Skills format, and every command they quote runs and prints what they show.

Each skill's quoted commands (``$ ...`` lines in fenced blocks) run in order, in one shell, in a fresh
worktree of the example shop; the first line each prints must match the first line the skill shows, with
volatile parts (numbers, ids, paths, units) folded. ``# exit N`` after a command says it must exit N.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from legible.agents import bundled, read_skill

from .conftest import REPO, cli
from .test_stack import shop_repo

SKILLS = bundled()


def test_there_are_skills_for_each_area() -> None:
    assert {p.parent.name for p in SKILLS} == {
        "legible-stack",
        "legible-debug",
        "legible-browser",
        "legible-proof",
        "launch-app",  # the two steps a Symphony WORKFLOW.md names (docs/orchestrators.md)
        "github-pr-media",
    }


@pytest.mark.parametrize("path", SKILLS, ids=lambda p: p.parent.name)
def test_skill_follows_the_agent_skills_format(path: Path) -> None:
    skill = read_skill(path)
    assert skill["name"] == path.parent.name
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", skill["name"]) and len(skill["name"]) <= 64
    assert 20 < len(skill["description"]) < 1024
    assert len(skill["body"].splitlines()) < 500


def quoted(path: Path) -> list[tuple[str, int, str]]:
    """``[(command, expected exit code, expected first output line or "")]`` in document order."""
    out: list[tuple[str, int, str]] = []
    in_block = False
    pending: list | None = None
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            pending = None
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            cmd = line[2:]
            m = re.search(r"\s+#\s*exit (\d+)$", cmd)
            code = int(m.group(1)) if m else 0
            cmd = cmd[: m.start()] if m else cmd
            pending = [cmd, code, ""]
            out.append(pending)  # type: ignore[arg-type]
        elif pending is not None and not pending[2] and line.strip():
            pending[2] = line
    return [tuple(x) for x in out]  # type: ignore[misc]


def fold(line: str) -> str:
    line = re.sub(r"(~|/)[^\s:)]*", "P", line)
    line = re.sub(r"\b[0-9a-f]{6,}\b", "H", line)
    line = re.sub(r"\d+(\.\d+)?\s?(ms|s|m|h|KB|MB|B)\b", "N U", line)
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    return re.sub(r"\s+", " ", line).strip()


TRACE_ID = (
    "$(legible traces --errors --json"
    ' | python -c \'import json,sys; print(json.load(sys.stdin)["traces"][0]["trace_id"])\')'
)


@pytest.mark.parametrize("path", SKILLS, ids=lambda p: p.parent.name)
def test_every_quoted_command_runs_and_prints_what_the_skill_shows(path: Path, tmp_path: Path) -> None:
    commands = quoted(path)
    assert commands, f"{path} quotes no command"
    root = shop_repo(tmp_path / "shop", (REPO / "examples" / "shop" / "legible.toml").read_text())
    script = [f'legible() {{ "{sys.executable}" -m legible.cli.main "$@"; }}']
    for i, (cmd, _, _) in enumerate(commands):
        cmd = cmd.replace("<trace-id>", TRACE_ID)
        script += [f"echo '@@@ {i}'", cmd, 'echo "@@@ exit $?"']
    try:
        res = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        cli(root, "down")
    parts = re.split(r"^@@@ (\d+)\n", res.stdout, flags=re.M)[1:]
    assert len(parts) == 2 * len(commands), res.stdout[-2000:] + res.stderr[-2000:]
    for (cmd, code, expected), output in zip(commands, parts[1::2], strict=True):
        body, _, tail = output.rpartition("@@@ exit ")
        assert int(tail.strip()) == code, f"{cmd!r} exited {tail.strip()}, expected {code}:\n{body}{res.stderr[-1500:]}"
        if expected:
            first = next((ln for ln in body.splitlines() if ln.strip()), "")
            assert fold(first) == fold(expected), f"{cmd!r}\n  skill shows: {expected}\n  real output: {first}"
