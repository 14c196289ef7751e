"""The opt-in agent Stop hook follows Claude Code's documented contract (stdin JSON in; exit 2 and the reason
on stderr to keep the agent working; exit 0 to let it stop), fed here with the documented stdin JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, cli, cli_json
from .test_stack import SHOP_TOML, shop_repo

FAILING_TOML = SHOP_TOML + '\n[checks.instant-start]\nstartup = { max = "1ms" }\n'


def stop_hook(cwd: Path, payload: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the installed hook command the way Claude Code (or, with ``--codex``, Codex) does: the JSON on
    stdin, in the project."""
    return subprocess.run(
        [sys.executable, "-m", "legible.cli.main", "hook", "stop", *extra],
        cwd=cwd,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def payload(cwd: Path, active: bool = False) -> dict:
    return {
        "session_id": "abc123",
        "transcript_path": str(cwd / "transcript.jsonl"),
        "cwd": str(cwd),
        "permission_mode": "default",
        "hook_event_name": "Stop",
        "stop_hook_active": active,
    }


def test_no_stack_is_silent_exit_0(tmp_path: Path) -> None:
    root = shop_repo(tmp_path / "shop", FAILING_TOML)
    res = stop_hook(root, payload(root))
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    res = stop_hook(outside, payload(outside))
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_failing_check_blocks_the_stop_with_the_failing_lines(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", FAILING_TOML)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "60")
    assert code == 0, doc
    sub = root / "templates"  # Claude Code may run the hook from a subdirectory; the JSON's cwd says where
    res = stop_hook(sub, payload(sub))
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert lines[0].startswith("FAIL: ")
    assert any(ln.startswith("FAIL ") and "instant-start" in ln for ln in lines)
    assert not any(ln.startswith("PASS ") for ln in lines)
    assert len(lines) <= 14
    # the same lines `legible check` prints for the failing check
    check_out = cli(root, "check").stdout.splitlines()
    assert [ln for ln in lines if "instant-start" in ln] == [ln for ln in check_out if "instant-start" in ln]
    # Codex's form of the same decision: its stop.command.output JSON on stdout, exit 0
    res = stop_hook(sub, payload(sub), "--codex")
    assert (res.returncode, res.stderr) == (0, ""), res.stderr
    answer = json.loads(res.stdout)
    assert set(answer) == {"decision", "reason"} and answer["decision"] == "block"
    reason = answer["reason"].splitlines()  # the same lines (a second run of the checks: figures may move)
    assert reason[0].startswith("FAIL: ") and reason[-1] == lines[-1] and len(reason) == len(lines)
    assert any(ln.startswith("FAIL ") and "instant-start" in ln for ln in reason)
    # already continuing because of this hook: let the agent stop (no loop), in both forms
    for extra in ((), ("--codex",)):
        res = stop_hook(root, payload(root, active=True), *extra)
        assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_skills_install_hooks_merges_into_claude_settings(tmp_path: Path) -> None:
    root = shop_repo(tmp_path / "shop")
    settings = root / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    mine = {"hooks": [{"type": "command", "command": "make lint"}]}
    settings.write_text(json.dumps({"model": "x", "hooks": {"Stop": [mine], "PreToolUse": []}}))
    for _ in range(2):  # idempotent
        res = cli(root, "skills", "install", "--hooks")
        assert res.returncode == 0, res.stderr
    doc = json.loads(settings.read_text())
    assert doc["model"] == "x" and doc["hooks"]["PreToolUse"] == []
    assert doc["hooks"]["Stop"] == [
        mine,
        {"hooks": [{"type": "command", "command": "legible hook stop", "timeout": 60}]},
    ]
    codex_file = root / ".codex" / "hooks.json"
    codex = json.loads(codex_file.read_text())
    entry = {"type": "command", "command": "legible hook stop --codex", "timeout": 60}
    assert codex == {"hooks": {"Stop": [{"hooks": [entry]}]}}
    # an earlier install gave Codex the Claude Code command: it is brought up to date, not duplicated
    codex_file.write_text(json.dumps({"hooks": {"Stop": [{"hooks": [{**entry, "command": "legible hook stop"}]}]}}))
    assert cli(root, "skills", "install", "--hooks").returncode == 0
    assert json.loads(codex_file.read_text()) == {"hooks": {"Stop": [{"hooks": [entry]}]}}
