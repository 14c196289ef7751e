"""Six worktrees of the example shop with the browser on, started at once on one machine (issue 12).

Real stacks (supervisor, VictoriaMetrics, collector, app, browser agent, and Chromium once a browser call
asks for it) through the real CLI. The 20-stack figures (time to all-ready, PSS per stack) are in
``benchmarks/bench_fleet.py``; this test holds the behaviour: all ready, disjoint ports, the browser lazy
until asked and then answering in every stack, and nothing left after ``down``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, cli, cli_json, listening_ports, stack_pids
from .test_stack import shop_repo, wait_until

pytestmark = pytest.mark.slow

STACKS = 6
TOML = (
    '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\nmetrics_path = "/metrics"\n\n'
    "[stack]\nbrowser = true\n"
)


def _chromium_pids(key: str) -> list[int]:
    import psutil

    out = []
    for pid in stack_pids(key):
        try:
            if "chrom" in psutil.Process(pid).name():
                out.append(pid)
        except psutil.Error:
            continue
    return out


def test_six_stacks_with_the_browser_up_at_once(tmp_path: Path) -> None:
    roots = [shop_repo(tmp_path / f"wt{i}", TOML) for i in range(STACKS)]
    docs: list[dict] = []
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "legible.cli.main", "up", "--wait", "--timeout", "240", "--json"],
                cwd=r,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            for r in roots
        ]
        for p in procs:
            out, err = p.communicate(timeout=300)
            docs.append(json.loads(out) if out.strip() else {"status": "no output", "stderr": err})
        assert [d["status"] for d in docs] == ["ready"] * STACKS, [(d["status"], d.get("stderr", "")) for d in docs]
        keys = [d["key"] for d in docs]
        assert len(set(keys)) == STACKS
        per_stack = [{s["port"] for s in d["services"].values() if s["port"]} for d in docs]
        assert all(not (a & b) for i, a in enumerate(per_stack) for b in per_stack[i + 1 :]), per_stack
        # lazy browser: no Chromium anywhere until a browser call; status says idle
        assert all(_chromium_pids(k) == [] for k in keys)
        assert cli_json(roots[0], "status")[1]["services"]["chromium"]["status"] == "idle"
        for r, d in zip(roots, docs, strict=True):
            res = cli(r, "browser", "open", "/", timeout=180)
            assert res.returncode == 0, res.stdout + res.stderr
            assert res.stdout.startswith(f"opened {d['endpoints']['app'].rstrip('/')}/"), res.stdout
        assert all(_chromium_pids(k) for k in keys)
        assert cli_json(roots[0], "status")[1]["services"]["chromium"]["status"] == "ready"
    finally:
        for r in roots:
            cli(r, "down", timeout=120)
    for d in docs:
        if "key" in d:
            assert wait_until(lambda k=d["key"]: stack_pids(k) == [], timeout=15)
    used = sorted({p for d in docs for s in d.get("services", {}).values() if (p := s.get("port"))})
    assert listening_ports(used) == []
    assert all(not (r / ".legible" / "tmp").exists() for r in roots)
