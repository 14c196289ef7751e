"""Shared fixtures: every test gets its own XDG state and cache directories (never the developer's),
and helpers to make throwaway git worktrees with a legible.toml and to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_APP = REPO / "examples" / "shop" / "app.py"

T = TypeVar("T")


def wait_until(fn: Callable[[], T], timeout: float = 10.0, what: str = "", every: float = 0.05) -> T:
    """Call ``fn`` until it returns a truthy value and return that value: poll with a deadline, never a sleep.

    An ``AssertionError`` raised by ``fn`` counts as "not yet". Past ``timeout`` seconds the test fails with
    a message naming ``what`` never became true, the last value and the last assertion.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    err: AssertionError | None = None
    while True:
        try:
            last, err = fn(), None
            if last:
                return last
        except AssertionError as exc:
            err = exc
        if time.monotonic() >= deadline:
            why = what or getattr(fn, "__name__", repr(fn))
            raise AssertionError(f"never became true in {timeout:g} s: {why} (last value: {last!r}; {err or ''})")
        time.sleep(every)


@pytest.fixture(autouse=True)
def isolated_xdg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the lease registry and tool cache at a temp dir for this test (and its subprocesses)."""
    base = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    return base


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def make_repo(path: Path, toml: str, files: dict[str, str] | None = None) -> Path:
    """Create a git repository at ``path`` with ``legible.toml`` and ``files``, committed."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.invalid")
    git(path, "config", "user.name", "t")
    (path / "legible.toml").write_text(textwrap.dedent(toml))
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "init")
    return path


def cli(cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run the real ``legible`` CLI in ``cwd`` (a subprocess, like an agent would)."""
    return subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def cli_json(cwd: Path, *args: str, timeout: float = 90) -> tuple[int, dict]:
    res = cli(cwd, *args, "--json", timeout=timeout)
    return res.returncode, json.loads(res.stdout)


def stack_pids(key: str) -> list[int]:
    """PIDs of live processes that carry this stack's marker (LEGIBLE_STACK=key)."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("LEGIBLE_STACK") == key and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def listening_ports(ports: range | list[int]) -> list[int]:
    """Which of ``ports`` have a TCP listener on any address right now."""
    wanted = set(ports)
    return sorted(
        {c.laddr.port for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port in wanted}
    )


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``, as gRPC binds)."""
    import ipaddress

    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or bool(mapped and mapped.is_loopback)


@pytest.fixture
def down_after():
    """Collect worktrees; `legible down` each at teardown so a failing test leaves nothing running."""
    roots: list[Path] = []
    yield roots
    for root in roots:
        cli(root, "down")
