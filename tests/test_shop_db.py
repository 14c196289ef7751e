"""The shop on Postgres and Redis (``examples/shop-db``), with real servers, the real browser and the CLI.

Checks the issue's journey: one ``legible trace`` holds the browser's journey span, the HTTP request and
the SQL ``INSERT`` span with its statement, nested in that order; the setup steps ran (migration, seed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from legible.services.databases import find_pg_bindir

from .conftest import REPO, cli_json, git, wait_until

pytestmark = pytest.mark.skipif(
    find_pg_bindir() is None or shutil.which("redis-server") is None,
    reason="needs Debian's postgresql and redis-server (scripts/setup.sh installs them)",
)


def _copy_examples(tmp: Path) -> Path:
    for name in ("shop", "shop-db"):
        shutil.copytree(REPO / "examples" / name, tmp / "examples" / name, ignore=shutil.ignore_patterns(".legible"))
    root = tmp / "examples" / "shop-db"  # the worktree; it imports the shop from ../shop
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "-m", "init")
    return root


def _path_to(node: dict, pred: object) -> list[dict] | None:
    if pred(node):  # type: ignore[operator]
        return [node]
    for child in node["children"]:
        found = _path_to(child, pred)
        if found:
            return [node, *found]
    return None


def test_a_checkout_trace_goes_from_the_click_to_the_sql_insert(tmp_path: Path, down_after: list[Path]) -> None:
    root = _copy_examples(tmp_path)
    down_after.append(root)
    code, up = cli_json(root, "up", "--wait", "--timeout", "120", timeout=180)
    assert code == 0, up
    setup_log = (root / ".legible/logs/app-setup.log").read_text()
    assert "applied m001_products_orders" in setup_log and "seed: 6 products added" in setup_log

    code, run = cli_json(root, "journey", "run", "checkout", timeout=120)
    assert code == 0 and run["ok"], run

    def insert_path() -> list[dict] | None:
        code, trace = cli_json(root, "trace", run["trace_id"])
        assert code == 0, trace
        for r in trace["roots"]:
            found = _path_to(r, lambda n: str(n["attributes"].get("db.statement", "")).startswith("INSERT INTO orders"))
            if found:
                return found
        return None

    path = wait_until(insert_path, timeout=20, what="the INSERT span in the journey's trace")
    names = [(n["service"], n["name"]) for n in path]
    assert names[0] == ("browser", "journey checkout"), names
    assert ("app", "POST /order") in names, names
    insert = path[-1]
    assert insert["service"] == "app" and insert["attributes"]["db.system"] == "postgresql"
    assert "VALUES (%s, %s, %s, %s, %s, %s)" in insert["attributes"]["db.statement"]  # placeholders, no values
