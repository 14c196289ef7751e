"""The stack plan is pure data: commands, ports, environment and probes computed before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from legible._errors import ConfigError, PrerequisiteMissing
from legible.config import parse_config
from legible.lease import Lease
from legible.plan import build_plan
from legible.worktree import Worktree, worktree_key

from .conftest import make_repo


def _plan(tmp_path: Path, data: dict):
    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    return build_plan(wt, parse_config(data), Lease(wt.key, str(root), 20000))


def test_worktree_key_is_basename_and_8_hex(tmp_path: Path) -> None:
    key = worktree_key(tmp_path)
    name, digest = key.rsplit("-", 1)
    assert name == tmp_path.name and len(digest) == 8 and int(digest, 16) >= 0
    assert worktree_key(tmp_path / ".") == key


def test_plan_substitutes_ports_and_sets_opentelemetry_env(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        {
            "app": {
                "command": "python -m http.server $PORT --bind ${HOST}",
                "metrics_path": "/metrics",
                "env": {"DB_URL": "postgres://127.0.0.1:$DB_PORT/x"},
            },
            "services": {"db": {"command": "sleep 100", "port": True}},
        },
    )
    names = [s.name for s in plan.services]
    assert names == ["victoria-metrics", "collector", "app", "db"]
    app = next(s for s in plan.services if s.name == "app")
    assert app.argv == ["python", "-m", "http.server", "20000", "--bind", "127.0.0.1"]
    assert app.env["PORT"] == "20000"
    assert app.env["DB_URL"] == f"postgres://127.0.0.1:{plan.ports['db']}/x"
    assert plan.ports["db"] == 20008
    assert app.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:20002"
    assert app.env["OTEL_SERVICE_NAME"] == "app"
    assert app.env["OTEL_RESOURCE_ATTRIBUTES"] == f"legible.worktree={plan.key}"
    assert app.env["LEGIBLE_STACK"] == plan.key
    assert app.probe.kind == "tcp" and app.probe.target == "20000"
    db = next(s for s in plan.services if s.name == "db")
    assert db.depends_on == ["victoria-metrics"]
    scrape = next(text for path, text in plan.files.items() if path.endswith("prometheus.yml"))
    assert "127.0.0.1:20000" in scrape and '"/metrics"' in scrape and plan.key in scrape


def test_every_listener_in_the_plan_is_loopback(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"app": {"command": "true"}})
    text = repr(plan.to_dict())
    assert "0.0.0.0" not in text
    vm = plan.services[0]
    assert f"-httpListenAddr=127.0.0.1:{plan.ports['victoria-metrics']}" in vm.argv


def test_http_probe_path_and_instrument_prefix(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"app": {"command": "python app.py", "ready": {"http": "/healthz"}, "instrument": True}})
    app = plan.services[-1]
    assert app.probe.target == "http://127.0.0.1:20000/healthz"
    assert app.argv[:2] == ["opentelemetry-instrument", "python"]


def test_missing_binary_is_a_prerequisite_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteMissing, match="app: command not found: no-such-server"):
        _plan(tmp_path, {"app": {"command": "no-such-server --port $PORT"}})


def test_bad_cwd_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"app.cwd: .* is not a directory"):
        _plan(tmp_path, {"app": {"command": "true", "cwd": "nowhere"}})


def test_plan_round_trips_through_json(tmp_path: Path) -> None:
    from legible.plan import StackPlan

    plan = _plan(tmp_path, {"app": {"command": "true", "ready": {"log": "listening"}}})
    again = StackPlan.from_dict(plan.to_dict())
    assert again == plan
