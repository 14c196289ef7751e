"""Vector where installed (issue 13): the rendered config is parsed and checked everywhere, the record it
sends is accepted by the real collector, and Vector itself runs only where it is installed."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
import requests

from legible.config import parse_config
from legible.lease import Lease
from legible.plan import build_plan
from legible.services.vector import find_vector
from legible.worktree import Worktree, worktree_key

from .conftest import cli, cli_json, make_repo
from .test_collector import Proc
from .test_stack import SHOP_TOML, shop_repo, wait_until


def _plan_with_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "vector"
    exe.write_text("#!/bin/sh\nexit 0\n")  # only planned, never run: the plan is pure data
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    root = make_repo(tmp_path / "repo 'quoted\"", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    return wt, build_plan(wt, parse_config({"app": {"command": "true"}}), Lease(wt.key, str(root), 20000))


def test_rendered_config_ships_every_log_file_to_the_collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wt, plan = _plan_with_vector(tmp_path, monkeypatch)
    vec = next(s for s in plan.services if s.name == "vector")
    config_path = vec.argv[vec.argv.index("--config") + 1]
    cfg = tomllib.loads(plan.files[config_path])  # a worktree path with quotes still gives valid TOML
    src = cfg["sources"]["service_logs"]
    assert src["type"] == "file" and src["include"] == [f"{wt.logs_dir}/*.log"]
    assert src["multiline"]["start_pattern"] == r"^\S"
    assert cfg["data_dir"] == str(wt.data_dir / "vector") and cfg["api"]["enabled"] is False
    assert cfg["transforms"]["to_otlp"]["inputs"] == ["service_logs"]
    assert "resourceLogs" in cfg["transforms"]["to_otlp"]["source"]
    sink = cfg["sinks"]["collector"]
    assert sink["inputs"] == ["to_otlp"] and sink["type"] == "opentelemetry"
    assert sink["protocol"]["uri"] == f"http://127.0.0.1:{plan.ports['otlp-http']}/v1/logs"
    # Vector's own output stays out of the directory it reads, and the collector's tailer is off
    assert not vec.log.startswith(str(wt.logs_dir))
    collector = next(s for s in plan.services if s.name == "collector")
    assert not any(a.startswith("--logs-dir") for a in collector.argv)
    assert vec.depends_on == ["collector"] and vec.port == 0


def test_the_collector_stores_the_record_vector_sends(tmp_path: Path) -> None:
    """The OTLP JSON shape the remap builds, newline-framed, one record per request (as the sink sends it)."""
    col = Proc(tmp_path, "").start()
    try:
        record = {
            "resourceLogs": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "worker"}}]},
                    "scopeLogs": [
                        {
                            "scope": {"name": "legible.vector"},
                            "logRecords": [
                                {
                                    "timeUnixNano": "1764400000000000000",
                                    "observedTimeUnixNano": "1764400000000000000",
                                    "severityNumber": 17,
                                    "severityText": "ERROR",
                                    "body": {"stringValue": "payment failed"},
                                    "attributes": [{"key": "log.iostream", "value": {"stringValue": "stdout"}}],
                                }
                            ],
                        }
                    ],
                }
            ]
        }
        r = requests.post(
            f"{col.url}/v1/logs",
            data=json.dumps(record) + "\n",
            headers={"Content-Type": "application/json"},
            timeout=5,
        )
        assert r.status_code == 200, r.text
        rows = wait_until(lambda: col.q("SELECT service, level, body FROM logs WHERE body = 'payment failed'"))
        assert rows == [("worker", "error", "payment failed")]
    finally:
        col.stop()


@pytest.mark.skipif(find_vector() is None, reason="vector is not installed here (not in Debian; see legible doctor)")
def test_vector_ships_the_apps_stdout_where_installed(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", SHOP_TOML)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", timeout=120)
    assert code == 0 and "vector" in doc["services"], doc
    requests.get(doc["endpoints"]["app"] + "/error", timeout=10)
    assert wait_until(lambda: "error" in cli(root, "logs", "--level", "error").stdout, timeout=30)
