"""``legible skills list | install``: the Agent Skills that teach agents these commands."""

from __future__ import annotations

import typer

from ._output import emit_json, print_lines

skills_app = typer.Typer(help="Agent Skills that teach coding agents the legible commands.")


@skills_app.command("list")
def list_skills(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """List the bundled skills with their descriptions."""
    from legible.agents import bundled, read_skill
    from legible.render import render_skills

    skills = [{k: s[k] for k in ("name", "description")} for s in map(read_skill, bundled())]
    doc = {"schema": "legible.skills-list/v1", "skills": skills}
    emit_json(doc) if as_json else print_lines(render_skills(doc))


@skills_app.command("install")
def install(
    mcp: bool = typer.Option(False, "--mcp", help="Also add the legible MCP server to .mcp.json (Claude Code)."),
    hooks: bool = typer.Option(False, "--hooks", help="Also add a Stop hook running the checks (Claude Code, Codex)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Copy the skills into .claude/skills, .codex/skills and .agents/skills, and point AGENTS.md at them."""
    from legible.agents import TARGETS
    from legible.agents import install as do_install

    res = do_install()
    if mcp:
        from legible.agents import install_mcp

        res["mcp"] = install_mcp()
    if hooks:
        from legible.hooks import install_hooks

        res["hooks"] = install_hooks()
    if as_json:
        emit_json(res)
        return
    print(
        f"installed {len(res['skills'])} skills ({', '.join(res['skills'])}) into {', '.join(TARGETS)}; "
        f"pointer in {res['agents_md']}"
    )
    if mcp:
        m = res["mcp"]
        print(f"mcp: server `legible` in {m['path']} (Claude Code); for Codex run: {m['codex_command']}")
        print("  or add to ~/.codex/config.toml:")
        print("\n".join("    " + line for line in m["codex_toml"].splitlines()))
    if hooks:
        h = res["hooks"]
        print(f"hooks: Stop hook `{h['command']}` in {', '.join(h['paths'])} (Claude Code, Codex)")


def register(app: typer.Typer) -> None:
    """Add ``skills`` to ``app``."""
    app.add_typer(skills_app, name="skills")
