"""The stack plan is pure data: commands, ports, environment and probes computed before anything runs."""

from __future__ import annotations

import json
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
    assert plan.ports["db"] == 20009  # slots 0..8 are the built-in services (8: vmagent)
    assert app.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:20002"
    assert app.env["OTEL_SERVICE_NAME"] == "app"
    assert app.env["OTEL_RESOURCE_ATTRIBUTES"] == f"legible.worktree={plan.key}"
    assert app.env["LEGIBLE_STACK"] == plan.key
    assert app.probe.kind == "tcp" and app.probe.target == "20000"
    db = next(s for s in plan.services if s.name == "db")
    assert db.depends_on == []  # started beside VictoriaMetrics and the collector, not after them
    scrape = next(text for path, text in plan.files.items() if path.endswith("prometheus.yml"))
    assert '"/metrics"' in scrape and plan.key in scrape and "127.0.0.1:20000" not in scrape
    # the app's target waits in its pending file until the app is ready (the supervisor then publishes it)
    read = next(path for path in plan.files if path.endswith("scrape-app.json"))
    pending = next(text for path, text in plan.files.items() if path.endswith("scrape-app.pending.json"))
    assert json.dumps(read) in scrape and plan.files[read] == "[]\n"
    assert json.loads(pending) == [{"targets": ["127.0.0.1:20000"], "labels": {"service": "app", "worktree": plan.key}}]


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


def test_services_never_import_legible_plan() -> None:
    """Issue 9: the seam (legible/services/) does not depend on the plan that uses it."""
    import ast

    from .conftest import REPO

    for f in (REPO / "legible" / "services").glob("*.py"):
        tree = ast.parse(f.read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "legible.plan" not in mods, f


def _app(plan):
    return next(s for s in plan.services if s.name == "app")


def test_otlp_endpoint_follows_the_protocol_from_the_callers_env_or_legible_toml(tmp_path: Path) -> None:
    from legible.services.context import otlp_env

    assert otlp_env({}, 2, 3) == {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:2",
    }
    grpc = otlp_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json"}, 2, 3)
    assert grpc["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:3"
    assert grpc["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == "http://127.0.0.1:2/v1/logs"  # per-signal URLs are used as-is
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in grpc
    mixed = otlp_env({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, 2, 3)
    assert mixed["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://127.0.0.1:3"
    assert mixed["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:2"
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL='grpc/json' is not an OTLP protocol"):
        otlp_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc/json"}, 2, 3)

    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    lease = Lease(wt.key, str(root), 20000)
    from_caller = build_plan(
        wt, parse_config({"app": {"command": "true"}}), lease, environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    assert _app(from_caller).env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:20003"
    cfg = parse_config({"app": {"command": "true", "env": {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}}})
    from_toml = build_plan(wt, cfg, lease, environ={})
    assert _app(from_toml).env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:20003"


def test_plan_holds_no_inherited_value_and_the_supervisor_rebuilds_the_env(tmp_path: Path) -> None:
    import json

    from legible.services.context import service_argv, service_environ

    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    caller = {
        "PATH": "/usr/bin:/bin",
        "SECRET_API_KEY": "s3cr3t-value",
        "NO_PROXY": "corp.example",
        "OTEL_FOO": "x",
        "PORT": "1",
    }
    cfg = parse_config({"app": {"command": "echo $SECRET_API_KEY $PORT", "env": {"AUTH": "Bearer ${SECRET_API_KEY}"}}})
    plan = build_plan(wt, cfg, Lease(wt.key, str(root), 20000), environ=caller)
    text = json.dumps(plan.to_dict())
    assert "s3cr3t-value" not in text and "corp.example" not in text and "/usr/bin:/bin" not in text
    app = _app(plan)
    assert sorted(app.deferred) == ["AUTH", "argv"]
    env = service_environ(app, caller)
    assert env["SECRET_API_KEY"] == "s3cr3t-value" and env["AUTH"] == "Bearer s3cr3t-value"
    assert env["PORT"] == "20000" and "OTEL_FOO" not in env
    assert env["NO_PROXY"] == "corp.example,127.0.0.1,localhost,::1" and env["no_proxy"] == "127.0.0.1,localhost,::1"
    assert service_argv(app, env) == ["echo", "s3cr3t-value", "20000"]


def test_env_file_and_scrape_config_quote_a_hostile_worktree_name(tmp_path: Path) -> None:
    import subprocess

    from legible.services.victoria_metrics import find_binary

    root = make_repo(tmp_path / 'we ird, "ü" $(touch PWNED) `touch PWNED2`', "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    plan = build_plan(
        wt, parse_config({"app": {"command": "true", "metrics_path": "/metrics"}}), Lease(wt.key, str(root), 20000)
    )
    app = _app(plan)
    assert app.env["OTEL_RESOURCE_ATTRIBUTES"].startswith("legible.worktree=we%20ird%2C%20%22%C3%BC%22%20%24%28touch")
    plan.write(wt.state_dir)
    out = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; set +a; printf "%s" "$LEGIBLE_WORKTREE"', "sh", str(wt.env_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == wt.key and out.stderr == ""
    assert not list(tmp_path.glob("PWNED*")) and not list(root.glob("PWNED*"))
    modes = {p.name: p.stat().st_mode & 0o777 for p in wt.state_dir.rglob("*")}
    assert wt.state_dir.stat().st_mode & 0o777 == 0o700
    assert all(
        m == (0o700 if (wt.state_dir / n).is_dir() or n in ("logs", "data", "config") else 0o600)
        for n, m in modes.items()
    ), modes
    vm = find_binary()
    if vm is not None:  # VictoriaMetrics itself parses the scrape config
        cfg = next(p for p in plan.files if p.endswith("prometheus.yml"))
        res = subprocess.run(
            [str(vm), f"-promscrape.config={cfg}", "-promscrape.config.dryRun"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert res.returncode == 0, res.stderr[-500:]


def test_missing_telemetry_line_names_the_cause() -> None:
    from legible.queries.source import explain_missing

    status = {
        "schema": "legible.collector-status/v1",
        "healthy": True,
        "received": {"traces": 0},
        "refused": {"grpc_on_http_port": 3},
    }
    line = explain_missing("traces", "app", 40.2, status)
    assert line.startswith("no spans from app since it became ready 40 s ago; the collector refused 3 gRPC connections")
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in line and "\n" not in line and len(line) < 320
    assert "unknown" in explain_missing("logs", "app", 5, None)
    sick = explain_missing("traces", "app", 5, {**status, "refused": {}, "healthy": False, "error": "disk full"})
    assert sick.endswith("the collector is unhealthy: disk full")
    none = explain_missing("traces", "app", 5, {**status, "refused": {}})
    assert "received no OTLP traces at all" in none


def test_the_plan_runs_git_for_forwarding_labels_only_when_spans_are_forwarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os
    import shutil
    import stat

    real_git = shutil.which("git")
    assert real_git is not None
    calls = tmp_path / "git-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"  # a stand-in that records its arguments, then runs the real git
    git.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real_git} "$@"\n')
    git.chmod(git.stat().st_mode | stat.S_IXUSR)
    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("LEGIBLE_FORWARD_OTLP", raising=False)
    plan = build_plan(wt, parse_config({"app": {"command": "true"}}), Lease(wt.key, str(root), 20000))
    assert not any(a.startswith("--forward-config") for s in plan.services for a in s.argv)
    assert not calls.exists()  # nothing forwarded: no label to compute, no git run before the stack starts
    monkeypatch.setenv("LEGIBLE_FORWARD_OTLP", "http://127.0.0.1:9/")
    plan = build_plan(wt, parse_config({"app": {"command": "true"}}), Lease(wt.key, str(root), 20000))
    (path,) = [a.split("=", 1)[1] for s in plan.services for a in s.argv if a.startswith("--forward-config=")]
    labels = json.loads(plan.files[path])["labels"]
    assert labels["commit"] and labels["branch"] and "rev-parse HEAD" in calls.read_text()


def test_the_worktree_found_from_a_subdirectory_or_a_linked_worktree_names_the_exclude_file_git_uses(
    tmp_path: Path,
) -> None:
    from legible.worktree import find_worktree

    from .conftest import git

    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    common = (root / ".git" / "info" / "exclude").resolve()
    (root / "sub").mkdir()
    wt = find_worktree(root / "sub")  # git names the file relative to the directory it ran in
    assert wt.root == root.resolve() and wt.exclude is not None and wt.exclude.resolve() == common
    wt.ensure_state_dir()
    wt.ensure_state_dir()
    assert common.read_text().splitlines().count("/.legible/") == 1
    git(root, "worktree", "add", "-q", "-b", "other", str(tmp_path / "linked"))
    linked = find_worktree(tmp_path / "linked")  # a linked worktree shares the repository's exclude file
    assert linked.root == (tmp_path / "linked").resolve() and linked.exclude is not None
    assert linked.exclude.resolve() == common
    assert linked == find_worktree(tmp_path / "linked") and Worktree(linked.root, linked.key) == linked
