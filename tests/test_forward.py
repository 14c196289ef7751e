"""Forwarding to shared engines (issue 13): a second VictoriaMetrics and a second collector stand in for the
shared engines. Real processes on loopback: the collector's OTLP queue across an outage of the shared
collector, vmagent's remote write across an outage of the shared VictoriaMetrics, and two worktrees of the
example shop whose span metrics, spans and logs land in the shared engines labelled by worktree, branch and
commit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from legible import forward
from legible.collector._forward import Forwarder, label_resources, tail_request
from legible.config import parse_config
from legible.store import open_store

from .conftest import REPO, cli, cli_json, git
from .test_collector import free_port, wait_http
from .test_stack import shop_repo, wait_until

VM_BIN = "/usr/bin/victoria-metrics"
VMAGENT_BIN = "/usr/bin/vmagent"
SHARED_WT = "shared-engine"


def spans_request(service: str, n: int, first: int) -> bytes:
    """An OTLP trace request of ``n`` spans with distinct ids (``first`` .. ``first + n - 1``)."""
    rs = ResourceSpans()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    ss = ScopeSpans()
    now = time.time_ns()
    for i in range(first, first + n):
        ss.spans.append(
            Span(
                trace_id=(i + 1).to_bytes(16, "big"),  # never all zeros: no trace id (W3C)
                span_id=(i + 1).to_bytes(8, "big"),
                name=f"op-{i % 3}",
                start_time_unix_nano=now - 1_000_000,
                end_time_unix_nano=now,
            )
        )
    rs.scope_spans.append(ss)
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


class Engine:
    """A process on fixed loopback ports that can be stopped and started again (the shared engines)."""

    def __init__(self, argv: list[str], health: str, cwd: Path | None = None) -> None:
        self.argv = argv
        self.health = health
        self.cwd = cwd
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> Engine:
        self.p = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        wait_http(self.health, timeout=30)
        return self

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(30)
        self.p = None


def shared_vm(data: Path) -> tuple[Engine, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        VM_BIN,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={data}",
        "-search.latencyOffset=0s",
        "-loggerLevel=ERROR",
        "-memory.allowedBytes=128MiB",
    ]
    return Engine(argv, f"{url}/health"), url


def shared_collector(state: Path) -> tuple[Engine, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "legible.collector",
        f"--http-port={port}",
        "--grpc-port=-1",
        f"--db={state / 'data' / 'signals.duckdb'}",
        f"--worktree={SHARED_WT}",
        f"--token-file={state / 'collector.token'}",
    ]
    return Engine(argv, f"{url}/health", cwd=REPO), url


def shared_rows(state: Path, url: str, sql: str) -> list[tuple[Any, ...]]:
    return open_store(state, url, worktree=SHARED_WT).query(sql).rows


def prom(url: str, query: str) -> list[dict[str, Any]]:
    r = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


# ---- pure parts -------------------------------------------------------------------------------------


def test_precedence_toml_over_environment() -> None:
    env = {
        "LEGIBLE_FORWARD_OTLP": "http://env-otlp:4318",
        "LEGIBLE_FORWARD_REMOTE_WRITE": "http://env-vm:8428/api/v1/write",
        "LEGIBLE_FORWARD_HEADERS": "Authorization=Bearer x, X-Team=a",
        "LEGIBLE_FORWARD_MAX_DISK_MB": "64",
    }
    cfg = parse_config({"app": {"command": "true"}, "forward": {"otlp": "http://toml-otlp:4318"}})
    s = forward.resolve(cfg.forward, env)
    assert s.otlp == "http://toml-otlp:4318" and s.source["otlp"] == "legible.toml"
    assert s.remote_write == "http://env-vm:8428/api/v1/write"
    assert s.source["remote_write"] == "LEGIBLE_FORWARD_REMOTE_WRITE"
    assert s.headers == {"Authorization": "Bearer x", "X-Team": "a"} and s.max_disk_mb == 64
    assert not forward.resolve(cfg.forward.model_copy(update={"otlp": None}), {}).enabled
    from legible._errors import ConfigError

    with pytest.raises(ConfigError, match="LEGIBLE_FORWARD_OTLP"):
        forward.resolve(None, {"LEGIBLE_FORWARD_OTLP": "ftp://x"})


def test_labels_replace_resource_attributes_and_tailed_lines_become_otlp_logs() -> None:
    req = ExportTraceServiceRequest.FromString(spans_request("app", 2, 1))
    req.resource_spans[0].resource.attributes.append(KeyValue(key="host", value=AnyValue(string_value="spoof")))
    label_resources("traces", req, {"worktree": "w-1", "host": "h", "deploy": "3"})
    attrs = {kv.key: kv.value.string_value for kv in req.resource_spans[0].resource.attributes}
    assert attrs == {"service.name": "app", "worktree": "w-1", "host": "h", "deploy": "3"}
    row = (1, 2, "app", "error", 17, "ERROR", "boom", "{}", "{}", "{}", "ab" * 16, "cd" * 8, "stderr")
    logs = tail_request([row, row[:2] + ("worker",) + row[3:]])
    assert [rl.resource.attributes[0].value.string_value for rl in logs.resource_logs] == ["app", "worker"]
    rec = logs.resource_logs[0].scope_logs[0].log_records[0]
    assert rec.body.string_value == "boom" and rec.severity_number == 17 and rec.trace_id.hex() == "ab" * 16
    odd = tail_request([(1, 2, "app", "warn", 0, "", "x", "{}", "{}", "{}", "zz", "abc", None)])
    rec = odd.resource_logs[0].scope_logs[0].log_records[0]
    assert rec.trace_id == b"" and rec.span_id == b"" and rec.severity_text == "WARN"  # a bad id is left out


def test_queue_past_its_cap_drops_and_counts(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every send fails and data waits on disk
    probe = Forwarder(dead, tmp_path / "probe", {"worktree": "w"})
    probe.offer("traces", ExportTraceServiceRequest.FromString(spans_request("app", 5, 0)), 5)
    one = probe.status()["queue_bytes"]  # one queued request, labelled and gzipped
    fw = Forwarder(dead, tmp_path / "q", {"worktree": "w"}, max_bytes=3 * one + one // 2)
    fw.start()
    try:
        results = [
            fw.offer("traces", ExportTraceServiceRequest.FromString(spans_request("app", 5, i)), 5) for i in range(5)
        ]
        assert results[:3] == [True, True, True] and results[3:] == [False, False]
        st = wait_until(lambda: (s := fw.status())["last_error"] and s)
        assert st["dropped"]["traces"] == 10 and st["queue_files"] == 3 and st["sent"]["traces"] == 0
        assert sorted(p.stat().st_mode & 0o777 for p in (tmp_path / "q").iterdir()) == [0o600] * 3
    finally:
        fw.stop()
    again = Forwarder(dead, tmp_path / "q", {})  # a restart finds the queue and continues its numbering
    assert again.status()["queue_files"] == 3
    assert again.offer("traces", ExportTraceServiceRequest.FromString(spans_request("app", 1, 99)), 1)
    assert sorted(os.listdir(tmp_path / "q"))[-1].startswith("000000000003-traces-1")


def test_deploy_and_commit_labels_follow_the_newest_deploy(tmp_path: Path) -> None:
    import gzip

    state = tmp_path / ".legible"
    state.mkdir()
    deploys = state / "deploys.jsonl"
    deploys.write_text(json.dumps({"number": 1, "commit": "a" * 40, "status": "ready"}) + "\n")
    dead = f"http://127.0.0.1:{free_port()}"
    fw = Forwarder(dead, state / "data" / "forward", {"worktree": "w", "deploy": "0", "commit": "x"}, state_dir=state)

    def labels_of_newest() -> dict[str, str]:
        newest = sorted((state / "data" / "forward").glob("*.pb"))[-1]
        msg = ExportTraceServiceRequest.FromString(gzip.decompress(newest.read_bytes()))
        return {kv.key: kv.value.string_value for kv in msg.resource_spans[0].resource.attributes}

    fw.offer("traces", ExportTraceServiceRequest.FromString(spans_request("app", 1, 0)), 1)
    assert labels_of_newest()["deploy"] == "1" and labels_of_newest()["commit"] == "a" * 40
    with deploys.open("a") as fh:  # legible restart: deploy 2 on a new commit
        fh.write(json.dumps({"number": 2, "commit": "b" * 40, "status": "starting"}) + "\n")
    os.utime(deploys, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # a new mtime even on a coarse clock
    fw.offer("traces", ExportTraceServiceRequest.FromString(spans_request("app", 1, 1)), 1)
    assert labels_of_newest()["deploy"] == "2" and labels_of_newest()["commit"] == "b" * 40


# ---- the collector's OTLP queue across an outage of the shared collector ------------------------------


def test_collector_forwards_spans_and_tailed_logs_through_an_outage(tmp_path: Path) -> None:
    shared_state = tmp_path / "shared"
    shared, shared_url = shared_collector(shared_state)
    shared.start()
    local_state = tmp_path / "wt" / ".legible"
    (local_state / "logs").mkdir(parents=True)
    cfg = local_state / "forward.json"
    cfg.write_text(
        json.dumps(
            {
                "url": shared_url,
                "queue_dir": str(local_state / "data" / "forward"),
                "labels": {"worktree": "wt-a", "branch": "main", "commit": "c0ffee", "deploy": "1", "host": "h1"},
                "headers": {},
                "max_bytes": 64 * 1024 * 1024,
            }
        )
    )
    port = free_port()
    local = Engine(
        [
            sys.executable,
            "-m",
            "legible.collector",
            f"--http-port={port}",
            "--grpc-port=-1",
            f"--db={local_state / 'data' / 'signals.duckdb'}",
            f"--logs-dir={local_state / 'logs'}",
            "--worktree=wt-a",
            f"--token-file={local_state / 'collector.token'}",
            f"--forward-config={cfg}",
        ],
        f"http://127.0.0.1:{port}/health",
        cwd=REPO,
    ).start()
    local_url = f"http://127.0.0.1:{port}"
    token = (local_state / "collector.token").read_text().strip()

    def fwd_status() -> dict[str, Any]:
        r = requests.get(f"{local_url}/status", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        return r.json()["forward"]

    def post(n: int, first: int) -> None:
        r = requests.post(
            f"{local_url}/v1/traces",
            data=spans_request("app", n, first),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=5,
        )
        assert r.status_code == 200

    def shared_spans() -> int:
        return shared_rows(shared_state, shared_url, "SELECT count(*) FROM spans WHERE resource->>'worktree' = 'wt-a'")[
            0
        ][0]

    try:
        sent = 0
        for _ in range(5):
            post(10, sent)
            sent += 10
        (local_state / "logs" / "app.log").write_text("first line\nERROR second line\n")
        assert wait_until(lambda: shared_spans() == sent, timeout=20)
        labelled = shared_rows(
            shared_state,
            shared_url,
            "SELECT DISTINCT resource->>'branch', resource->>'commit', resource->>'host' FROM spans",
        )
        assert labelled == [("main", "c0ffee", "h1")]
        shared.stop()  # the shared engine is down while traffic flows
        for _ in range(10):
            post(10, sent)
            sent += 10
        with (local_state / "logs" / "app.log").open("a") as fh:
            fh.write("during the outage\n")
        down = wait_until(lambda: (s := fwd_status())["last_error"] and s["queue_files"] > 0 and s, timeout=20)
        assert down["dropped"] == {"traces": 0, "logs": 0}
        assert down["queue_bytes"] > 0
        # the local store kept taking everything at once
        local_store = open_store(local_state, local_url, worktree="wt-a")
        assert wait_until(lambda: local_store.query("SELECT count(*) FROM spans").rows[0][0] == sent)
        shared.start()
        assert wait_until(lambda: shared_spans() == sent, timeout=30)
        assert wait_until(
            lambda: (
                shared_rows(shared_state, shared_url, "SELECT count(*) FROM logs WHERE resource->>'worktree' = 'wt-a'")[
                    0
                ][0]
                == 3
            ),
            timeout=20,
        )
        after = wait_until(lambda: (s := fwd_status())["queue_files"] == 0 and s, timeout=20)
        assert after["sent"]["traces"] == sent and after["last_error"] == "" and after["last_success_ns"]
    finally:
        local.stop()
        shared.stop()


# ---- vmagent's remote write across an outage of the shared VictoriaMetrics ---------------------------


@pytest.mark.skipif(
    not (Path(VM_BIN).exists() and Path(VMAGENT_BIN).exists()), reason="needs victoria-metrics and vmagent"
)
def test_vmagent_remote_writes_labelled_series_through_an_outage(tmp_path: Path) -> None:
    local, local_url = shared_vm(tmp_path / "local-vm")
    shared, shared_url = shared_vm(tmp_path / "shared-vm")
    local.start()
    shared.start()
    agent_port = free_port()
    scrape = tmp_path / "vmagent.yml"
    import jinja2
    from legible.stacks import TEMPLATES

    tpl = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined)
    scrape.write_text(
        tpl.get_template("vmagent/federate.yml.j2").render(
            key="wt-a", scrape_interval="1s", vm_port=int(local_url.rsplit(":", 1)[1])
        )
    )
    agent = Engine(
        [
            VMAGENT_BIN,
            f"-httpListenAddr=127.0.0.1:{agent_port}",
            f"-promscrape.config={scrape}",
            f"-remoteWrite.url={shared_url}/api/v1/write",
            "-remoteWrite.label=worktree=wt-a",
            "-remoteWrite.label=branch=main",
            "-remoteWrite.label=commit=c0ffee",
            "-remoteWrite.label=deploy=0",
            "-remoteWrite.label=host=h1",
            f"-remoteWrite.tmpDataPath={tmp_path / 'queue'}",
            "-remoteWrite.maxDiskUsagePerURL=64MiB",
            "-remoteWrite.flushInterval=1s",
            "-loggerLevel=ERROR",
        ],
        f"http://127.0.0.1:{agent_port}/health",
    ).start()

    def put(value: int) -> None:
        r = requests.post(
            f"{local_url}/api/v1/import/prometheus", data=f'legible_spans_total{{service="app"}} {value}\n', timeout=5
        )
        assert r.status_code == 204

    def shared_value() -> float | None:
        res = prom(shared_url, 'legible_spans_total{worktree="wt-a",branch="main",commit="c0ffee",host="h1"}')
        return float(res[0]["value"][1]) if res else None

    try:
        put(5)
        assert wait_until(lambda: shared_value() == 5, timeout=30)
        shared.stop()
        for v in range(6, 12):
            put(v)
            time.sleep(0.5)  # six samples over three seconds, each scraped while the shared engine is down
        h = wait_until(
            lambda: (x := forward.vmagent_health(agent_port, shared_url))["queue_bytes"] > 0 and x, timeout=20
        )
        assert h["state"] == "retrying" and h["dropped"] == 0
        shared.start()
        assert wait_until(lambda: shared_value() == 11, timeout=60)
        # the samples taken during the outage arrived too, not only the last one
        seen = prom(shared_url, 'count_over_time(legible_spans_total{worktree="wt-a"}[5m])')
        assert float(seen[0]["value"][1]) >= 6
        assert wait_until(lambda: forward.vmagent_health(agent_port, shared_url)["state"] == "ok", timeout=30)
    finally:
        agent.stop()
        shared.stop()
        local.stop()


# ---- two worktrees of the example shop -------------------------------------------------------------


@pytest.mark.skipif(
    not (Path(VM_BIN).exists() and Path(VMAGENT_BIN).exists()), reason="needs victoria-metrics and vmagent"
)
def test_two_worktrees_reach_the_shared_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, down_after: list[Path]
) -> None:
    vm, vm_url = shared_vm(tmp_path / "shared-vm")
    col, col_url = shared_collector(tmp_path / "shared-col")
    vm.start()
    col.start()
    monkeypatch.setenv("LEGIBLE_FORWARD_REMOTE_WRITE", f"{vm_url}/api/v1/write")
    monkeypatch.setenv("LEGIBLE_FORWARD_OTLP", col_url)
    monkeypatch.setenv("LEGIBLE_FORWARD_QUERY_URL", vm_url)
    toml = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\n\n[stack]\nscrape_interval = "1s"\n'
    roots = [shop_repo(tmp_path / "main", toml), shop_repo(tmp_path / "feature", toml)]
    git(roots[1], "checkout", "-q", "-b", "feature-x")
    main_commit = git(roots[0], "rev-parse", "HEAD")
    try:
        keys = []
        for root in roots:
            down_after.append(root)
            code, doc = cli_json(root, "up", "--wait", timeout=120)
            assert code == 0, doc
            assert "vmagent" in doc["services"], doc["services"]
            keys.append(doc["key"])
            for path in ("/", "/error", "/"):
                requests.get(doc["endpoints"]["app"] + path, timeout=10)

        def both() -> list[dict[str, Any]] | None:
            res = prom(vm_url, "sum by (worktree, branch, commit) (legible_spans_total)")
            return res if {r["metric"].get("worktree") for r in res} >= set(keys) else None

        res = wait_until(both, timeout=60, every=0.5)
        by_wt = {r["metric"]["worktree"]: r["metric"] for r in res}
        assert by_wt[keys[0]]["branch"] == "main" and by_wt[keys[1]]["branch"] == "feature-x"
        assert by_wt[keys[1]]["commit"] == git(roots[1], "rev-parse", "HEAD")
        # a restart is a new deploy: forwarded metrics follow it (vmagent re-reads its relabel file on SIGHUP)
        code, restarted = cli_json(roots[1], "restart", timeout=120)
        assert code == 0, restarted
        new_deploy = str(restarted["deploy"]["number"])
        assert new_deploy != "1"
        q = f'count(legible_spans_total{{worktree="{keys[1]}",deploy="{new_deploy}"}})'
        requests.get(cli_json(roots[1], "status")[1]["endpoints"]["app"] + "/", timeout=10)
        assert wait_until(lambda: prom(vm_url, q), timeout=60, every=0.5), q

        def shared_has(table: str) -> bool:
            sql = f"SELECT DISTINCT resource->>'worktree' FROM {table}"
            return {r[0] for r in shared_rows(tmp_path / "shared-col", col_url, sql)} >= set(keys)

        assert wait_until(lambda: shared_has("spans"), timeout=30)
        assert wait_until(lambda: shared_has("logs"), timeout=30)
        out = cli(roots[0], "status").stdout
        assert "forward: otlp ok" in out and "remote_write" in out, out
        code, shared_doc = cli_json(roots[0], "metrics", "--shared", "sum by (worktree) (legible_spans_total)")
        assert code == 0, shared_doc
        assert {r["metric"]["worktree"] for r in shared_doc["result"]} >= set(keys)
        # the shared engines go down while traffic flows: status says so, and nothing is lost once they return
        col.stop()
        vm.stop()
        apps = [cli_json(root, "status")[1]["endpoints"]["app"] for root in roots]
        for app in apps:
            for path in ("/", "/error", "/"):
                requests.get(app + path, timeout=10)
        down = wait_until(lambda: "otlp retrying" in (o := cli(roots[0], "status").stdout) and o, timeout=30)
        assert "dropped 0" in down, down
        code, st = cli_json(roots[0], "status")
        assert {f["kind"] for f in st["forward"]} == {"otlp", "remote_write"}
        col.start()
        vm.start()

        def local_spans(root: Path) -> int:
            return int(cli_json(root, "logs", "--sql", "SELECT count(*) FROM spans")[1]["rows"][0][0])

        def caught_up() -> bool:
            sql = "SELECT resource->>'worktree', count(*) FROM spans GROUP BY 1"
            shared = dict(shared_rows(tmp_path / "shared-col", col_url, sql))
            return all(shared.get(k) == local_spans(r) for k, r in zip(keys, roots, strict=True))

        assert wait_until(caught_up, timeout=60, every=1.0)
        assert wait_until(lambda: "forward: otlp ok" in cli(roots[0], "status").stdout, timeout=30)
        # main's worktree goes away; the feature's proof still gets main's figures, from the shared engine
        assert cli(roots[0], "down", "--purge").returncode == 0
        shutil.rmtree(roots[0])
        down_after.remove(roots[0])
        code, proof = cli_json(roots[1], "proof", "--baseline", "branch:main", timeout=180)
        assert code in (0, 1), proof
        base = proof["baseline"]
        assert base["run_id"] == "shared:main" and base["branch"] == "main"
        assert base["commit"] == main_commit
        by_key = {f["key"]: f for f in base["figures"]}
        assert by_key["requests"]["baseline"] and by_key["requests"]["baseline"] >= 3, by_key
    finally:
        for root in roots:
            if root.exists():
                cli(root, "down")
        col.stop()
        vm.stop()


def test_status_line_says_queue_sent_dropped_and_last_success() -> None:
    from legible.render import render_forward

    now = 1_800_000_000_000_000_000
    line = render_forward(
        [
            {
                "kind": "otlp",
                "url": "http://otel:4318",
                "state": "retrying",
                "queue_bytes": 3 * 1024 * 1024,
                "sent": 120,
                "dropped": 0,
                "last_success_ns": now - 31_000_000_000,
                "error": "ConnectionError: refused",
            },
            {
                "kind": "remote_write",
                "url": "http://vm:8428/api/v1/write",
                "state": "ok",
                "queue_bytes": 0,
                "sent": 40,
                "dropped": 0,
                "last_success_ns": None,
                "error": "",
            },
        ],
        now_ns=now,
    )
    assert line == (
        "forward: otlp retrying, queue 3.0 MiB, sent 120, dropped 0, last ok 31 s ago (ConnectionError: refused);"
        " remote_write ok, queue 0 B, sent 40, dropped 0, last ok: time not reported"
    )
