"""`legible mcp`: the MCP SDK's own client, over stdio, against a real stack of the example shop.

Every tool must answer with exactly the text the CLI prints for the same question (one renderer), and a
failure must be an MCP tool error carrying the CLI's `error:` and `hint:` lines.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, cli, cli_json
from .test_stack import shop_repo, wait_until

pytest.importorskip("mcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402


def fold(text: str) -> str:
    """Hide what changes between two runs of the same question: ages and durations (and column widths)."""
    return re.sub(r" +", " ", re.sub(r"\d+(\.\d+)?", "N", text))


def call_all(root: Path, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[Any]]:
    """Start `legible mcp` in ``root`` with the SDK's stdio client; list the tools, then make ``calls``."""

    async def go() -> tuple[list[str], list[Any]]:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "legible.cli.main", "mcp"],
            cwd=str(root),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = [t.name for t in (await session.list_tools()).tools]
            results = [await session.call_tool(name, args) for name, args in calls]
            return names, results

    return asyncio.run(asyncio.wait_for(go(), 240))


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def cli_text(root: Path, *args: str) -> tuple[int, str]:
    res = cli(root, *args)
    return res.returncode, (res.stdout + res.stderr).rstrip("\n")


def test_missing_stack_is_a_tool_error_with_the_cli_hint(tmp_path: Path) -> None:
    root = shop_repo(tmp_path / "shop")
    _, results = call_all(root, [("logs", {"level": "error"}), ("browser_snapshot", {})])
    for result, argv in zip(results, (["logs", "--level", "error"], ["browser", "snapshot"]), strict=True):
        code, expected = cli_text(root, *argv)
        assert code != 0
        assert result.is_error
        assert text_of(result) == expected
        assert "error: " in expected and "hint: " in expected


@pytest.mark.slow
def test_every_tool_answers_like_the_cli_on_a_real_stack(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", (REPO / "examples" / "shop" / "legible.toml").read_text())
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--browser", "--timeout", "90", timeout=120)
    assert code == 0, doc
    app_url = doc["endpoints"]["app"]
    # the browser starts at its first call (lazy): start it now, so `status` reads the same before and after
    assert cli(root, "browser", "status").returncode == 0
    for path in ("/", "/error", "/slow?ms=30"):
        try:
            urllib.request.urlopen(app_url + path, timeout=10).read()  # noqa: S310 - loopback
        except OSError:
            pass  # /error answers 500
    trace_id = wait_until(
        lambda: (cli_json(root, "traces", "--errors")[1].get("traces") or [{}])[0].get("trace_id"), timeout=30
    )
    # `metrics sum(up)` is compared below: it has an answer once VictoriaMetrics scraped a first target (the
    # supervisor, the collector, or the app once ready), seconds after `up`; until then the tool and the CLI,
    # asked at different moments, could honestly differ
    wait_until(lambda: cli_json(root, "metrics", "sum(up)")[1].get("series"), timeout=30, what="a first scrape")

    # Questions whose answer does not change by asking: the tool's text equals the CLI's (numbers folded,
    # since "3s ago" ages between the two).
    same: list[tuple[str, dict[str, Any], list[str]]] = [
        ("status", {}, ["status"]),
        ("logs", {"level": "error"}, ["logs", "--level", "error"]),
        (
            "logs",
            {"raw": True, "grep": "GET /error", "limit": 3},
            ["logs", "--raw", "--grep", "GET /error", "--limit", "3"],
        ),
        ("traces", {"errors": True}, ["traces", "--errors"]),
        ("trace", {"trace_id": trace_id[:12]}, ["trace", trace_id[:12]]),
        ("metrics", {"query": "sum(up)"}, ["metrics", "sum(up)"]),
        ("check", {"names": ["fast-start"]}, ["check", "fast-start"]),
        ("browser_open", {"url": "/order"}, ["browser", "open", "/order"]),
        ("browser_snapshot", {}, ["browser", "snapshot"]),
    ]
    # Questions that act on the page: each must succeed and look like the CLI's answer to them.
    acts: list[tuple[str, dict[str, Any], str]] = [
        ("browser_fill", {"target": "#name", "text": "Ada"}, r"^filled "),
        ("browser_click", {"target": "#quantity"}, r"^clicked "),
        ("browser_press", {"key": "Tab"}, r"^pressed"),
        ("browser_console", {}, r"errors, \d+ warnings"),
        ("browser_screenshot", {}, r"^screenshot \d+x\d+ jpeg"),
        ("browser_diff", {}, r"^snapshot vs previous \(\S+\): \d+ changed, \d+ added, \d+ removed lines$"),
        ("journey_run", {"name": "report"}, r"report"),
        ("proof", {"record": False}, r"^proof (PASS|FAIL)"),
    ]
    calls = [(name, args) for name, args, _ in same] + [(name, args) for name, args, _ in acts]
    names, results = call_all(root, calls)
    expected_tools = {name for name, _ in calls}
    assert expected_tools <= set(names), expected_tools - set(names)

    for (name, _args, argv), result in zip(same, results[: len(same)], strict=True):
        code, expected = cli_text(root, *argv)
        assert result.is_error == (code != 0), (name, text_of(result))
        assert fold(text_of(result)) == fold(expected), name

    for (name, _args, pattern), result in zip(acts, results[len(same) :], strict=True):
        text = text_of(result)
        if name == "proof":  # a check of the shop may fail on a busy machine: then it is a tool error
            assert re.search(pattern, text), text
            continue
        assert not result.is_error, (name, text)
        assert re.search(pattern, text, re.M), (name, text)
        if name == "browser_screenshot":
            shot = Path(re.search(r"(/\S+\.jpe?g)", text).group(1))  # type: ignore[union-attr]
            images = [c for c in result.content if c.type == "image"]
            assert len(images) == 1 and images[0].mime_type == "image/jpeg"
            assert base64.b64decode(images[0].data) == shot.read_bytes()  # no larger than the CLI's file


def test_skills_install_mcp_writes_claude_config_and_prints_codex(tmp_path: Path) -> None:
    root = shop_repo(tmp_path / "shop")
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}}))
    res = cli(root, "skills", "install", "--mcp")
    assert res.returncode == 0, res.stderr
    config = json.loads((root / ".mcp.json").read_text())
    assert config["mcpServers"]["other"] == {"command": "x"}  # merged, not clobbered
    assert config["mcpServers"]["legible"] == {"type": "stdio", "command": "legible", "args": ["mcp"], "env": {}}
    assert "codex mcp add legible -- legible mcp" in res.stdout
    assert "[mcp_servers.legible]" in res.stdout
