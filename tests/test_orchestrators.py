"""The orchestrator hooks of docs/orchestrators.md: one summary line each on stdout, the JSON in --out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import REPO, cli, stack_pids
from .test_stack import SHOP_TOML, shop_repo

DOC = (REPO / "docs" / "orchestrators.md").read_text()


def hook(name: str) -> list[str]:
    line = re.search(rf"^  {name}: (.+)$", DOC, re.M)
    assert line, f"docs/orchestrators.md has no {name} hook"
    return line.group(1).split()[1:]  # without the leading "legible"


def test_hooks_print_one_line_each_and_leave_the_json(tmp_path: Path) -> None:
    toml = SHOP_TOML + '\n[checks.fast-start]\nstartup = { max = "30s" }\n'
    root = shop_repo(tmp_path / "shop", toml)
    outputs = {}
    for name in ("after_create", "before_run", "after_run", "before_remove"):
        args = hook(name)
        res = cli(root, *args, timeout=120)
        assert res.returncode == 0, (name, res.stdout, res.stderr)
        lines = res.stdout.splitlines()
        assert len(lines) == 1, (name, lines)
        outputs[name] = lines[0]
        if "--out" in args:
            doc = json.loads((root / args[args.index("--out") + 1]).read_text())
            assert doc["schema"] in ("legible.init/v1", "legible.up/v1", "legible.proof/v1"), doc["schema"]
    assert outputs["after_create"].startswith("kept ")
    assert re.match(r"stack shop-[0-9a-f]{8} ready in .+: app http://127\.0\.0\.1:\d+; json: ", outputs["before_run"])
    assert outputs["after_run"].startswith("proof PASS: 1/1 checks in ")
    assert outputs["before_remove"].endswith("; .legible/ purged")
    key = re.search(r"stack (shop-[0-9a-f]{8})", outputs["before_run"]).group(1)
    assert stack_pids(key) == [] and not (root / ".legible").exists()


def test_a_failing_up_leaves_the_error_json_for_the_orchestrator(tmp_path: Path) -> None:
    root = shop_repo(tmp_path / "shop", '[app]\ncommand = "python -c \\"raise SystemExit(3)\\""\n')
    res = cli(root, "up", "--wait", "--timeout", "50", "--out", ".legible/hooks/up.json")
    assert res.returncode == 4
    doc = json.loads((root / ".legible" / "hooks" / "up.json").read_text())
    assert doc["schema"] == "legible.error/v1" and doc["exit_code"] == 4
    assert doc["message"] == "app exited with code 3 while the stack was starting"
