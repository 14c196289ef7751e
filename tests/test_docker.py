"""The docker backend (issue 13): the container plan is pure data, tested everywhere; a stack runs from images
only where a Docker engine answers (skipped with the reason elsewhere)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import requests

from legible.config import parse_config
from legible.docker_backend import IMAGES, image_of
from legible.lease import Lease
from legible.plan import build_plan
from legible.worktree import Worktree, worktree_key

from .conftest import cli, cli_json, make_repo
from .test_stack import shop_repo


def _engine_reason() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        from legible.docker_backend import engine

        engine()
    except Exception as e:  # noqa: BLE001 - the reason is the skip message
        return str(e)
    return None


ENGINE_DOWN = _engine_reason()


def _plan(tmp_path: Path, data: dict, environ: dict[str, str] | None = None):
    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    return wt, build_plan(wt, parse_config(data), Lease(wt.key, str(root), 20000), environ=environ)


def test_container_plan_keeps_ports_probes_and_loopback(tmp_path: Path) -> None:
    data = {
        "app": {"command": "/bin/true --port $PORT", "image": "shop:dev", "env": {"API_TOKEN": "s3cret"}},
        "stack": {"backend": "docker"},
        "forward": {"remote_write": "http://vm.example:8428/api/v1/write"},
    }
    wt, plan = _plan(tmp_path, data)
    _, native = _plan(tmp_path / "n", {"app": {"command": "/bin/true --port $PORT"}})
    by = {s.name: s for s in plan.services}
    vm = by["victoria-metrics"]
    assert vm.argv[:4] == ["docker", "run", "--rm", "--init"]
    assert image_of(vm.argv) == IMAGES["victoria-metrics"]
    assert f"-httpListenAddr=127.0.0.1:{plan.ports['victoria-metrics']}" in vm.argv  # binds loopback itself
    assert vm.argv[vm.argv.index("--network") + 1] == "host"
    assert not {"-p", "--publish", "-P"} & set(vm.argv)  # nothing published beyond loopback
    assert f"legible.stack={wt.key}" in vm.argv and f"{os.getuid()}:{os.getgid()}" in vm.argv
    assert vm.probe == next(s for s in native.services if s.name == "victoria-metrics").probe
    assert image_of(by["vmagent"].argv) == IMAGES["vmagent"]
    app = by["app"]
    assert image_of(app.argv) == "shop:dev"
    assert app.argv[-3:] == ["/bin/true", "--port", str(plan.ports["app"])]
    assert app.argv[app.argv.index("--workdir") + 1] == str(wt.root)
    # environment by name only: no value (a token) on a command line
    envs = [app.argv[i + 1] for i, a in enumerate(app.argv) if a == "--env"]
    assert "API_TOKEN" in envs and all("=" not in e for e in envs)
    assert "s3cret" not in " ".join(app.argv)
    assert by["collector"].argv[0] == sys.executable  # legible itself stays native
    assert plan.ports == native.ports or set(plan.ports) == set(native.ports)
    json.dumps(plan.to_dict())  # still the plan.json the supervisor reads


def test_default_image_runs_the_apps_command(tmp_path: Path) -> None:
    _, plan = _plan(tmp_path, {"app": {"command": "/bin/true"}, "stack": {"backend": "docker"}})
    app = next(s for s in plan.services if s.name == "app")
    assert image_of(app.argv) == "python:3.11-slim" and app.argv[-1] == "/bin/true"


@pytest.mark.skipif(ENGINE_DOWN is None, reason="a Docker engine answers here")
def test_up_says_plainly_that_no_engine_answers(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", '[app]\ncommand = "/bin/true"\n[stack]\nbackend = "docker"\n')
    res = cli(root, "up", "--wait")
    assert res.returncode == 3, res.stderr
    assert "no Docker engine answers" in res.stderr and "hint:" in res.stderr


@pytest.mark.skipif(ENGINE_DOWN is not None, reason=f"no Docker engine answers here: {ENGINE_DOWN}")
def test_shop_runs_from_images_where_an_engine_answers(tmp_path: Path, down_after: list[Path]) -> None:
    toml = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\n[stack]\nbackend = "docker"\n'
    root = shop_repo(tmp_path / "shop", toml)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", timeout=600)
    assert code == 0, doc
    assert requests.get(doc["endpoints"]["victoria-metrics"] + "/health", timeout=5).status_code == 200
    assert cli(root, "down").returncode == 0
