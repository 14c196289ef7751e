"""Collector benchmarks: ingest throughput, query latency over a large store, RSS.

    python benchmarks/bench_collector.py [--runs 3] [--lines 300000] [--spans 100000]
        [--load-spans 1000000] [--single-seconds 20] [--only ingest|concurrency|flush] [--baseline-src DIR]
        [--flushes 30] [--trickle-seconds 30]

Concurrency (issue 8): OTLP/HTTP senders in their own processes, batches of 100 spans with unique trace ids
(5 spans per trace), retrying 429/503: spans/s acknowledged with zero loss (stored == acknowledged, exact)
with 1 sender and with 4 (target: 4 >= 1), ``legible traces --slowest 10`` latency under the 4-sender load
vs idle (target < 3x), the queries behind ``legible traces``/``traces --slowest 10``/``legible logs`` after
1M spans / 200k traces, peak collector RSS (target < 400 MB), the slowest answer to a malformed payload
sent during the load (HTTP and gRPC; target < 1 s), a kept-alive request's latency (TCP_NODELAY), and a
raw DuckDB Arrow insert of span rows in the same run.

Targets (issue 3): >= 50,000 stdout lines/s and >= 20,000 OTLP/HTTP protobuf spans/s on one core with
nothing dropped; queries over 1M log lines and 200k spans well under 300 ms; collector RSS < 150 MB.
Baselines measured in the same run: reading and counting the lines of the file (``wc -l``), and a raw
DuckDB Arrow insert of equivalent rows.

Ingest per collector CPU-second (issue 12): >= 80,000 stdout lines and >= 50,000 OTLP/HTTP spans, every
row counted back. ``--baseline-src DIR`` runs another collector (a directory holding its ``legible``
package, e.g. ``git archive <rev> legible | tar -x -C DIR``) alternately with this one and reports the
ratio: ``--only ingest --runs 5 --baseline-src DIR`` runs just that part.

Fixed cost per flush (issue 12, many stacks logging a little): ``--only flush`` measures the process CPU of one
``Writer.flush`` of 1, 10, 100, 1,000 and 20,000 log rows and span rows (file store, medians of ``--flushes``),
and the collector's CPU over ``--trickle-seconds`` while an app writes 20 stdout lines/s and sends 5 OTLP
spans/s (every row counted back), and idle over the same time; with ``--baseline-src DIR`` alternately.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import json
import multiprocessing
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
import grpc
import psutil
import pyarrow as pa
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import record, venv_env  # noqa: E402

from legible.collector._writer import SPAN_COLUMNS, _arrow, _insert_sql  # noqa: E402
from legible.queries.logs import log_groups, make_filter  # noqa: E402
from legible.queries.traces import list_traces, make_trace_filter  # noqa: E402
from legible.store import migrate, open_store, read_token, store_path, template_sql  # noqa: E402

WT = "bench-00000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    def __init__(self, root: Path, vm_url: str = "", src: Path = REPO) -> None:
        self.src = src  # the directory holding the ``legible`` package the collector runs from
        self.state = root / ".legible"
        self.logs = self.state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.db = store_path(self.state)
        self.vm_url = vm_url

    def start(self) -> Collector:
        self.http, self.grpc = free_port(), free_port()
        self.p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "legible.collector",
                f"--http-port={self.http}",
                f"--grpc-port={self.grpc}",
                f"--db={self.db}",
                f"--logs-dir={self.logs}",
                f"--worktree={WT}",
                "--max-db-mb=4096",
                f"--token-file={self.state / 'collector.token'}",
                *([f"--vm-url={self.vm_url}"] if self.vm_url else []),
            ],
            cwd=self.src,
            env=venv_env({"MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(self.src)}),  # as the service plan
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
        self.auth = {"Authorization": f"Bearer {read_token(self.state)}"}
        return self

    def count(self, table: str, what: str = "count(*)") -> int:
        r = requests.post(
            f"{self.url}/query", json={"sql": f"SELECT {what} FROM {table}"}, headers=self.auth, timeout=60
        )
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


#: Seconds between the bench's row counts while it waits for an ingest: each count is a ``/query`` the
#: collector answers, on the collector's CPU, so it is kept rare enough not to weigh on the ingest figure.
POLL_S = 0.1


def bench_lines(n: int, runs: int, src: Path = REPO) -> dict[str, float]:
    data = make_lines(n)
    rates, cpu_rates, wc_rates, stops = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            col = Collector(Path(tmp), src=src).start()
            cpu0 = col.cpu()
            t0 = time.perf_counter()
            (col.logs / "app.log").write_bytes(data)
            while col.count("logs") < n:
                time.sleep(POLL_S)
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


def bench_spans(n: int, runs: int, batch: int = 512, src: Path = REPO) -> dict[str, float]:
    bodies = [span_request(batch, s) for s in range(8)]
    nreq = n // batch
    rates, cpu_rates = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            col = Collector(Path(tmp), src=src).start()
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
                        if r.status_code not in (429, 503):  # queue full / failing: retry, as exporters do
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
                time.sleep(POLL_S)
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
        out["collector RSS MB (holding the store, at once after queries)"] = col.proc.memory_info().rss / 2**20
        # what it keeps holding: DuckDB's allocator returns what the queries freed within about a second
        # (allocator_background_threads, see legible.collector._writer)
        time.sleep(2.0)
        out["collector RSS MB (holding the store, 2 s after queries)"] = col.proc.memory_info().rss / 2**20
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


# ---- concurrency: several senders, zero loss, queries under load (issue 8) ----------------------------


def unique_spans_template(sender: int) -> tuple[bytes, bytes]:
    """A 100-span request whose 20 trace ids share one 12-byte prefix; replacing it makes the traces new."""
    prefix = b"\xa5\x5a" * 6
    now = time.time_ns()
    rnd = random.Random(sender)
    spans = []
    for i in range(100):
        t = i // 5
        trace_id = prefix + t.to_bytes(4, "big")
        dur = int(rnd.expovariate(1 / 50e6))
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=rnd.randbytes(8),
                parent_span_id=b"" if i % 5 == 0 else rnd.randbytes(8),
                name="GET /api/items/{id}" if i % 5 == 0 else "SELECT items",
                kind=2 if i % 5 == 0 else 3,
                start_time_unix_nano=now - dur,
                end_time_unix_nano=now,
                status=Status(code=2 if i % 50 == 0 else 0),
                attributes=[KeyValue(key="http.route", value=AnyValue(string_value="/api/items/{id}"))],
            )
        )
    res = [KeyValue(key="service.name", value=AnyValue(string_value=f"bench-{sender}"))]
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource={"attributes": res}, scope_spans=[ScopeSpans(scope={"name": "bench"}, spans=spans)])
        ]
    )
    return req.SerializeToString(), prefix


def sender_process(url: str, sender: int, deadline: float, max_spans: int) -> tuple[int, int]:
    """Send unique 100-span batches until ``deadline`` (monotonic) or ``max_spans``; return (acked, refused)."""
    body, prefix = unique_spans_template(sender)
    s = requests.Session()
    acked = refused = 0
    k = 0
    while time.monotonic() < deadline and acked < max_spans:
        k += 1
        data = body.replace(prefix, sender.to_bytes(4, "big") + k.to_bytes(8, "big"))
        while True:
            r = s.post(f"{url}/v1/traces", data=data, headers={"Content-Type": "application/x-protobuf"}, timeout=60)
            if r.status_code == 200:
                acked += 100
                break
            if r.status_code not in (429, 503) or not r.headers.get("Retry-After"):
                raise RuntimeError(f"sender {sender}: unexpected {r.status_code}")
            refused += 1
            time.sleep(0.05)
    return acked, refused


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def run_senders(url: str, n: int, seconds: float, max_spans: int) -> tuple[int, int, float]:
    """Run ``n`` sender processes; return (acked spans, refused requests, wall seconds of the sending)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(n, mp_context=ctx) as pool:
        while len(set(pool.map(_pid_after, [0.5] * n))) < n:  # every worker started (spawn imports this module)
            pass
        t0 = time.monotonic()
        futs = [pool.submit(sender_process, url, k, t0 + seconds, max_spans // n) for k in range(n)]
        results = [f.result() for f in futs]
        took = time.monotonic() - t0
    return sum(a for a, _ in results), sum(r for _, r in results), took


def slowest10(store: object) -> float:
    t0 = time.perf_counter()
    res = list_traces(store, make_trace_filter(since="all"), limit=10, slowest=True)  # type: ignore[arg-type]
    assert len(res.traces) == 10
    return (time.perf_counter() - t0) * 1000


def malformed_prober(col: Collector, stop: threading.Event, out: list[float]) -> None:
    """Send malformed payloads (HTTP and gRPC, in turn) until ``stop``; append each answer's latency (s)."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    svc = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
    bad = [
        b"\x0a\xff\xff\xff\xff\x0f",
        b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"resourceSpans": [',
        b"\x1f\x8bnot gzip",
    ]
    s = requests.Session()
    with grpc.insecure_channel(f"127.0.0.1:{col.grpc}") as ch:
        call = ch.unary_unary(f"/{svc}/Export", request_serializer=None, response_deserializer=None)
        i = 0
        while not stop.wait(0.02):
            i += 1
            t0 = time.perf_counter()
            if i % 2:
                try:
                    call(bad[0], timeout=30)
                    raise AssertionError("malformed gRPC accepted")
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.code()
            else:
                body = bad[i // 2 % len(bad)]
                ctype = "application/json" if body.startswith(b"{") else "application/x-protobuf"
                hdrs = {"Content-Type": ctype, **({"Content-Encoding": "gzip"} if body.startswith(b"\x1f") else {})}
                r = s.post(f"{col.url}/v1/traces", data=body, headers=hdrs, timeout=30)
                assert 400 <= r.status_code < 500, r.status_code
            out.append(time.perf_counter() - t0)


def bench_raw_span_insert(n: int = 100_000) -> float:
    """Baseline: span rows/s of the writer's own Arrow ``INSERT ... SELECT`` into an empty spans table."""
    con = duckdb.connect()
    migrate(con)
    now = time.time_ns()
    row = (
        "a" * 32,
        "b" * 16,
        None,
        None,
        "bench",
        "GET /api/items/{id}",
        "server",
        now,
        now + 10**6,
        1.0,
        "unset",
        None,
        '{"http.route":"/api/items/{id}"}',
        '{"service.name":"bench"}',
        "bench",
        "[]",
        "[]",
        None,
        None,
        now,
    )
    rows = [row] * n
    t0 = time.perf_counter()
    for i in range(0, n, 5000):  # the writer's batches (FLUSH_ROWS)
        con.register("_batch_spans", _arrow(SPAN_COLUMNS, rows[i : i + 5000], i))
        con.execute(_insert_sql("spans", SPAN_COLUMNS)).fetchall()
        con.unregister("_batch_spans")
    return n / (time.perf_counter() - t0)


def keepalive_ms(col: Collector, n: int = 200) -> float:
    body = span_request(1, 99)
    s = requests.Session()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = s.post(f"{col.url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200
    return statistics.median(times) * 1000


def bench_concurrency(load_spans: int, single_seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:  # one sender, fixed time
        col = Collector(Path(tmp)).start()
        out["keep-alive POST /v1/traces ms (median)"] = keepalive_ms(col, 200)
        while col.count("spans") < 200:
            time.sleep(0.05)
        base = col.count("spans")
        acked, refused, took = run_senders(col.url, 1, single_seconds, 10**9)
        while col.count("spans") - base < acked:
            time.sleep(0.1)
        assert col.count("spans") - base == acked, "1 sender: stored != acknowledged"
        out["1 sender: spans/s acknowledged, zero loss"] = acked / took
        out["1 sender: refused (429/503) requests"] = refused
        col.stop()
    with tempfile.TemporaryDirectory() as tmp:  # four senders up to load_spans, queries and malformed probes meanwhile
        col = Collector(Path(tmp)).start()
        store = open_store(col.state, col.url, worktree=WT)
        stop = threading.Event()
        peak = [0]
        lat_load: list[float] = []
        bad_lat: list[float] = []

        def watch() -> None:
            while not stop.wait(0.25):
                peak[0] = max(peak[0], col.proc.memory_info().rss)

        def query_loop() -> None:
            while not stop.wait(0.5):
                try:
                    lat_load.append(slowest10(store))
                except AssertionError:
                    pass  # fewer than 10 traces yet

        threads = [threading.Thread(target=f) for f in (watch, query_loop)]
        threads.append(threading.Thread(target=malformed_prober, args=(col, stop, bad_lat)))
        for t in threads:
            t.start()
        acked, refused, took = run_senders(col.url, 4, 3600, load_spans)
        stop.set()
        for t in threads:
            t.join()
        t0 = time.monotonic()
        while col.count("spans") < acked:
            time.sleep(0.1)
        drain = time.monotonic() - t0
        stored = col.count("spans")
        assert stored == acked, f"4 senders: stored {stored} != acknowledged {acked}"
        out["4 senders: spans/s acknowledged, zero loss"] = acked / took
        out["4 senders: refused (429/503) requests"] = refused
        out["4 senders: spans stored"] = stored
        out["4 senders: distinct traces stored"] = col.count("spans", "count(DISTINCT trace_id)")
        out["4 senders: seconds from last ack to all stored"] = drain
        out["collector peak RSS MB under load"] = peak[0] / 2**20
        out["malformed payloads answered during the load"] = len(bad_lat)
        out["malformed: slowest answer s"] = max(bad_lat) if bad_lat else float("nan")
        out["traces --slowest 10 under load ms (median)"] = statistics.median(lat_load)
        idle = [slowest10(store) for _ in range(7)]
        out["traces --slowest 10 idle, same store ms (median)"] = statistics.median(idle)
        for name, fn in (
            ("legible traces", lambda: list_traces(store, make_trace_filter(since="all"), limit=20)),
            ("legible logs", lambda: log_groups(store, make_filter(since="all"))),
        ):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[f"{name} query after the load ms (median)"] = statistics.median(times) * 1000
        out["collector RSS MB after the queries"] = col.proc.memory_info().rss / 2**20
        time.sleep(2.0)  # what it keeps holding (see bench_queries)
        out["collector RSS MB 2 s after the queries"] = col.proc.memory_info().rss / 2**20
        col.stop()
    out["raw DuckDB Arrow insert, span rows/s"] = bench_raw_span_insert()
    return out


# Flushes batches of each size into a file store with the real Writer of the ``legible`` on sys.path (its flush
# thread not started: ``flush`` runs here) and prints the median process CPU (all threads) per flush, in ms.
FLUSH_SCRIPT = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
from legible.collector._writer import Writer
sizes, flushes = json.loads(sys.argv[1]), int(sys.argv[2])
def logs(n, k):
    kinds = ("GET /api/items/{} 200 took {} ms", "cache lookup key=item:{} hit={}", "slow request {} took {} ms")
    return [(10**18 + i, 10**18 + i, "shop", "info", 9, None, kinds[i % 3].format(k * n + i, i % 7),
             '{"http.route": "/x"}', '{"service.name": "shop"}', "app", None, None, "stdout") for i in range(n)]
def spans(n, k):
    return [(f"{k:016x}{i:016x}", f"{i:016x}", None, None, "shop", "GET /api/items/{id}", "SERVER", 10**18,
             10**18 + 5 * 10**6, 5.0, "UNSET", None, '{"http.route": "/api/items/{id}"}', '{"service.name": "shop"}',
             "bench", "[]", "[]", None, None, 10**18) for i in range(n)]
out = {}
with tempfile.TemporaryDirectory() as d:
    w = Writer(Path(d) / "s.duckdb")
    for table, make in (("logs", logs), ("spans", spans)):
        for n in sizes:
            k = max(3, min(flushes, 100_000 // n))
            cpu = []
            for j in range(k + 2):  # the first two warm up
                w.add(table, make(n, j))
                t0 = time.process_time()
                w.flush()
                cpu.append(time.process_time() - t0)
            out[f"{table} {n}"] = statistics.median(cpu[2:]) * 1000
            assert w.pending == 0, "rows left queued"
    assert w.con.execute("SELECT count(*) FROM logs WHERE template IS NULL OR group_id IS NULL").fetchone()[0] == 0
    w.close()
print(json.dumps(out))
"""
FLUSH_SIZES = (1, 10, 100, 1000, 20_000)


def bench_flush_cpu(src: Path, flushes: int) -> dict[str, float]:
    """CPU ms per flush of the Writer at ``src``, per ``"<table> <rows>"`` (see :data:`FLUSH_SCRIPT`)."""
    out = subprocess.run(
        [sys.executable, "-c", FLUSH_SCRIPT, str(list(FLUSH_SIZES)), str(flushes)],
        cwd=src,
        env=venv_env({"PYTHONPATH": str(src), "MALLOC_ARENA_MAX": "2"}),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    doc: dict[str, float] = json.loads(out.stdout)
    return doc


def bench_trickle(src: Path, seconds: float, lines_per_s: int = 20, spans_per_s: int = 5) -> float:
    """Collector CPU-seconds while an app trickles ``lines_per_s`` stdout lines and ``spans_per_s`` OTLP spans.

    One line every ``1/lines_per_s`` s appended to a tailed file, one span per OTLP/HTTP request every
    ``1/spans_per_s`` s, for ``seconds``; every row is then counted back (zero loss). With ``lines_per_s`` and
    ``spans_per_s`` 0 it measures the idle collector over the same time.
    """
    with tempfile.TemporaryDirectory() as tmp:
        col = Collector(Path(tmp), src=src).start()
        s = requests.Session()
        bodies = [span_request(1, k) for k in range(int(seconds * spans_per_s) + 1)]
        data = make_lines(int(seconds * lines_per_s) + 1).splitlines(keepends=True)
        lines = spans = 0
        cpu0 = col.cpu()
        t0 = time.monotonic()
        with open(col.logs / "app.log", "ab") as f:
            while (now := time.monotonic() - t0) < seconds:
                while lines_per_s and lines < now * lines_per_s:
                    f.write(data[lines])
                    f.flush()
                    lines += 1
                while spans_per_s and spans < now * spans_per_s:
                    r = s.post(
                        f"{col.url}/v1/traces",
                        data=bodies[spans],
                        headers={"Content-Type": "application/x-protobuf"},
                        timeout=30,
                    )
                    assert r.status_code == 200, r.status_code
                    spans += 1
                time.sleep(0.01)
        time.sleep(0.5)  # the last flush (every 0.2 s)
        cpu = col.cpu() - cpu0
        end = time.monotonic() + 30
        while (col.count("logs"), col.count("spans")) != (lines, spans) and time.monotonic() < end:
            time.sleep(POLL_S)
        assert (col.count("logs"), col.count("spans")) == (lines, spans), "rows lost or duplicated"
        col.stop()
    return cpu


def bench_flush(runs: int, flushes: int, seconds: float, baseline_src: Path | None) -> None:
    """CPU per flush by batch size and a trickling app's collector CPU, against ``baseline_src`` (alternately)."""
    srcs = [("now", REPO)] + ([("base", baseline_src)] if baseline_src is not None else [])
    per: dict[str, list[dict[str, float]]] = {k: [] for k, _ in srcs}
    trickle: dict[str, list[float]] = {k: [] for k, _ in srcs}
    idle: dict[str, list[float]] = {k: [] for k, _ in srcs}
    for run in range(runs):  # alternate, so a burst of load from elsewhere hits both sides alike
        for name, src in srcs if run % 2 == 0 else srcs[::-1]:
            per[name].append(bench_flush_cpu(src, flushes))
            trickle[name].append(bench_trickle(src, seconds))
    for name, src in srcs:
        idle[name].append(bench_trickle(src, seconds, 0, 0))
    base = "base" if baseline_src is not None else None
    for key in per["now"][0]:
        now = statistics.median(r[key] for r in per["now"])
        old = statistics.median(r[key] for r in per[base]) if base else None
        record(f"writer flush CPU, {key} rows", now, "ms", baseline=old, baseline_name=f"{baseline_src}")
    for name, rs in (("trickle", trickle), ("idle", idle)):
        record(
            f"collector CPU, {name} ({seconds:.0f} s{', 20 lines/s + 5 spans/s' if name == 'trickle' else ''})",
            statistics.median(rs["now"]) * 1000,
            "ms",
            baseline=statistics.median(rs[base]) * 1000 if base else None,
            baseline_name=f"{baseline_src}",
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--store-logs", type=int, default=1_000_000)
    ap.add_argument("--store-spans", type=int, default=200_000)
    ap.add_argument("--load-spans", type=int, default=1_000_000)
    ap.add_argument("--single-seconds", type=float, default=20.0)
    ap.add_argument("--only", choices=["concurrency", "ingest", "flush"], default=None, help="run one part only")
    ap.add_argument("--flushes", type=int, default=30, help="flushes per batch size (--only flush)")
    ap.add_argument("--trickle-seconds", type=float, default=30.0, help="seconds of trickle (--only flush)")
    ap.add_argument(
        "--baseline-src", type=Path, default=None, help="a directory with another legible package to compare ingest"
    )
    a = ap.parse_args()
    print(f"cores: {os.cpu_count()}, runs: {a.runs} (medians)")
    if a.only == "ingest":
        bench_ingest(a.lines, a.spans, a.runs, a.baseline_src)
        return
    if a.only == "flush":
        bench_flush(a.runs, a.flushes, a.trickle_seconds, a.baseline_src)
        return
    conc = bench_concurrency(a.load_spans, a.single_seconds)
    for k, v in conc.items():
        print(f"{k}: {v:,.3f}" if v < 10 else f"{k}: {v:,.0f}")
    one, four = conc["1 sender: spans/s acknowledged, zero loss"], conc["4 senders: spans/s acknowledged, zero loss"]
    q_load, q_idle = (
        conc["traces --slowest 10 under load ms (median)"],
        conc["traces --slowest 10 idle, same store ms (median)"],
    )
    print(
        f"4 senders / 1 sender: x{four / one:.2f} (target >= 1); slowest-10 under load / idle: "
        f"x{q_load / q_idle:.2f} (target < 3); raw DuckDB insert / 4 senders: "
        f"x{conc['raw DuckDB Arrow insert, span rows/s'] / four:.1f}"
    )
    if a.only == "concurrency":
        return
    bench_ingest(a.lines, a.spans, a.runs, a.baseline_src)
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


def bench_ingest(n_lines: int, n_spans: int, runs: int, baseline_src: Path | None = None) -> None:
    """Stdout lines and OTLP/HTTP spans per second and per collector CPU-second (issue 12: 80k and 50k).

    Baselines in the same run: a raw DuckDB Arrow insert of equivalent rows, and, with ``baseline_src`` (a
    directory holding another ``legible`` package, e.g. ``git archive <rev> legible | tar -x -C DIR``), the
    same measurements of that collector, run alternately with this one so both see the same machine load.
    """
    lines_runs: list[dict[str, float]] = []
    spans_runs: list[dict[str, float]] = []
    base_lines: list[dict[str, float]] = []
    base_spans: list[dict[str, float]] = []
    for _ in range(runs):  # alternate, so a burst of load from elsewhere hits both sides alike
        lines_runs.append(bench_lines(n_lines, 1))
        if baseline_src is not None:
            base_lines.append(bench_lines(n_lines, 1, src=baseline_src))
        spans_runs.append(bench_spans(n_spans, 1))
        if baseline_src is not None:
            base_spans.append(bench_spans(n_spans, 1, src=baseline_src))

    def med(rs: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rs)

    raw = bench_raw_insert(n_lines)
    raw_spans = bench_raw_span_insert()
    old = f"collector at {baseline_src}" if baseline_src is not None else ""
    record(
        "stdout lines ingested, wall",
        med(lines_runs, "lines/s"),
        "lines/s",
        baseline=raw,
        baseline_name="raw DuckDB insert",
        target=">= 50,000 lines/s",
        note=f"wc -l {med(lines_runs, 'wc -l lines/s'):,.0f}/s",
    )
    for name, rs, key, unit, target, raw_rate, raw_name in (
        ("stdout lines per collector CPU-second", lines_runs, "lines/cpu-s", "lines/s", ">= 80,000 lines/s", raw, ""),
        ("spans per collector CPU-second", spans_runs, "spans/cpu-s", "spans/s", ">= 50,000 spans/s", raw_spans, ""),
    ):
        base = base_lines if rs is lines_runs else base_spans
        record(
            name,
            med(rs, key),
            unit,
            baseline=med(base, key) if base else raw_rate,
            baseline_name=old or "raw DuckDB insert",
            target=target,
            note=f"raw DuckDB insert {raw_rate:,.0f}/s" if base else raw_name,
        )
    record(
        "collector stop after an ingest",
        med(lines_runs, "stop s") * 1000,
        "ms",
        target="< 2000 ms",
        note="SIGTERM to exit, store flushed",
    )
    record(
        "OTLP/HTTP protobuf spans, wall",
        med(spans_runs, "spans/s"),
        "spans/s",
        baseline=raw_spans,
        baseline_name="raw DuckDB Arrow insert of span rows",
        target=">= 20,000 spans/s",
    )


if __name__ == "__main__":
    main()
