"""Grafana where installed (issue 13): the dashboards are generated with grafana-foundation-sdk and every
panel's PromQL is evaluated against the real VictoriaMetrics of a real stack with real span metrics; the
plan's provisioning is checked everywhere; Grafana itself runs only where it is installed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import requests

from legible.config import parse_config
from legible.grafana import DATASOURCE_UID, dashboards, panel_queries
from legible.lease import Lease
from legible.plan import build_plan
from legible.services.grafana import find_grafana
from legible.worktree import Worktree, worktree_key

from .conftest import cli, cli_json, make_repo
from .test_stack import SHOP_TOML, shop_repo, wait_until

pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk is not installed")


def test_dashboards_are_generated_with_every_panel_on_the_stack_datasource() -> None:
    boards = {name: json.loads(text) for name, text in dashboards("shop-1234abcd").items()}
    assert set(boards) == {"legible-red.json", "legible-startup.json", "legible-logs.json"}
    exprs = []
    for board in boards.values():
        assert board["uid"] + ".json" in boards and "shop-1234abcd" in board["title"]
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
            exprs += [t["expr"] for t in panel["targets"]]
    assert exprs == [q for _, _, q in panel_queries()]


def test_every_panel_query_answers_on_real_span_metrics(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", SHOP_TOML)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", timeout=120)
    assert code == 0, doc
    vm = doc["endpoints"]["victoria-metrics"]
    for path in ("/", "/error", "/slow?ms=20", "/"):
        requests.get(doc["endpoints"]["app"] + path, timeout=10)

    def answer(expr: str) -> list[dict]:
        r = requests.get(f"{vm}/api/v1/query", params={"query": expr.replace("$__rate_interval", "1m")}, timeout=5)
        assert r.status_code == 200, (expr, r.text)
        return r.json()["data"]["result"]

    for uid, title, expr in panel_queries():
        assert wait_until(lambda e=expr: answer(e), timeout=30, every=0.5), f"{uid} / {title}: no series for {expr}"
    routes = {r["metric"].get("span_name") for r in answer(panel_queries()[0][2])}
    assert "GET /error" in routes or any("/error" in (r or "") for r in routes), routes
    cli(root, "down")


def _fake_binary(dir_: Path, name: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    exe = dir_ / name
    exe.write_text("#!/bin/sh\nexit 0\n")  # only planned, never run: the plan is pure data
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_plan_provisions_a_read_only_loopback_grafana(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    _fake_binary(bindir, "grafana-server")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    plan = build_plan(wt, parse_config({"app": {"command": "true"}}), Lease(wt.key, str(root), 20000))
    g = next(s for s in plan.services if s.name == "grafana")
    assert g.port == plan.ports["grafana"] == 20007 and g.argv[0] == str(bindir / "grafana-server")
    assert g.env["GF_SERVER_HTTP_ADDR"] == "127.0.0.1" and g.env["GF_SERVER_HTTP_PORT"] == "20007"
    assert g.env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer" and g.env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert g.depends_on == ["victoria-metrics"] and plan.endpoints["grafana"] == "http://127.0.0.1:20007/"
    prov = Path(g.env["GF_PATHS_PROVISIONING"])
    ds = json.loads(plan.files[str(prov / "datasources" / "legible.yaml")])["datasources"][0]
    assert ds["url"] == f"http://127.0.0.1:{plan.ports['victoria-metrics']}" and ds["uid"] == DATASOURCE_UID
    provider = json.loads(plan.files[str(prov / "dashboards" / "legible.yaml")])["providers"][0]
    boards = [p for p in plan.files if p.startswith(provider["options"]["path"] + "/")]
    assert len(boards) == 3
    assert str(wt.data_dir) in g.env["GF_PATHS_DATA"]


@pytest.mark.skipif(find_grafana() is None, reason="grafana is not installed here (not in Debian; see legible doctor)")
def test_grafana_serves_the_dashboards_where_installed(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop", SHOP_TOML)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", timeout=180)
    assert code == 0, doc
    base = doc["endpoints"]["grafana"]
    found = wait_until(lambda: requests.get(f"{base}api/search", timeout=5).json(), timeout=60)
    assert {d["uid"] for d in found} >= {"legible-red", "legible-startup", "legible-logs"}
    assert requests.post(f"{base}api/dashboards/db", json={"dashboard": {}}, timeout=5).status_code in (401, 403)
