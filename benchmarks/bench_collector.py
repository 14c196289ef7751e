"""Collector benchmarks: ingest throughput, query latency over a large store, RSS.

    python benchmarks/bench_collector.py [--runs 3] [--lines 300000] [--spans 100000]

Targets (issue 3): >= 50,000 stdout lines/s and >= 20,000 OTLP/HTTP protobuf spans/s on one core with
nothing dropped; queries over 1M log lines and 200k spans well under 300 ms; collector RSS < 150 MB.
Baselines measured in the same run: reading and counting the lines of the file (``wc -l``), and a raw
DuckDB Arrow insert of equivalent rows.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import psutil
import pyarrow as pa
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import record, venv_env  # noqa: E402

from legible.store import migrate, open_store, store_path, template_sql  # noqa: E402

WT = "bench-00000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    def __init__(self, root: Path, vm_url: str = "") -> None:
        self.state = root / ".legible"
        self.logs = self.state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.db = store_path(self.state)
        self.vm_url = vm_url

    def start(self) -> Collector:
        self.http = free_port()
        self.p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "legible.collector",
                f"--http-port={self.http}",
                "--grpc-port=-1",
                f"--db={self.db}",
                f"--logs-dir={self.logs}",
                f"--worktree={WT}",
                "--max-db-mb=4096",
                *([f"--vm-url={self.vm_url}"] if self.vm_url else []),
            ],
            cwd=REPO,
            env=venv_env({"MALLOC_ARENA_MAX": "2"}),  # as the service plan
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(self.stop)  # never leave a collector behind, even when a run fails
        self.url = f"http://127.0.0.1:{self.http}"
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        self.proc = psutil.Process(self.p.pid)
        return self

    def count(self, table: str) -> int:
        r = requests.post(f"{self.url}/query", json={"sql": f"SELECT count(*) FROM {table}"}, timeout=30)
        return int(r.json()["rows"][0][0])

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def stop(self) -> float:
        """SIGTERM the collector and wait for it to exit; return the seconds that took (0 if already gone)."""
        if self.p.poll() is not None:
            return 0.0
        t0 = time.perf_counter()
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(30)
        return time.perf_counter() - t0

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_lines(n: int) -> bytes:
    rnd = random.Random(1)
    out = []
    for i in range(n):
        k = i % 10
        if k < 5:
            out.append(
                f'{{"ts":"2024-05-01T10:00:{i % 60:02d}Z","level":"info","msg":"GET /api/items/{i} 200",'
                f'"duration_ms":{rnd.random() * 50:.2f},"user":"u{i % 97}"}}'
            )
        elif k < 7:
            out.append(f'time=2024-05-01T10:00:00Z level=debug msg="cache lookup" key=item:{i} hit={i % 2 == 0}')
        elif k < 9:
            out.append(f"2024-05-01 10:00:00,{i % 1000:03d} INFO werkzeug: 127.0.0.1 - - GET /static/{i}.css 200")
        else:
            out.append(f"WARNING: slow request {i} took {rnd.randint(500, 3000)} ms")
    return ("\n".join(out) + "\n").encode()


def bench_lines(n: int, runs: int) -> dict[str, float]:
    data = make_lines(n)
    rates, cpu_rates, wc_rates, stops = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            col = Collector(Path(tmp)).start()
            cpu0 = col.cpu()
            t0 = time.perf_counter()
            (col.logs / "app.log").write_bytes(data)
            while col.count("logs") < n:
                time.sleep(0.02)
            took = time.perf_counter() - t0
            cpu = col.cpu() - cpu0
            assert col.count("logs") == n, "lines lost or duplicated"
            stops.append(col.stop())
            rates.append(n / took)
            cpu_rates.append(n / cpu)
            t0 = time.perf_counter()
            with open(col.logs / "app.log", "rb") as f:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            wc_rates.append(lines / (time.perf_counter() - t0))
    return {
        "lines/s": statistics.median(rates),
        "lines/cpu-s": statistics.median(cpu_rates),
        "wc -l lines/s": statistics.median(wc_rates),
        "stop s": statistics.median(stops),
    }


def bench_span_metrics(runs: int) -> float:
    """Seconds from a 200 OK for 10 spans to ``legible_spans_total`` answering 10 in VictoriaMetrics (median)."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        vm_port = free_port()
        vm = subprocess.Popen(
            [
                "/usr/bin/victoria-metrics",
                f"-httpListenAddr=127.0.0.1:{vm_port}",
                f"-storageDataPath={tmp}/vm",
                "-search.latencyOffset=1s",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(vm.terminate)
        vm_url = f"http://127.0.0.1:{vm_port}"
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                if requests.get(f"{vm_url}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        try:
            for run in range(runs):
                with Collector(Path(tmp) / f"c{run}", vm_url).start() as col:
                    name = f"pay{run}"
                    body = span_request(10, run)
                    req = ExportTraceServiceRequest.FromString(body)
                    for sp in req.resource_spans[0].scope_spans[0].spans:
                        sp.name = name
                    t0 = time.perf_counter()
                    r = requests.post(
                        f"{col.url}/v1/traces",
                        data=req.SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf"},
                        timeout=10,
                    )
                    assert r.status_code == 200, r.status_code
                    q = f'sum(legible_spans_total{{span_name="{name}",worktree="{WT}"}})'
                    while time.perf_counter() - t0 < 60:
                        res = requests.get(f"{vm_url}/api/v1/query", params={"query": q}, timeout=5).json()
                        if res["data"]["result"] and float(res["data"]["result"][0]["value"][1]) == 10:
                            break
                        time.sleep(0.05)
                    else:
                        raise SystemExit("span metrics never reached VictoriaMetrics")
                    times.append(time.perf_counter() - t0)
        finally:
            vm.terminate()
            vm.wait(10)
    return statistics.median(times)


def span_request(n: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    now = time.time_ns()
    spans = []
    for i in range(n):
        dur = int(rnd.expovariate(1 / 20e6))
        spans.append(
            Span(
                trace_id=rnd.randbytes(16),
                span_id=rnd.randbytes(8),
                parent_span_id=rnd.randbytes(8) if i % 4 else b"",
                name="GET /api/items/{id}" if i % 3 else "SELECT items",
                kind=2 if i % 3 else 3,
                start_time_unix_nano=now,
                end_time_unix_nano=now + dur,
                status=Status(code=2 if i % 50 == 0 else 0),
                attributes=[
                    KeyValue(key=k, value=AnyValue(string_value=v))
                    for k, v in (
                        ("http.method", "GET"),
                        ("http.route", "/api/items/{id}"),
                        ("http.target", f"/api/items/{i}"),
                        ("net.peer.ip", "127.0.0.1"),
                        ("user_agent.original", "python-requests/2.31"),
                    )
                ]
                + [KeyValue(key="http.status_code", value=AnyValue(int_value=200))],
            )
        )
    res = [
        KeyValue(key="service.name", value=AnyValue(string_value="bench")),
        KeyValue(key="telemetry.sdk.language", value=AnyValue(string_value="python")),
    ]
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource={"attributes": res}, scope_spans=[ScopeSpans(scope={"name": "bench"}, spans=spans)])
        ]
    )
    return req.SerializeToString()


def bench_spans(n: int, runs: int, batch: int = 512) -> dict[str, float]:
    bodies = [span_request(batch, s) for s in range(8)]
    nreq = n // batch
    rates, cpu_rates = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            col = Collector(Path(tmp)).start()
            cpu0 = col.cpu()
            t0 = time.perf_counter()

            def send(worker: int, k: int, url: str = f"{col.url}/v1/traces") -> None:
                s = requests.Session()
                for j in range(k):
                    while True:
                        r = s.post(
                            url,
                            data=bodies[(worker + j) % len(bodies)],
                            headers={"Content-Type": "application/x-protobuf"},
                            timeout=30,
                        )
                        if r.status_code != 503:
                            break
                        time.sleep(0.05)
                    assert r.status_code == 200, r.status_code

            threads = [threading.Thread(target=send, args=(w, nreq // 2)) for w in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sent = (nreq // 2) * 2 * batch
            while col.count("spans") < sent:
                time.sleep(0.02)
            took = time.perf_counter() - t0
            cpu = col.cpu() - cpu0
            assert col.count("spans") == sent, "spans lost or duplicated"
            col.stop()
            rates.append(sent / took)
            cpu_rates.append(sent / cpu)
    return {"spans/s": statistics.median(rates), "spans/cpu-s": statistics.median(cpu_rates)}


def bench_raw_insert(n: int) -> float:
    """Baseline: rows/s of an Arrow insert (with the template expression) into an empty DuckDB logs table."""
    con = duckdb.connect()
    migrate(con)
    now = time.time_ns()
    tbl = pa.table(
        {
            "seq": pa.array(range(n), pa.int64()),
            "t": pa.array([now] * n, pa.int64()),
            "body": [f"GET /api/items/{i} 200" for i in range(n)],
        }
    )
    con.register("b", tbl)
    t0 = time.perf_counter()
    con.execute(
        f"INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, "
        f"attributes, resource, source) SELECT seq, t, t, 'app', 'info', 9, body, {template_sql()}, "
        "'{}'::JSON, '{}'::JSON, 'stdout' FROM b"
    ).fetchall()
    return n / (time.perf_counter() - t0)


def fill_store(db: Path, n_logs: int, n_spans: int) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db))
    migrate(con)
    now = time.time_ns()
    con.execute(f"""
        INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, attributes,
                          resource, trace_id, source)
        SELECT i, {now} - ({n_logs} - i) * 1000000, {now} - ({n_logs} - i) * 1000000,
               ['app', 'worker', 'web'][i % 3 + 1],
               CASE WHEN i % 97 = 0 THEN 'error' WHEN i % 13 = 0 THEN 'warn' ELSE 'info' END,
               9, 'GET /api/items/' || (i % 5000) || ' took ' || (i % 300) || 'ms',
               'GET /api/items/<n> took <n>ms', '{{"user":"u' || (i % 100) || '"}}', '{{}}',
               md5(i::VARCHAR), 'stdout'
        FROM range({n_logs}) t(i)""").fetchall()
    con.execute(f"""
        INSERT INTO spans (seq, trace_id, span_id, parent_span_id, service, name, kind, start_ns, end_ns, duration_ms,
                           status_code, attributes, resource, events, links, received_ns)
        SELECT i, md5((i // 5)::VARCHAR), left(md5(i::VARCHAR), 16), NULL, 'app', 'GET /api/items/{{id}}', 'server',
               {now} - i * 1000000, {now} - i * 1000000 + (random() * 1e9)::BIGINT, random() * 1000, 'unset',
               '{{"http.route":"/api/items/{{id}}"}}', '{{}}', '[]', '[]', {now}
        FROM range({n_spans}) t(i)""").fetchall()
    con.execute("CHECKPOINT").fetchall()
    con.close()


QUERIES = {
    "logs: groups by template, errors first": (
        "SELECT service, level, template, count(*) AS n, max(time_ns) AS last, any_value(body) AS example "
        "FROM logs WHERE time_ns > epoch_ns(now()) - 3600 * 1000000000::BIGINT "
        "GROUP BY service, level, template ORDER BY level IN ('error', 'fatal') DESC, n DESC LIMIT 40"
    ),
    "logs: newest 40 errors": "SELECT ts, service, body FROM logs WHERE level = 'error' ORDER BY seq DESC LIMIT 40",
    "spans: slowest 10": (
        "SELECT trace_id, service, name, duration_ms, status_code FROM spans ORDER BY duration_ms DESC LIMIT 10"
    ),
}


def bench_queries(n_logs: int, n_spans: int, runs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        col = Collector(Path(tmp))
        fill_store(col.db, n_logs, n_spans)
        col.start()
        store = open_store(col.state, col.url, worktree=WT)
        for name, sql in QUERIES.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                res = store.query(sql)
                times.append(time.perf_counter() - t0)
                assert res.source == "collector" and res.rows
            out[f"{name} (collector) ms"] = statistics.median(times) * 1000
        out["collector RSS MB (holding the store, after queries)"] = col.proc.memory_info().rss / 2**20
        # a whole process: interpreter start, import, one query over HTTP
        slowest = QUERIES["spans: slowest 10"]
        script = (
            f"from legible.store import open_store; "
            f"open_store({str(col.state)!r}, {col.url!r}, worktree={WT!r}).query({slowest!r})"
        )
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)
            times.append(time.perf_counter() - t0)
        out["process start + slowest 10 (collector) ms"] = statistics.median(times) * 1000
        col.stop()
        store = open_store(col.state, None, worktree=WT)
        for name, sql in QUERIES.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                res = store.query(sql)
                times.append(time.perf_counter() - t0)
                assert res.source == "file"
            out[f"{name} (file) ms"] = statistics.median(times) * 1000
        store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--store-logs", type=int, default=1_000_000)
    ap.add_argument("--store-spans", type=int, default=200_000)
    a = ap.parse_args()
    print(f"cores: {os.cpu_count()}, runs: {a.runs} (medians)")
    lines = bench_lines(a.lines, a.runs)
    raw = bench_raw_insert(a.lines)
    record(
        "stdout lines ingested, wall",
        lines["lines/s"],
        "lines/s",
        baseline=raw,
        baseline_name="raw DuckDB insert",
        target=">= 50,000 lines/s",
        note=f"wc -l {lines['wc -l lines/s']:,.0f}/s",
    )
    record(
        "stdout lines per collector CPU-second",
        lines["lines/cpu-s"],
        "lines/s",
        baseline=raw,
        baseline_name="raw DuckDB insert",
        target=">= 50,000 lines/s",
    )
    record(
        "collector stop after an ingest",
        lines["stop s"] * 1000,
        "ms",
        target="< 2000 ms",
        note="SIGTERM to exit, store flushed",
    )
    spans = bench_spans(a.spans, a.runs)
    record(
        "OTLP/HTTP protobuf spans, wall",
        spans["spans/s"],
        "spans/s",
        baseline=raw,
        baseline_name="raw DuckDB insert",
        target=">= 20,000 spans/s",
    )
    record(
        "spans per collector CPU-second",
        spans["spans/cpu-s"],
        "spans/s",
        baseline=raw,
        baseline_name="raw DuckDB insert",
        target=">= 20,000 spans/s",
    )
    record(
        "span metrics queryable after export",
        bench_span_metrics(a.runs) * 1000,
        "ms",
        target="< 6000 ms",
        note="200 OK to PromQL answering",
    )
    for k, v in bench_queries(a.store_logs, a.store_spans, max(5, a.runs)).items():
        if k.endswith(" ms"):
            record(k[:-3], v, "ms", target="< 300 ms")
        else:
            record(k.replace(" MB", ""), v, "MB", target="< 150 MB")


if __name__ == "__main__":
    main()
