"""`legible doctor --install --user` on a machine without VictoriaMetrics on PATH: Debian's package is
downloaded (apt-get download, from the real Debian mirror) and unpacked into the tool cache without root,
and `legible up` then runs it from there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, make_repo


def path_without_victoria_metrics(tmp_path: Path) -> str:
    farm = tmp_path / "bin"
    farm.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            if entry.name.startswith(("victoria-metrics", "vm")) or (farm / entry.name).exists():
                continue
            (farm / entry.name).symlink_to(entry.path)
    return str(farm)


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt (the tool cache holds a .deb)")
def test_install_into_the_tool_cache_and_run_from_it(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without_victoria_metrics(tmp_path), "PYTHONPATH": str(REPO)}

    def legible(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "legible.cli.main", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    before = legible("doctor")
    assert before.returncode == 3 and "victoria-metrics          MISSING" in before.stdout
    installed = legible("doctor", "--install", "--user")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "legible" / "tools" / "victoria-metrics"
    assert installed.stdout.splitlines()[0] == f"install: unpacked victoria-metrics into {cache}"
    assert (cache / "usr" / "bin" / "victoria-metrics").is_file()
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 300"\nready = { log = "" }\n')
    try:
        up = legible("up", "--wait", cwd=root)
        assert up.returncode == 0, up.stdout + up.stderr
        plan = (root / ".legible" / "plan.json").read_text()
        assert str(cache / "usr" / "bin" / "victoria-metrics") in plan
    finally:
        legible("down", cwd=root)
