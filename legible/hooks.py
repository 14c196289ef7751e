"""Agent hooks, opt in: a Claude Code ``Stop`` hook that keeps the agent working while legible's checks fail.

Contract (Claude Code's hooks reference, https://docs.anthropic.com/en/docs/claude-code/hooks): the hook
command reads one JSON object on stdin (``session_id``, ``transcript_path``, ``cwd``, ``hook_event_name``:
``"Stop"``, ``stop_hook_active``); exit 0 lets the agent stop; exit 2 blocks the stop and feeds stderr to the
agent as the reason to keep working; any other code is a non-blocking error shown to the user.
``stop_hook_active`` is true when the agent is already continuing because of a Stop hook: the hook then exits
0, so a check that cannot be fixed never loops the agent forever.

Codex (https://developers.openai.com/codex/hooks) reads ``.codex/hooks.json`` in the same shape and writes the
same stdin fields, but its Stop hook answers on stdout with the JSON object of its published schema
``stop.command.output`` (``{"decision": "block", "reason": ...}``, exit 0): :data:`CODEX_HOOK_COMMAND`
(``legible hook stop --codex``) prints that instead of using exit code 2.

:func:`stop_hook` decides; ``legible hook stop`` (``clis/hook.py``) is the command the settings run, and
``legible skills install --hooks`` (:func:`install_hooks`) writes it into ``.claude/settings.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legible.contract import SkillsHooksDoc

__all__ = ["CODEX_HOOK_COMMAND", "HOOK_COMMAND", "MAX_LINES", "StopDecision", "install_hooks", "stop_hook"]

#: What Claude Code's settings run (on PATH, like every agent's shell command).
HOOK_COMMAND = "legible hook stop"
#: What Codex's ``hooks.json`` runs: the same decision as Codex's stdout JSON.
CODEX_HOOK_COMMAND = "legible hook stop --codex"
#: Lines of the check output passed to the agent at most (the verdict line, then failing checks).
MAX_LINES = 12
#: Seconds the agent waits for the hook (Claude Code's default is 60 too); the checks take well under it.
HOOK_TIMEOUT_S = 60


class StopDecision:
    """What the Stop hook does: its exit code and the text for stderr (empty when silent).

    Attributes:
        exit_code: 0 let the agent stop, 2 keep it working (Claude Code's blocking code), 1 a non-blocking
            error (the checks could not run: a bad config), shown to the user only.
        stderr: the bounded check lines (the reason the agent reads), or the error.

    """

    def __init__(self, exit_code: int, stderr: str = "") -> None:
        self.exit_code = exit_code
        self.stderr = stderr

    def codex(self) -> tuple[int, str, str]:
        """The same decision in Codex's Stop-hook contract: ``(exit_code, stdout, stderr)``.

        A blocking decision (exit 2) becomes exit 0 with ``{"decision": "block", "reason": <the lines>}`` on
        stdout (Codex's ``stop.command.output`` schema); the rest keep their exit code and stderr.
        """
        if self.exit_code == 2:
            return 0, json.dumps({"decision": "block", "reason": self.stderr}), ""
        return self.exit_code, "", self.stderr


def _parse(stdin_text: str) -> dict[str, Any]:
    try:
        doc = json.loads(stdin_text) if stdin_text.strip() else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def stop_hook(stdin_text: str, cwd: Path | None = None) -> StopDecision:
    """Decide the Stop hook's answer from the hook's stdin JSON.

    Silent exit 0 when ``stop_hook_active`` is true, when ``cwd`` (the JSON's ``cwd``, else ``cwd``, else the
    current directory) is not in a git worktree, or when no stack runs there. Otherwise runs ``legible check``
    (the CLI's own renderer, in-process): exit 2 with its verdict and failing lines (at most
    :data:`MAX_LINES`, then a line saying how many more) when a check fails or cannot be measured.

    Args:
        stdin_text: the JSON object Claude Code (or Codex) writes on the hook's stdin.
        cwd: the directory to look in when the JSON has no ``cwd``.

    Returns:
        A :class:`StopDecision`.

    """
    from legible._errors import LegibleError
    from legible.queries.source import read_endpoints
    from legible.worktree import find_worktree

    doc = _parse(stdin_text)
    if doc.get("stop_hook_active") is True:
        return StopDecision(0)
    where = Path(str(doc["cwd"])) if doc.get("cwd") else (cwd or Path.cwd())
    try:
        wt = find_worktree(where)
    except (LegibleError, OSError):
        return StopDecision(0)
    if not read_endpoints(wt):
        return StopDecision(0)
    import os

    from legible.mcp_server import run_cli

    before = Path.cwd()
    os.chdir(wt.root)
    try:
        res = run_cli(["check"])
    finally:
        os.chdir(before)
    if res.exit_code == 0:
        return StopDecision(0)
    if res.exit_code != 1:  # the checks could not run (a bad legible.toml): tell the user, do not trap the agent
        return StopDecision(1, res.text)
    lines = [ln for ln in res.stdout.splitlines() if ln and not ln.startswith("PASS ")]
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"... {len(lines) - MAX_LINES} more failing checks: run `legible check`")
    shown.append("legible: fix these before you stop (details: `legible check --json`, `legible logs --level error`)")
    return StopDecision(2, "\n".join(shown))


def _merge_stop_hook(path: Path, command: str) -> bool:
    """Add the Stop hook to the JSON settings file ``path`` (created if absent); return whether it was added.

    Raises:
        UsageError: the file is not a JSON object with a ``hooks`` object whose ``Stop`` is a list.

    """
    from legible._errors import UsageError

    try:
        settings = json.loads(path.read_text()) if path.exists() else {}
    except ValueError as e:
        raise UsageError(f"{path} is not valid JSON: {e}", hint="fix it, then rerun") from None
    if not isinstance(settings, dict) or not isinstance(settings.setdefault("hooks", {}), dict):
        raise UsageError(f"{path}: expected an object with a hooks object", hint="fix it, then rerun")
    stop = settings["hooks"].setdefault("Stop", [])
    if not isinstance(stop, list):
        raise UsageError(f"{path}: hooks.Stop is not a list", hint="fix it, then rerun")
    ours = [
        h
        for group in stop
        if isinstance(group, dict) and isinstance(group.get("hooks"), list)
        for h in group["hooks"]
        if isinstance(h, dict) and h.get("command") in (HOOK_COMMAND, CODEX_HOOK_COMMAND)
    ]
    present = any(h["command"] == command for h in ours)
    for h in ours:  # an older install's form (Codex once got the Claude Code command): brought up to date
        h["command"] = command
    if ours and not present:
        path.write_text(json.dumps(settings, indent=2) + "\n")
        return True
    if not present:
        stop.append({"hooks": [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}]})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2) + "\n")
    return not present


def install_hooks(start: Path | None = None) -> SkillsHooksDoc:
    """Add the Stop hook to the worktree's ``.claude/settings.json`` and ``.codex/hooks.json``, merged.

    Every other setting and hook is kept; a Stop hook already running :data:`HOOK_COMMAND` is left as it is
    (Codex's file gets :data:`CODEX_HOOK_COMMAND`, and an older install's plain command there is updated).

    Returns:
        ``legible.skills-hooks/v1``: ``{"schema", "path" (Claude Code's), "paths", "command", "added": bool}``.

    Raises:
        UsageError: a settings file exists but is not a JSON object with a ``hooks`` object.

    """
    from legible.worktree import find_worktree

    wt = find_worktree(start)
    paths = [wt.root / ".claude" / "settings.json", wt.root / ".codex" / "hooks.json"]
    added = [_merge_stop_hook(paths[0], HOOK_COMMAND), _merge_stop_hook(paths[1], CODEX_HOOK_COMMAND)]
    return {
        "schema": "legible.skills-hooks/v1",
        "path": str(paths[0]),
        "paths": [str(p) for p in paths],
        "command": HOOK_COMMAND,
        "added": any(added),
    }
