"""``legible skills install``: copy legible's Agent Skills where coding agents look, and point AGENTS.md at them.

Targets, relative to the worktree root: ``.claude/skills/<name>/SKILL.md`` (Claude Code),
``.codex/skills/<name>/SKILL.md`` (Codex) and ``.agents/skills/<name>/SKILL.md`` (other agents following the
Agent Skills convention). ``AGENTS.md`` gets a short section between markers, replaced on reinstall.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from legible.worktree import find_worktree

if TYPE_CHECKING:
    from legible.contract import SkillsInstallDoc, SkillsMcpDoc

SKILLS_SCHEMA: Final = "legible.skills-install/v1"
TARGETS = (".claude/skills", ".codex/skills", ".agents/skills")
_BEGIN, _END = "<!-- legible:begin -->", "<!-- legible:end -->"
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def read_skill(path: Path) -> dict[str, str]:
    """Parse a SKILL.md: ``{"name", "description", "body"}`` from its YAML front matter and text.

    Raises:
        ValueError: no front matter, or ``name``/``description`` missing.
    """
    text = path.read_text()
    m = _FRONT.match(text)
    if not m:
        raise ValueError(f"{path}: no front matter (--- name: ... description: ... ---)")
    meta: dict[str, str] = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    if "name" not in meta or "description" not in meta:
        raise ValueError(f"{path}: front matter needs name and description")
    return {"name": meta["name"], "description": meta["description"], "body": text[m.end() :]}


def bundled() -> list[Path]:
    """The SKILL.md files shipped with legible, sorted by skill name."""
    from legible.skills import SKILLS_DIR

    return sorted(SKILLS_DIR.glob("*/SKILL.md"))


def install(start: Path | None = None) -> SkillsInstallDoc:
    """Copy every bundled skill into each target of the worktree and refresh the AGENTS.md pointer.

    Returns:
        ``legible.skills-install/v1``: ``{"schema", "skills": [name...], "written": [path...], "agents_md": path}``.
    """
    wt = find_worktree(start)
    written = []
    names = []
    for src in bundled():
        skill = read_skill(src)
        names.append(skill["name"])
        for target in TARGETS:
            dest = wt.root / target / skill["name"] / "SKILL.md"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(src.read_text())
            written.append(str(dest))
    agents = wt.root / "AGENTS.md"
    section = "\n".join(
        [
            _BEGIN,
            "## legible",
            "This repository runs its app under legible: `legible up --wait` boots this worktree's own instance,",
            "`legible logs|traces|metrics` answer questions about it, `legible browser`/`legible journey` drive",
            "the UI, `legible check` and `legible proof` give verdicts and evidence. Skills: "
            + ", ".join(f"`.agents/skills/{n}/SKILL.md`" for n in names)
            + ".",
            _END,
        ]
    )
    text = agents.read_text() if agents.exists() else ""
    if _BEGIN in text and _END in text:
        text = text[: text.index(_BEGIN)] + section + text[text.index(_END) + len(_END) :]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + section + "\n"
    agents.write_text(text)
    return {"schema": SKILLS_SCHEMA, "skills": names, "written": written, "agents_md": str(agents)}


#: The server entry ``legible skills install --mcp`` writes into ``.mcp.json`` (Claude Code's project scope,
#: https://docs.anthropic.com/en/docs/claude-code/mcp: ``{"mcpServers": {name: {"type", "command", "args",
#: "env"}}}``). Claude Code starts it in the project directory, so it finds this worktree's stack.
MCP_SERVER = {"type": "stdio", "command": "legible", "args": ["mcp"], "env": {}}
#: What Codex needs for the same server (https://developers.openai.com/codex/mcp): the command, or the
#: ``~/.codex/config.toml`` table it writes.
CODEX_MCP_COMMAND = "codex mcp add legible -- legible mcp"
CODEX_MCP_TOML = '[mcp_servers.legible]\ncommand = "legible"\nargs = ["mcp"]'


def install_mcp(start: Path | None = None) -> SkillsMcpDoc:
    """Add the ``legible`` MCP server to the worktree's ``.mcp.json``, keeping every other server.

    Returns:
        ``legible.skills-mcp/v1``: ``{"schema", "path", "server", "codex_command", "codex_toml"}``.

    Raises:
        UsageError: ``.mcp.json`` exists but is not a JSON object.

    """
    import json

    from legible._errors import UsageError

    wt = find_worktree(start)
    path = wt.root / ".mcp.json"
    try:
        config = json.loads(path.read_text()) if path.exists() else {}
    except ValueError as e:
        raise UsageError(f"{path} is not valid JSON: {e}", hint="fix or remove it, then rerun") from None
    if not isinstance(config, dict) or not isinstance(config.setdefault("mcpServers", {}), dict):
        raise UsageError(f"{path}: expected an object with an mcpServers object", hint="fix or remove it")
    config["mcpServers"]["legible"] = MCP_SERVER
    path.write_text(json.dumps(config, indent=2) + "\n")
    return {
        "schema": "legible.skills-mcp/v1",
        "path": str(path),
        "server": MCP_SERVER,
        "codex_command": CODEX_MCP_COMMAND,
        "codex_toml": CODEX_MCP_TOML,
    }
