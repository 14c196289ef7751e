"""Forwarding benchmark (issue 13): the shared engines down for 30 s while traffic flows, then back.

    python benchmarks/bench_forward.py [--outage 30] [--rate 500] [--before 15]

A local collector (forwarding spans and logs) and a local VictoriaMetrics with vmagent (forwarding metrics)
stand for one stack; a second collector and a second VictoriaMetrics stand for the shared engines. Traffic:
``--rate`` spans/s in OTLP/HTTP requests of 50 spans, plus one stdout line per request, plus one gauge
sample per request imported into the local VictoriaMetrics. Figures:

* the local stack's query latency (``POST /query`` ``SELECT count(*) FROM spans`` on the collector, and a
  PromQL instant query on the local VictoriaMetrics): medians before and during the outage, and the ratio
  (target: about 1, i.e. the outage does not slow the local stack);
* the queue: bytes on disk at the end of the outage, bytes per span, growth rate;
* after the engines return: time until both queues are empty, and whether the counts match (spans and log
  lines in the shared collector == sent; the shared VictoriaMetrics' last sample == the local one; samples
  during the outage present).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span  # noqa: E402

from legible import forward  # noqa: E402
from legible.store import open_store  # noqa: E402

VM = "/usr/bin/victoria-metrics"
VMAGENT = "/usr/bin/vmagent"
BATCH = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


class Proc:
    def __init__(self, argv: list[str], health: str) -> None:
        self.argv, self.health, self.p = argv, health, None

    def start(self) -> Proc:
        self.p = subprocess.Popen(  # type: ignore[assignment]
            self.argv,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        wait_http(self.health)
        return self

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:  # type: ignore[unreachable]
            self.p.send_signal(signal.SIGTERM)  # type: ignore[unreachable]
            self.p.wait(30)
        self.p = None


def vm(data: Path) -> tuple[Proc, str, int]:
    port = free_port()
    argv = [
        VM,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={data}",
        "-search.latencyOffset=0s",
        "-loggerLevel=ERROR",
        "-memory.allowedBytes=128MiB",
    ]
    return Proc(argv, f"http://127.0.0.1:{port}/health"), f"http://127.0.0.1:{port}", port


def collector(state: Path, name: str, extra: list[str]) -> tuple[Proc, str]:
    port = free_port()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "legible.collector",
        f"--http-port={port}",
        "--grpc-port=-1",
        f"--db={state / 'data' / 'signals.duckdb'}",
        f"--worktree={name}",
        f"--token-file={state / 'collector.token'}",
        *extra,
    ]
    return Proc(argv, f"http://127.0.0.1:{port}/health"), f"http://127.0.0.1:{port}"


def spans(n: int, first: int) -> bytes:
    rs = ResourceSpans()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="app")))
    ss = ScopeSpans()
    now = time.time_ns()
    for i in range(first, first + n):
        ss.spans.append(
            Span(
                trace_id=(i + 1).to_bytes(16, "big"),  # never all zeros: no trace id (W3C)
                span_id=(i + 1).to_bytes(8, "big"),
                name=f"GET /item/{i % 7}",
                kind=2,
                start_time_unix_nano=now - 3_000_000,
                end_time_unix_nano=now,
            )
        )
    rs.scope_spans.append(ss)
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--before", type=float, default=15.0)
    ap.add_argument("--rate", type=int, default=500, help="spans per second")
    args = ap.parse_args()
    if not (Path(VM).exists() and Path(VMAGENT).exists()):
        print("skipped: needs victoria-metrics and vmagent")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-forward-"))
    shared_vm, shared_vm_url, _ = vm(tmp / "shared-vm")
    local_vm, local_vm_url, local_vm_port = vm(tmp / "local-vm")
    shared_col, shared_col_url = collector(tmp / "shared", "shared", [])
    local_state = tmp / "wt" / ".legible"
    (local_state / "data").mkdir(parents=True)
    cfg = tmp / "forward.json"
    lbls = {"worktree": "wt-bench", "branch": "main", "commit": "c0ffee", "deploy": "0", "host": "bench"}
    cfg.write_text(
        json.dumps(
            {
                "url": shared_col_url,
                "queue_dir": str(local_state / "data" / "forward"),
                "labels": lbls,
                "headers": {},
                "max_bytes": 512 * 1024 * 1024,
            }
        )
    )
    local_col, local_col_url = collector(
        local_state, "wt-bench", [f"--logs-dir={local_state / 'logs'}", f"--forward-config={cfg}"]
    )
    agent_port = free_port()
    scrape = tmp / "vmagent.yml"
    scrape.write_text(
        "scrape_configs:\n  - job_name: fwd\n    scrape_interval: 1s\n    metrics_path: /federate\n"
        "    honor_labels: true\n    params: {'match[]': ['{__name__=~\".+\"}']}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{local_vm_port}']}}]\n"
    )
    agent = Proc(
        [
            VMAGENT,
            f"-httpListenAddr=127.0.0.1:{agent_port}",
            f"-promscrape.config={scrape}",
            f"-remoteWrite.url={shared_vm_url}/api/v1/write",
            *(f"-remoteWrite.label={k}={v}" for k, v in lbls.items()),
            f"-remoteWrite.tmpDataPath={tmp / 'vmagent-queue'}",
            "-remoteWrite.maxDiskUsagePerURL=512MiB",
            "-remoteWrite.flushInterval=1s",
            "-loggerLevel=ERROR",
        ],
        f"http://127.0.0.1:{agent_port}/health",
    )
    procs = [shared_vm, local_vm, shared_col, local_col, agent]
    try:
        for p in procs:
            p.start()
        token = (local_state / "collector.token").read_text().strip()
        local_store = open_store(local_state, local_col_url, worktree="wt-bench")
        log = (local_state / "logs" / "app.log").open("a")
        sent = {"spans": 0, "lines": 0, "sample": 0}

        def tick() -> None:
            r = requests.post(
                f"{local_col_url}/v1/traces",
                data=spans(BATCH, sent["spans"]),
                headers={"Content-Type": "application/x-protobuf"},
                timeout=10,
            )
            assert r.status_code == 200, r.status_code
            sent["spans"] += BATCH
            log.write(f"served batch {sent['spans']}\n")
            log.flush()
            sent["lines"] += 1
            sent["sample"] += 1
            requests.post(
                f"{local_vm_url}/api/v1/import/prometheus", data=f"bench_requests_total {sent['sample']}\n", timeout=10
            )

        def measure(seconds: float) -> tuple[list[float], list[float]]:
            q_col, q_vm = [], []
            every = BATCH / args.rate
            end = time.monotonic() + seconds
            nxt = time.monotonic()
            while time.monotonic() < end:
                tick()
                t0 = time.perf_counter()
                local_store.query("SELECT count(*) FROM spans")
                q_col.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                requests.get(f"{local_vm_url}/api/v1/query", params={"query": "sum(bench_requests_total)"}, timeout=10)
                q_vm.append((time.perf_counter() - t0) * 1000)
                nxt += every
                time.sleep(max(0.0, nxt - time.monotonic()))
            return q_col, q_vm

        before_col, before_vm = measure(args.before)
        shared_col.stop()
        shared_vm.stop()
        t_down = time.monotonic()
        during_col, during_vm = measure(args.outage)
        outage_s = time.monotonic() - t_down
        fwd = requests.get(f"{local_col_url}/status", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()[
            "forward"
        ]
        agent_h = forward.vmagent_health(agent_port, shared_vm_url)
        plan_like = {
            "collector": {"argv": ["--forward-config=x"]},
            "vmagent": {"argv": [f"-remoteWrite.url={shared_vm_url}"]},
        }
        status_line = __import__("legible.render", fromlist=["render_forward"]).render_forward(
            forward.health(
                local_state, {"otlp-http": int(local_col_url.rsplit(":", 1)[1]), "vmagent": agent_port}, plan_like
            )
        )
        spans_in_outage = int(outage_s * args.rate)
        shared_col.start()
        shared_vm.start()
        t_up = time.monotonic()
        shared_store = open_store(tmp / "shared", shared_col_url, worktree="shared")

        def drained() -> bool:
            s = requests.get(f"{local_col_url}/status", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
            return (
                s["forward"]["queue_files"] == 0
                and forward.vmagent_health(agent_port, shared_vm_url)["queue_bytes"] == 0
            )

        while not drained() and time.monotonic() - t_up < 300:
            time.sleep(0.2)
        drain_s = time.monotonic() - t_up
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n_spans = shared_store.query("SELECT count(*) FROM spans").rows[0][0]
            n_lines = shared_store.query("SELECT count(*) FROM logs").rows[0][0]
            res = requests.get(
                f"{shared_vm_url}/api/v1/query",
                params={"query": 'bench_requests_total{worktree="wt-bench"}'},
                timeout=5,
            ).json()["data"]["result"]
            last = float(res[0]["value"][1]) if res else -1
            if n_spans == sent["spans"] and n_lines == sent["lines"] and last == sent["sample"]:
                break
            time.sleep(0.5)
        window = f"{int(outage_s)}s"
        offset = max(1, int(time.monotonic() - (t_down + outage_s)))  # the window of the outage
        during = requests.get(
            f"{shared_vm_url}/api/v1/query",
            params={
                "query": f'count_over_time(bench_requests_total{{worktree="wt-bench"}}[{window}] offset {offset}s)'
            },
            timeout=5,
        ).json()["data"]["result"]
        med = statistics.median
        print(
            f"traffic: {args.rate} spans/s in batches of {BATCH}, {args.rate / BATCH:.0f} stdout lines/s, "
            f"{args.rate / BATCH:.0f} samples/s; outage {outage_s:.1f} s"
        )
        print(
            f"local collector /query median: before {med(before_col):.1f} ms, during outage {med(during_col):.1f} ms, "
            f"ratio {med(during_col) / med(before_col):.2f}"
        )
        print(
            f"local VictoriaMetrics query median: before {med(before_vm):.1f} ms,"
            f" during outage {med(during_vm):.1f} ms, "
            f"ratio {med(during_vm) / med(before_vm):.2f}"
        )
        print(
            f"OTLP queue at the end of the outage: {fwd['queue_files']} files, {fwd['queue_bytes']} bytes, "
            f"{fwd['queue_bytes'] / max(1, spans_in_outage):.0f} bytes/span (spans + lines, gzip), "
            f"{fwd['queue_bytes'] / outage_s / 1024:.1f} KiB/s; dropped {fwd['dropped']}"
        )
        print(f"vmagent queue at the end of the outage: {agent_h['queue_bytes']} bytes, state {agent_h['state']}")
        print(f"status meanwhile: {status_line}")
        print(f"drained {drain_s:.1f} s after the engines returned")
        print(
            f"counts: spans shared {n_spans} / sent {sent['spans']}, lines shared {n_lines} / sent {sent['lines']}, "
            f"metric last {last:.0f} / {sent['sample']},"
            f" samples in the outage window {during[0]['value'][1] if during else 0}"
        )
        ok = n_spans == sent["spans"] and n_lines == sent["lines"] and last == sent["sample"]
        print("nothing lost" if ok else "LOST DATA")
        return 0 if ok else 1
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
