"""init, doctor and the error contract of the CLI, run as an agent would (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from legible.config import load_config

from .conftest import REPO, cli, cli_json, make_repo


def test_init_guesses_a_flask_app_and_writes_a_valid_commented_config(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "", {"app.py": "from flask import Flask\napp = Flask(__name__)\n# /metrics\n"})
    (root / "legible.toml").unlink()
    code, doc = cli_json(root, "init")
    assert code == 0 and doc["schema"] == "legible.init/v1"
    assert doc["command"] == "flask --app app:app run --host 127.0.0.1 --port $PORT --no-reload"
    assert doc["guessed_from"] == "app.py (Flask)"
    text = (root / "legible.toml").read_text()
    assert text.count("\n#") >= 5  # commented for a newcomer
    assert tomllib.loads(text)["app"]["metrics_path"] == "/metrics"
    assert load_config(root).app.command == doc["command"]
    res = cli(root, "init")
    assert res.returncode == 2 and "already exists" in res.stderr and "--force" in res.stderr


def test_init_reads_package_json_scripts(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "", {"package.json": json.dumps({"scripts": {"dev": "vite"}})})
    (root / "legible.toml").unlink()
    code, doc = cli_json(root, "init")
    assert doc["command"] == "npm run dev -- --port $PORT --strictPort --host 127.0.0.1"


def test_doctor_reports_versions_and_exit_3_with_install_command_when_vm_missing(tmp_path: Path) -> None:
    code, doc = cli_json(REPO, "doctor")
    assert doc["schema"] == "legible.doctor/v1"
    vm = next(c for c in doc["components"] if c["name"] == "victoria-metrics")
    assert code == 0 and vm["path"] and "1." in vm["version"]
    # a PATH without victoria-metrics (and an empty tool cache): exit 3 and the command that installs it
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("git", "sh"):
        os.symlink(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip(), bare / tool)
    res = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", "doctor"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bare), "PYTHONPATH": str(REPO)},
    )
    assert res.returncode == 3
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("victoria-metrics"))
    assert "MISSING" in line and "legible doctor --install" in line


def test_up_without_victoria_metrics_is_exit_3_with_the_install_command(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 100"\n')
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("git", "sleep"):
        os.symlink(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip(), bare / tool)
    res = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", "up", "--wait"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bare), "PYTHONPATH": str(REPO)},
    )
    assert res.returncode == 3
    assert res.stderr.splitlines() == [
        "error: victoria-metrics is not installed",
        "hint: run: legible doctor --install  (or: sudo apt-get install victoria-metrics)",
    ]


def test_outside_a_git_worktree_every_command_says_so_in_one_line(tmp_path: Path) -> None:
    for args in (["up"], ["status"], ["down"]):
        res = cli(tmp_path, *args)
        assert res.returncode == 2
        assert res.stderr.splitlines()[0] == f"error: {tmp_path} is not inside a git worktree"
    code, doc = cli_json(tmp_path, "status")
    assert code == 2 and doc["schema"] == "legible.error/v1" and doc["exit_code"] == 2


def test_status_and_ps_before_any_up(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 100"\n')
    res = cli(root, "status")
    assert res.returncode == 0 and ": down (" in res.stdout and "legible up --wait" in res.stdout
    assert cli(root, "ps").stdout.strip() == "no stacks on this machine"


def test_public_api_all_is_complete_and_importable() -> None:
    import legible

    for name in legible.__all__:
        assert getattr(legible, name) is not None
    lazy = set(legible._LAZY)
    eager = {n for n in vars(legible) if not n.startswith("_") and isinstance(getattr(legible, n), type)}
    assert lazy | eager == set(legible.__all__)


def test_a_bad_flag_on_any_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 100"\n')
    for args, first in (
        (["up", "--bogus"], "error: legible up: no such option: --bogus"),
        (["up", "--timeout", "soon"], "error: legible up: invalid value for '--timeout': 'soon' is not a valid float"),
        (["journey", "run"], "error: legible journey run: missing argument 'name'"),
        (["nosuch"], "error: legible: no such command 'nosuch'"),
    ):
        res = cli(root, *args)
        assert res.returncode == 2, args
        lines = res.stderr.splitlines()
        assert lines[0].startswith(first) and lines[1].startswith("hint: see `legible") and len(lines) == 2, lines
    code, doc = cli_json(root, "check", "--nope")
    assert (
        code == 2
        and doc["schema"] == "legible.error/v1"
        and doc["message"].startswith("legible check: no such option: --nope")  # click may add suggestions
    )
