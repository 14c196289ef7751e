"""The browser's least privilege and lifetime, on the example shop with a real Chromium.

No CDP port unless ``[stack] cdp_port = true`` (then loopback only, and ``up`` warns); nothing of the
browser outlives ``down`` or a ``kill -9`` of the agent; no temp files outside ``.legible/`` after up/down
cycles.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from .conftest import cli, cli_json, stack_pids
from .test_stack import shop_repo, wait_until

pytestmark = pytest.mark.slow

TOML = """
[app]
command = "python app.py"
ready = { http = "/healthz" }

[stack]
browser = true
"""


def _browser_procs(key: str) -> list[psutil.Process]:
    """Chromium processes (and the Playwright driver) of the stack ``key``."""
    out = []
    for p in psutil.process_iter(["pid", "name"]):
        try:
            if p.environ().get("LEGIBLE_STACK") != key or p.status() == psutil.STATUS_ZOMBIE:
                continue
            if "chrom" in (p.info["name"] or "") or "node" in (p.info["name"] or ""):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _listening(procs: list[psutil.Process]) -> list[tuple[str, int]]:
    found = []
    for p in procs:
        try:
            found += [(c.laddr.ip, c.laddr.port) for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_cdp_port_only_when_asked_on_loopback_and_up_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    root = shop_repo(tmp_path / "shop", TOML + "cdp_port = true\n")
    try:
        res = cli(root, "up", "--wait", timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "warning: Chromium's CDP port listens on 127.0.0.1:" in res.stdout, res.stdout
        code, doc = cli_json(root, "up")
        assert code == 0 and doc["already_running"]
        port = doc["services"]["chromium"]["port"]
        assert port and doc["warnings"] and str(port) in doc["warnings"][0]
        listening = wait_until(lambda: _listening(_browser_procs(doc["key"])), timeout=10)
        assert (("127.0.0.1", port)) in listening and {ip for ip, _ in listening} == {"127.0.0.1"}, listening
    finally:
        cli(root, "down")


def test_kill_9_of_the_agent_leaves_no_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    root = shop_repo(tmp_path / "shop", TOML)
    try:
        code, doc = cli_json(root, "up", "--wait", timeout=120)
        assert code == 0, doc
        key = doc["key"]
        assert cli(root, "browser", "status").returncode == 0  # the browser starts at its first call
        before = _browser_procs(key)
        assert any("chrom" in p.name() for p in before)
        assert _listening(before) == []  # the default: CDP over the pipe, no port
        agent = psutil.Process(doc["services"]["chromium"]["pid"])
        assert "legible.browser.agent" in " ".join(agent.cmdline())
        os.kill(agent.pid, signal.SIGKILL)
        gone = wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in before), timeout=15)
        assert gone, [p.pid for p in before if p.is_running()]
    finally:
        res = cli(root, "down")
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: stack_pids(key) == [], timeout=10)
    assert not (root / ".legible" / "tmp").exists()


def _tmp_entries(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def test_ten_browser_up_down_cycles_leave_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stack process inherits TMPDIR=<own dir>; after 10 cycles that dir and /tmp hold nothing of ours."""
    own_tmp = tmp_path / "systmp"
    own_tmp.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TMPDIR", str(own_tmp))  # what the stack would use as "the temp dir" if it did not set one
    root = shop_repo(tmp_path / "shop", TOML)
    before = _tmp_entries(Path("/tmp"))
    for i in range(10):
        code, doc = cli_json(root, "up", "--wait", "--browser", timeout=120)
        assert code == 0, (i, doc)
        assert doc["services"]["chromium"]["status"] == "idle"  # lazy: Chromium starts at the first call
        assert cli(root, "browser", "open", "/").returncode == 0
        assert cli(root, "down").returncode == 0
    assert sorted(own_tmp.iterdir()) == []
    assert not (root / ".legible" / "tmp").exists()
    ours = ("org.chromium.", ".org.chromium.", "playwright", "legible-")
    new = sorted(n for n in _tmp_entries(Path("/tmp")) - before if n.startswith(ours))
    assert new == [], new
