"""End-to-end tests of the collector: a real VictoriaMetrics, the real collector process, the real
OpenTelemetry SDK exporters (HTTP and gRPC), raw requests for malformed payloads, real log files."""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from legible.store import open_store

from .conftest import wait_until

REPO = Path(__file__).resolve().parent.parent
VM_BIN = "/usr/bin/victoria-metrics"
WT = "wt-test-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
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
    """A collector process started on free ports."""

    def __init__(self, root: Path, vm_url: str, max_db_mb: int = 512, extra: tuple[str, ...] = ()) -> None:
        self.root = root
        self.state = root / ".legible"
        self.db = self.state / "data" / "signals.duckdb"
        self.logs = self.state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.vm_url = vm_url
        self.max_db_mb = max_db_mb
        self.extra = list(extra)
        self.p: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> Proc:
        """Start the collector; with ``wait``, return once ``/health`` answers 200."""
        self.http, self.grpc = free_port(), free_port()
        self.stderr = open(self.state / "collector.stderr", "ab")  # noqa: SIM115
        self.p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "legible.collector",
                f"--http-port={self.http}",
                f"--grpc-port={self.grpc}",
                f"--db={self.db}",
                f"--logs-dir={self.logs}",
                f"--vm-url={self.vm_url}",
                f"--worktree={WT}",
                f"--max-db-mb={self.max_db_mb}",
                f"--token-file={self.state / 'collector.token'}",
                *self.extra,
            ],
            cwd=REPO,
            stderr=self.stderr,
            env={**os.environ, "PYTHONPATH": str(REPO), "MALLOC_ARENA_MAX": "2"},  # as the service plan
        )
        if wait:
            wait_http(f"{self.url}/health")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def stop(self) -> float:
        assert self.p is not None
        t0 = time.monotonic()
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(10)
        took = time.monotonic() - t0
        self.stderr.close()
        assert rc == 0, (self.state / "collector.stderr").read_text()
        return took

    def store(self):
        return open_store(self.state, self.url, worktree=WT)

    def kill(self) -> None:
        """SIGKILL the collector if it still runs (a test's clean-up after a failed assertion)."""
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)
            self.stderr.close()

    def q(self, sql: str, params: Any = None) -> list[tuple]:
        return self.store().query(sql, params).rows


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(VM_BIN).exists():
        pytest.skip("victoria-metrics is not installed")
    port = free_port()
    data = tmp_path_factory.mktemp("vm")
    p = subprocess.Popen(
        [
            VM_BIN,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={data}",
            "-search.latencyOffset=1s",
            "-loggerLevel=ERROR",
            "-memory.allowedBytes=128MiB",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health")
    yield url
    p.terminate()
    p.wait(10)


@pytest.fixture(scope="module")
def col(vm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = Proc(tmp_path_factory.mktemp("wt"), vm).start()
    yield proc
    if proc.p and proc.p.poll() is None:
        proc.stop()


def promql(vm: str, query: str) -> list[dict]:
    r = requests.get(f"{vm}/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


# ---- OTLP through the real SDK ------------------------------------------------------------------


def _tracer_provider(service: str, exporter: Any):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tp = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def _emit_trace(tp: Any, tag: str) -> tuple[str, str]:
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    tracer = tp.get_tracer("test.scope")
    with tracer.start_as_current_span(
        f"GET /{tag}", kind=SpanKind.SERVER, attributes={"http.route": f"/{tag}", "n": 3}
    ) as root:
        ctx = root.get_span_context()
        with tracer.start_as_current_span("charge", links=[Link(ctx, {"why": "test"})]) as child:
            try:
                raise ValueError(f"card declined {tag}")
            except ValueError as e:
                child.record_exception(e)
                child.set_status(Status(StatusCode.ERROR, "declined"))
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_spans_are_stored_with_everything(col: Proc, transport: str) -> None:
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exp = OTLPSpanExporter(endpoint=f"{col.url}/v1/traces")
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exp = OTLPSpanExporter(endpoint=f"127.0.0.1:{col.grpc}", insecure=True)
    tp = _tracer_provider(f"svc-{transport}", exp)
    trace_id, root_id = _emit_trace(tp, transport)
    tp.shutdown()

    rows = wait_until(
        lambda: (
            col.q(
                "SELECT name, kind, parent_span_id, status_code, status_message, exception_type, exception_message, "
                "attributes->>'http.route', resource->>'service.name', service, scope, json_array_length(links), "
                "events->0->'attributes'->>'exception.stacktrace', duration_ms FROM spans WHERE trace_id = ? "
                "ORDER BY start_ns",
                [trace_id],
            )
            if len(col.q("SELECT 1 FROM spans WHERE trace_id = ?", [trace_id])) == 2
            else None
        )
    )
    root, child = rows
    assert root[:4] == (f"GET /{transport}", "server", None, "unset")
    assert root[7:11] == (f"/{transport}", f"svc-{transport}", f"svc-{transport}", "test.scope")
    assert child[2] == root_id
    assert child[3:7] == ("error", "declined", "ValueError", f"card declined {transport}")
    assert child[11] == 1 and "Traceback" in child[12]
    assert child[13] >= 0


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_logs_join_their_span(col: Proc, transport: str) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exp = OTLPLogExporter(endpoint=f"{col.url}/v1/logs")
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        exp = OTLPLogExporter(endpoint=f"127.0.0.1:{col.grpc}", insecure=True)
    lp = LoggerProvider(resource=Resource.create({"service.name": f"logsvc-{transport}"}))
    lp.add_log_record_processor(SimpleLogRecordProcessor(exp))
    logger = lp.get_logger("test.otlp")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    tp = _tracer_provider(f"logsvc-{transport}", OTLPSpanExporter(endpoint=f"{col.url}/v1/traces"))
    with tp.get_tracer("t").start_as_current_span("work") as span:
        logger.emit(
            severity_number=SeverityNumber.WARN,
            severity_text="WARNING",
            body="payment 42 failed",
            attributes={"order.id": "o-1"},
        )
        trace_id = f"{span.get_span_context().trace_id:032x}"
    lp.shutdown()
    tp.shutdown()
    rows = wait_until(
        lambda: col.q(
            "SELECT l.level, l.body, l.severity_number, l.attributes->>'order.id', l.source, s.name, l.service "
            "FROM logs l JOIN spans s ON s.trace_id = l.trace_id AND s.span_id = l.span_id WHERE l.trace_id = ?",
            [trace_id],
        )
    )
    assert rows == [("warn", "payment 42 failed", 13, "o-1", "otlp", "work", f"logsvc-{transport}")]


def test_sdk_metrics_and_span_metrics_reach_victoria_metrics(col: Proc, vm: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{col.url}/v1/metrics"), export_interval_millis=60_000
    )
    mp = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "metricsvc"}))
    meter = mp.get_meter("m")
    meter.create_counter("shop.orders", unit="{order}").add(5, {"status": "paid"})
    meter.create_histogram("shop.checkout.duration", unit="ms").record(120.0, {"route": "/checkout"})
    meter.create_up_down_counter("shop.queue.depth").add(7)
    mp.shutdown()

    # spans with known durations: 9 fast (5 ms) and one slow (3 s) of span "pay"
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "spanmetrics"
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(10):
        sp = ss.spans.add(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name="pay",
            kind=2,
            start_time_unix_nano=now,
            end_time_unix_nano=now + (3_000_000_000 if i == 9 else 5_000_000),
        )
        if i == 9:
            sp.status.code = 2
    r = requests.post(
        f"{col.url}/v1/traces",
        data=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=5,
    )
    assert r.status_code == 200
    wl = f'worktree="{WT}"'
    res = wait_until(lambda: promql(vm, f'sum(legible_spans_total{{span_name="pay",{wl}}})'), timeout=15)
    assert float(res[0]["value"][1]) == 10  # how soon: benchmarks/bench_collector.py (span metrics latency)
    p99 = promql(
        vm, f'histogram_quantile(0.99, sum by (vmrange) (legible_span_duration_seconds_bucket{{span_name="pay",{wl}}}))'
    )
    assert 2 <= float(p99[0]["value"][1]) <= 5
    err = promql(vm, f'sum(legible_spans_total{{span_name="pay",status_code="error",{wl}}})')
    assert float(err[0]["value"][1]) == 1
    orders = wait_until(lambda: promql(vm, f'shop_orders_total{{service="metricsvc",{wl}}}'))
    assert float(orders[0]["value"][1]) == 5 and orders[0]["metric"]["status"] == "paid"
    hist = wait_until(lambda: promql(vm, f"shop_checkout_duration_milliseconds_count{{{wl}}}"))
    assert float(hist[0]["value"][1]) == 1
    assert wait_until(lambda: promql(vm, f'shop_checkout_duration_milliseconds_bucket{{le="+Inf",{wl}}}'))
    depth = wait_until(lambda: promql(vm, f"shop_queue_depth{{{wl}}}"))
    assert float(depth[0]["value"][1]) == 7


def test_span_metric_quantiles_are_within_ten_percent_of_the_exact_percentiles(col: Proc, vm: str) -> None:
    """PromQL's histogram_quantile over the derived span histogram against exact percentiles, 0.1 ms .. 30 s.

    With the former fixed 2 ms .. 15 s buckets every case below but the 2-15 ms one was off by more than 10%.
    """
    rng = random.Random(12)
    cases: dict[str, list[float]] = {  # span name -> durations in seconds
        "sub-ms": [rng.uniform(0.0001, 0.0009) for _ in range(400)],
        "fast": [rng.lognormvariate(-5.0, 0.6) for _ in range(600)],  # ~7 ms
        "bimodal": [rng.choice((0.052, 0.094)) * rng.uniform(0.98, 1.02) for _ in range(500)],
        "seconds": [rng.lognormvariate(0.15, 0.3) for _ in range(500)],  # ~1.2 s, the example
        "slow": [rng.uniform(16.0, 30.0) for _ in range(300)],
        "constant": [0.0042] * 200,
    }
    now = time.time_ns()
    for name, durations in cases.items():
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "accuracy"
        ss = rs.scope_spans.add()
        for d in durations:
            ss.spans.add(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name=f"acc {name}",
                kind=2,
                start_time_unix_nano=now,
                end_time_unix_nano=now + round(d * 1e9),
            )
        r = requests.post(
            f"{col.url}/v1/traces",
            data=req.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    sel = f'service="accuracy",worktree="{WT}"'
    total = sum(len(d) for d in cases.values())
    wait_until(
        lambda: (
            promql(vm, f"sum(legible_spans_total{{{sel}}})")
            and float(promql(vm, f"sum(legible_spans_total{{{sel}}})")[0]["value"][1]) == total
        ),
        timeout=20,
    )
    off = []
    worst = 0.0
    for name, durations in cases.items():
        ordered = sorted(durations)
        for q in (0.5, 0.9, 0.99):
            exact = ordered[max(math.ceil(q * len(ordered)) - 1, 0)]  # nearest rank
            promq = (
                f"histogram_quantile({q}, sum by (vmrange) "
                f'(legible_span_duration_seconds_bucket{{span_name="acc {name}",{sel}}}))'
            )
            got = float(promql(vm, promq)[0]["value"][1])
            worst = max(worst, abs(got - exact) / exact)
            if abs(got - exact) > 0.10 * exact:
                off.append(f"{name} p{round(q * 100)}: {got:.6g} s from PromQL, exact {exact:.6g} s")
    print(f"span-metric quantiles: worst relative error {worst:.1%} over {len(cases)} cases x p50/p90/p99")
    assert not off, off


# ---- raw OTLP/HTTP: encodings, partial success, malformed payloads --------------------------------


def _span_request(name: str, n: int = 1, bad: int = 0, attr: str = "v") -> ExportTraceServiceRequest:
    now = time.time_ns()
    spans = [
        Span(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name=name,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1_000_000,
            attributes=[KeyValue(key="a", value=AnyValue(string_value=attr))],
        )
        for _ in range(n)
    ]
    spans += [Span(trace_id=b"\x01" * 3, span_id=os.urandom(8), name=name) for _ in range(bad)]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])


def _count(col: Proc, name: str) -> int:
    return col.q("SELECT count(*) FROM spans WHERE name = ?", [name])[0][0]


def test_json_encoding_with_hex_ids(col: Proc) -> None:
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "s"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "json-span",
                                "kind": 2,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "status": {"code": "STATUS_CODE_ERROR"},
                                "attributes": [{"key": "k", "value": {"intValue": "42"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    r = requests.post(f"{col.url}/v1/traces", json=doc, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {}
    rows = wait_until(
        lambda: col.q(
            "SELECT trace_id, span_id, parent_span_id, service, duration_ms, status_code, "
            "attributes->>'k' FROM spans WHERE name = 'json-span'"
        )
    )
    assert rows == [
        ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173", "js", 1000.0, "error", "42")
    ]


def test_gzip_and_partial_success(col: Proc) -> None:
    body = gzip.compress(_span_request("gz-span", n=3, bad=2).SerializeToString())
    r = requests.post(
        f"{col.url}/v1/traces",
        data=body,
        timeout=5,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 2 and resp.partial_success.error_message
    wait_until(lambda: _count(col, "gz-span") == 3)


def test_all_zero_ids_are_no_ids(col: Proc) -> None:
    """W3C Trace Context: an all-zero id is invalid. A span with one is refused and counted (partial success);
    an all-zero parent is no parent (a root span); a log record's all-zero ids are stored as NULL, not joined."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

    now = time.time_ns()
    trace, good = os.urandom(16), os.urandom(8)

    def span(name: str, trace_id: bytes, span_id: bytes, parent: bytes = b"") -> Span:
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1000,
        )

    spans = [
        span("zero-ids-trace", bytes(16), good),
        span("zero-ids-span", trace, bytes(8)),
        span("zero-ids-root", trace, good, parent=bytes(8)),
    ]
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    pb = {"Content-Type": "application/x-protobuf"}
    r = requests.post(f"{col.url}/v1/traces", data=req.SerializeToString(), headers=pb, timeout=5)
    assert r.status_code == 200
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 2 and "all-zero" in resp.partial_success.error_message
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                time_unix_nano=now,
                                body=AnyValue(string_value="zero-ids-log"),
                                trace_id=bytes(16),
                                span_id=bytes(8),
                            )
                        ]
                    )
                ]
            )
        ]
    )
    r = requests.post(f"{col.url}/v1/logs", data=logs.SerializeToString(), headers=pb, timeout=5)
    assert r.status_code == 200 and not ExportLogsServiceResponse.FromString(r.content).HasField("partial_success")
    rows = wait_until(lambda: col.q("SELECT name, parent_span_id FROM spans WHERE name LIKE 'zero-ids-%'"))
    assert rows == [("zero-ids-root", None)]
    logged = wait_until(lambda: col.q("SELECT trace_id, span_id FROM logs WHERE body = 'zero-ids-log'"))
    assert logged == [(None, None)]


def test_malformed_payloads_are_4xx_counted_and_harmless(col: Proc) -> None:
    url = f"{col.url}/v1/traces"
    pb = {"Content-Type": "application/x-protobuf"}
    good = _span_request("fuzz-good").SerializeToString()
    cases: list[tuple[str, bytes, dict[str, str], int]] = [
        ("truncated protobuf", good[: len(good) // 2], pb, 400),
        ("wrong content type", good, {"Content-Type": "text/plain"}, 415),
        ("no content type", good, {"Content-Type": ""}, 415),
        ("unknown encoding", good, {**pb, "Content-Encoding": "br"}, 415),
        ("bad gzip", b"\x1f\x8bnot gzip at all", {**pb, "Content-Encoding": "gzip"}, 400),
        ("invalid json", b'{"resourceSpans": [', {"Content-Type": "application/json"}, 400),
        (
            "json bad hex id",
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).encode(),
            {"Content-Type": "application/json"},
            400,
        ),
        ("invalid utf-8 in a string field", _span_request("x").SerializeToString().replace(b"x", b"\xff\xfe"), pb, 400),
        ("gzip bomb", gzip.compress(b"\0" * (40 * 1024 * 1024)), {**pb, "Content-Encoding": "gzip"}, 413),
    ]
    for what, body, headers, code in cases:
        r = requests.post(url, data=body, headers=headers, timeout=10)
        assert r.status_code == code, what
    # too large: the answer comes without the body being read
    with socket.create_connection(("127.0.0.1", col.http), timeout=5) as s:
        s.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 999999999\r\n\r\n"
        )
        assert s.recv(100).startswith(b"HTTP/1.1 413")
    rng = random.Random(7)
    for _ in range(200):  # random mutations of a valid message: never a 5xx
        b = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        r = requests.post(url, data=bytes(b), headers=pb, timeout=5)
        assert r.status_code in (200, 400), r.status_code
    r = requests.post(f"{col.url}/v1/logs", data=b"\x0a\xff\xff\xff\xff\x0f", headers=pb, timeout=5)
    assert r.status_code == 400
    # huge attribute: accepted, cut
    r = requests.post(
        url, data=_span_request("fuzz-huge", attr="x" * 1_000_000).SerializeToString(), headers=pb, timeout=10
    )
    assert r.status_code == 200
    r = requests.post(url, data=good, headers=pb, timeout=5)
    assert r.status_code == 200
    assert requests.get(f"{col.url}/health", timeout=2).status_code == 200
    wait_until(lambda: _count(col, "fuzz-good") >= 1)
    (v,) = wait_until(lambda: col.q("SELECT attributes->>'a' FROM spans WHERE name = 'fuzz-huge'"))[0]
    assert len(v) < 5000 and v.endswith("bytes]")
    metrics = requests.get(f"{col.url}/metrics", timeout=2).text
    for reason in ("decode", "content_type", "too_large", "content_encoding"):
        assert f'legible_collector_rejected_total{{reason="{reason}",signal="traces"}}' in metrics, reason


def test_grpc_rejects_garbage_and_stays_up(col: Proc) -> None:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{col.grpc}") as ch:
        call = ch.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=None,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as e:
            call(b"\x0a\xff\xff\xff", timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert call(b"", timeout=5) == ExportLogsServiceResponse()


def test_query_endpoint_is_read_only_and_guarded(col: Proc) -> None:
    token_file = col.state / "collector.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    q = f"{col.url}/query"
    r = requests.post(q, json={"sql": "DELETE FROM logs"}, headers=auth, timeout=5)
    assert r.status_code == 400 and "only SELECT" in r.json()["error"]
    r = requests.post(q, json={"sql": "SELECT 1", "worktree": "someone-else"}, headers=auth, timeout=5)
    assert r.status_code == 409
    res = col.store().query("SELECT * FROM range(20000)")
    assert res.source == "collector" and res.truncated and len(res.rows) == 10_000
    # least privilege: no token, a wrong one, a form a web page could post, a rebinding Host
    assert requests.post(q, json={"sql": "SELECT 1"}, timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert requests.post(q, json={"sql": "SELECT 1"}, headers=wrong, timeout=5).status_code == 401
    plain = {**auth, "Content-Type": "text/plain"}
    assert requests.post(q, data=json.dumps({"sql": "SELECT 1"}), headers=plain, timeout=5).status_code == 415
    for host in (f"evil.example:{col.http}", "127.0.0.1", f"127.0.0.1.nip.io:{col.http}"):
        r = requests.post(q, json={"sql": "SELECT 1"}, headers={**auth, "Host": host}, timeout=5)
        assert r.status_code == 403, host
    assert requests.get(f"{col.url}/status", timeout=5).status_code == 401
    assert requests.post(f"{col.url}/flush", timeout=5).status_code == 401
    assert requests.get(f"{col.url}/health", headers={"Host": f"evil.example:{col.http}"}, timeout=5).status_code == 403
    ok = requests.post(q, json={"sql": "SELECT 42"}, headers={**auth, "Host": f"localhost:{col.http}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["rows"] == [[42]]
    # DuckDB returns what queries freed to the system in the background (issue 12: RSS after queries)
    bg_sql = "SELECT current_setting('allocator_background_threads')"
    bg = requests.post(q, json={"sql": bg_sql}, headers=auth, timeout=5)
    assert bg.status_code == 200 and bg.json()["rows"] == [[True]]
    # SQL reads the store and nothing else, through the collector and from the file alike
    outside = col.root / "outside.csv"
    outside.write_text("secret\n1\n")
    for sql in (
        f"SELECT * FROM read_text('{outside}')",
        f"SELECT * FROM read_csv('{outside}')",
        f"SELECT * FROM glob('{col.root}/*')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT current_setting('enable_external_access')",
    ):
        r = requests.post(q, json={"sql": sql}, headers=auth, timeout=5)
        if "current_setting" in sql:
            assert r.status_code == 200 and r.json()["rows"] == [[False]]
        else:
            assert r.status_code == 400 and "disabled by configuration" in r.json()["error"], sql
    for stmt in (f"ATTACH '{col.root}/other.duckdb'", f"COPY logs TO '{col.root}/out.csv'", "SET threads = 1"):
        r = requests.post(q, json={"sql": stmt}, headers=auth, timeout=5)
        assert r.status_code == 400, stmt
    assert not (col.root / "out.csv").exists() and not (col.root / "other.duckdb").exists()
    metrics = requests.get(f"{col.url}/metrics", timeout=2).text
    for reason in ("unauthorized", "foreign_host"):
        assert f'reason="{reason}"' in metrics, reason


def test_a_store_that_cannot_be_written_makes_health_503_with_the_cause(tmp_path: Path) -> None:
    import grpc

    # a 4 MB buffer pool cannot hold a batch of 2,000 spans with 4 KB attributes: every flush fails
    col = Proc(tmp_path, "", extra=("--memory-limit=4MB",)).start()
    auth = {"Authorization": f"Bearer {(col.state / 'collector.token').read_text().strip()}"}
    pb = {"Content-Type": "application/x-protobuf"}
    body = _span_request("too-big", n=2000, attr="x" * 4000).SerializeToString()
    assert requests.post(f"{col.url}/v1/traces", data=body, headers=pb, timeout=10).status_code == 200

    def health() -> list[requests.Response]:  # a list: a 503 Response is falsy
        r = requests.get(f"{col.url}/health", timeout=5)
        return [r] if r.status_code == 503 else []

    (r,) = wait_until(health, timeout=30)
    assert r.text.startswith("unhealthy: store write failed:") and "Out of Memory" in r.text
    # what the supervisor's liveness probe makes of it (3 in a row and the collector is restarted)
    from legible.services.base import Probe, ServicePlan
    from legible.supervisor import probe_live

    plan = ServicePlan("collector", "collector", [], "/", {}, Probe("http", f"{col.url}/health"), 5.0, [])
    cause = probe_live(plan)
    assert cause.startswith(f"HTTP 503 from {col.url}/health: unhealthy: store write failed: Out of Memory")
    doc = requests.get(f"{col.url}/status", headers=auth, timeout=5).json()
    assert doc["healthy"] is False and "Out of Memory" in doc["error"] and doc["pending"] == 2000
    # nothing more is acknowledged while it fails: 503 + Retry-After, gRPC UNAVAILABLE
    r = requests.post(f"{col.url}/v1/traces", data=_span_request("later").SerializeToString(), headers=pb, timeout=5)
    assert r.status_code == 503 and r.headers["Retry-After"]
    with grpc.insecure_channel(f"127.0.0.1:{col.grpc}") as ch:
        call = ch.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as e:
            call(_span_request("later").SerializeToString(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert requests.get(f"{col.url}/status", headers=auth, timeout=5).json()["refused"]["unhealthy"] == 2
    col.stop()  # what it had acknowledged and could not write is said, with the count
    assert "2000 accepted rows could not be written" in (col.state / "collector.stderr").read_text()


def test_queries_cannot_starve_the_writer(tmp_path: Path) -> None:
    import threading

    col = Proc(tmp_path, "", extra=("--query-timeout=3",)).start()
    endless = "SELECT count(*) FROM range(1000000000000) a"  # would run for hours
    answers: list[requests.Response] = []
    auth = {"Authorization": f"Bearer {(col.state / 'collector.token').read_text().strip()}"}

    def ask() -> None:
        answers.append(requests.post(f"{col.url}/query", json={"sql": endless}, headers=auth, timeout=60))

    askers = [threading.Thread(target=ask) for _ in range(4)]  # more than the query slots
    for t in askers:
        t.start()
    try:
        pb = {"Content-Type": "application/x-protobuf"}
        for i in range(20):  # while they run, spans are acknowledged and committed
            r = requests.post(
                f"{col.url}/v1/traces",
                data=_span_request(f"beside-{i}", n=50).SerializeToString(),
                headers=pb,
                timeout=10,
            )
            assert r.status_code == 200
        written = 'legible_collector_written_rows_total{table="spans"} 1000.0'
        wait_until(lambda: written in requests.get(f"{col.url}/metrics", timeout=5).text, timeout=10)
        assert any(t.is_alive() for t in askers)  # ...while the endless queries still ran
    finally:
        for t in askers:
            t.join(60)
        if sys.exc_info()[0] is not None:  # failing: do not leave the collector behind
            col.stop()
    assert len(answers) == 4
    for r in answers:  # each ended: interrupted, or refused for want of a slot, with a one-line error
        assert r.status_code == 400 and ("INTERRUPT" in r.text.upper() or "busy" in r.text), r.text
    assert requests.get(f"{col.url}/health", timeout=5).status_code == 200
    col.stop()


def test_status_counts_what_was_received_and_refused(col: Proc) -> None:
    auth = {"Authorization": f"Bearer {(col.state / 'collector.token').read_text().strip()}"}
    before = requests.get(f"{col.url}/status", headers=auth, timeout=5).json()
    r = requests.post(
        f"{col.url}/v1/traces",
        data=_span_request("status-span", n=3).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=5,
    )
    assert r.status_code == 200
    doc = requests.get(f"{col.url}/status", headers=auth, timeout=5).json()
    assert doc["schema"] == "legible.collector-status/v1" and doc["healthy"] is True and doc["error"] == ""
    assert doc["received"]["traces"] == before["received"]["traces"] + 3
    assert doc["last_received_ns"]["traces"] > (before["last_received_ns"]["traces"] or 0)
    assert set(doc["received"]) == set(doc["last_received_ns"]) == {"traces", "logs", "metrics"}
    assert isinstance(doc["pending"], int) and isinstance(doc["refused"], dict)
    import jsonschema

    from legible.schemas import load

    jsonschema.validate(doc, load(doc["schema"]))  # the shipped contract of GET /status


def test_grpc_sent_to_the_http_port_is_refused_at_once_and_counted(col: Proc) -> None:
    import grpc

    auth = {"Authorization": f"Bearer {(col.state / 'collector.token').read_text().strip()}"}
    with grpc.insecure_channel(f"127.0.0.1:{col.http}") as ch:
        call = ch.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as e:
            call(_span_request("grpc-on-http").SerializeToString(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # not a hang until the deadline
    doc = requests.get(f"{col.url}/status", headers=auth, timeout=5).json()
    assert doc["refused"].get("grpc_on_http_port", 0) >= 1
    assert 'reason="grpc_on_http_port"' in requests.get(f"{col.url}/metrics", timeout=2).text
    assert f"send OTLP/gRPC to 127.0.0.1:{col.grpc}" in (col.state / "collector.stderr").read_text()
    assert requests.get(f"{col.url}/health", timeout=2).status_code == 200


def test_http_answers_keep_alive_deep_json_and_oversized_bodies(col: Proc) -> None:
    url = f"{col.url}/v1/traces"
    js = {"Content-Type": "application/json"}
    for depth in (1_000, 100_000):
        deep = b'{"resourceSpans":' + b"[" * depth + b"]" * depth + b"}"
        r = requests.post(url, data=deep, headers=js, timeout=10)
        assert r.status_code == 400, depth
    nested = b'{"kvlistValue":{"values":[{"key":"k","value":' * 200 + b"{}" + b"}]}}" * 200
    body = b'{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":' + nested + b"}]}}]}"
    assert requests.post(url, data=body, headers=js, timeout=10).status_code == 400
    # a body just over the cap is read, so the sender (still sending) gets the 413 instead of a broken pipe
    from legible.collector import MAX_BODY

    r = requests.post(url, data=b"\0" * (MAX_BODY + 1), headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert r.status_code == 413
    # several answers on one kept-alive connection (their latency, TCP_NODELAY's effect, is in the benchmark)
    with socket.create_connection(("127.0.0.1", col.http), timeout=5) as s:
        for _ in range(3):
            s.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{col.http}\r\n\r\n".encode())
            got = b""
            while not got.endswith(b"ok\n"):
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            assert got.startswith(b"HTTP/1.1 200")


LOG_TEXT = """\
{"level":"error","msg":"db timeout after 30s","ts":"2024-05-01T10:00:00Z","trace_id":"TRACE","user":"u1"}
level=warn msg="slow query" duration=1.2s
INFO:werkzeug:127.0.0.1 GET /health 200
ERROR:app:checkout failed
Traceback (most recent call last):
  File "/app/app.py", line 10, in checkout
    pay()
ValueError: card declined

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/app.py", line 12, in checkout
RuntimeError: checkout failed
Exception in thread "main" java.lang.IllegalStateException: boom
\tat com.example.Main.run(Main.java:10)
\tat com.example.Main.main(Main.java:5)
Caused by: java.io.IOException: disk
\t... 2 more
plain line without level
"""


def test_log_file_lines_become_records(col: Proc) -> None:
    (col.logs / "collector.log").write_text("ignored line\n")
    (col.logs / "notes.txt").write_text("ignored too\n")
    with open(col.logs / "web.log", "a") as f:
        f.write(LOG_TEXT.replace("\\t", "\t").replace("TRACE", "0123456789abcdef0123456789abcdef"))
        f.write("x" * 40_000 + "\n")
    rows = wait_until(
        lambda: (
            (
                r := col.q(
                    "SELECT level, body, trace_id, attributes->>'user', ts, template "
                    "FROM logs WHERE service = 'web' ORDER BY seq"
                )
            )
            and len(r) >= 7
            and r
        )
    )
    levels = [r[0] for r in rows]
    assert levels == ["error", "warn", "info", "error", "error", "info", "info"], rows
    assert rows[0][1] == "db timeout after 30s" and rows[0][2] == "0123456789abcdef0123456789abcdef"
    assert rows[0][3] == "u1" and rows[0][4].startswith("2024-05-01T10:00:00")
    assert rows[1][1] == "slow query"
    tb = rows[3][1]
    assert tb.startswith("ERROR:app:checkout failed\nTraceback") and tb.endswith("RuntimeError: checkout failed")
    assert "During handling" in tb
    assert rows[4][1].count("\n") == 4 and rows[4][1].endswith("... 2 more")
    assert rows[5][1] == "plain line without level"
    assert len(rows[6][1]) < 17_000 and rows[6][1].endswith("[cut 23616 bytes]")
    assert col.q("SELECT count(*) FROM logs WHERE body LIKE 'ignored%'")[0][0] == 0
    # truncation and a new file
    (col.logs / "web.log").write_text("after truncate ERROR x\n")
    (col.logs / "worker.log").write_text("worker started\n")
    wait_until(
        lambda: (
            col.q("SELECT count(*) FROM logs WHERE body IN ('after truncate ERROR x', 'worker started')")[0][0] == 2
        ),
        timeout=5,
    )


def test_victoria_metrics_own_lines_keep_their_level(col: Proc, tmp_path: Path) -> None:
    log = col.logs / "victoria-metrics.log"
    with open(log, "ab") as out:  # a real VictoriaMetrics writing its startup lines where the supervisor would
        p = subprocess.Popen(
            [VM_BIN, f"-httpListenAddr=127.0.0.1:{free_port()}", f"-storageDataPath={tmp_path / 'vm'}"],
            stdout=out,
            stderr=out,
        )
        try:
            wait_http(f"http://127.0.0.1:{p.args[1].rsplit(':', 1)[1]}/health")
        finally:
            p.terminate()
            p.wait(10)
    with open(log, "a") as f:  # the shape of its warnings (lib/logger): time, level, caller, message
        f.write("2026-01-01T00:00:00.000Z\twarn\tVictoriaMetrics/lib/promscrape/scraper.go:1\tcannot scrape x\n")
    sql = "SELECT level, body, attributes->>'code.location' FROM logs WHERE service = 'victoria-metrics' AND body = ?"
    [(level, _, where)] = wait_until(lambda: col.q(sql, ["cannot scrape x"]), 10, "the warn line stored")
    assert level == "warn" and where == "VictoriaMetrics/lib/promscrape/scraper.go:1"
    [(level, body, where)] = col.q(sql.replace("body = ?", "body LIKE ?"), ["build version:%"])
    assert level == "info" and where.startswith("VictoriaMetrics/lib/logger/")


def test_flood_of_lines_is_complete(col: Proc) -> None:
    n = 100_000
    with open(col.logs / "flood.log", "w") as f:
        for i in range(n):
            f.write(f'{{"level":"info","msg":"request {i} done","i":{i}}}\n')
    wait_until(lambda: col.q("SELECT count(*) FROM logs WHERE service = 'flood'")[0][0] == n, timeout=60)
    assert col.q("SELECT count(DISTINCT attributes->>'i'), count(DISTINCT template) FROM logs WHERE service = 'flood'")[
        0
    ] == (n, 1)


# ---- lifecycle: shutdown, file reads after down, restart without duplicates ----------------------


def test_restart_reads_file_and_resumes_without_duplicates(tmp_path: Path) -> None:
    proc = Proc(tmp_path, vm_url=f"http://127.0.0.1:{free_port()}").start()  # VM down: must not matter
    log = proc.logs / "app.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    r = requests.post(
        f"{proc.url}/v1/traces",
        data=_span_request("before-restart", n=5).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=5,
    )
    assert r.status_code == 200
    wait_until(lambda: proc.q("SELECT count(*) FROM logs")[0][0] == 1000)
    wait_until(lambda: _count(proc, "before-restart") == 5)
    proc.stop()  # exits 0 after flushing; how fast: benchmarks/bench_collector.py (stop)
    store = proc.store()
    res = store.query("SELECT count(*) FROM logs")
    assert res.source == "file" and res.rows == [(1000,)]
    store.close()
    with open(log, "a") as f:
        f.write("".join(f"line {i}\n" for i in range(1000, 1500)))
    proc.start()
    wait_until(lambda: proc.q("SELECT count(*) FROM logs")[0][0] >= 1500)
    with open(log, "a") as f:  # lines are read in order: a re-read of old lines would land before this one
        f.write("the end\n")
    wait_until(lambda: proc.q("SELECT count(*) FROM logs WHERE body = 'the end'")[0][0] == 1)
    assert proc.q("SELECT count(*), count(DISTINCT body), max(seq) FROM logs")[0] == (1501, 1501, 1500)

    def failed_pushes() -> float:  # VictoriaMetrics is down: the failed pushes are counted, not hidden
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{proc.url}/metrics", timeout=2).text
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        return sum(s.value for s in fams["legible_collector_vm_pushes"].samples if s.labels.get("result") == "error")

    wait_until(failed_pushes, 10, "a failed push to the absent VictoriaMetrics counted in the collector's /metrics")
    proc.stop()


def test_a_restart_waits_for_a_reader_that_holds_the_file(tmp_path: Path) -> None:
    """A CLI command reads the file while the collector is down; the collector started meanwhile waits for the
    reader (one line in its log) instead of failing its start, then ingests as before."""
    proc = Proc(tmp_path, vm_url=f"http://127.0.0.1:{free_port()}").start()
    try:
        (proc.logs / "app.log").write_text("before\n")
        wait_until(lambda: proc.q("SELECT count(*) FROM logs")[0][0] == 1)
        proc.stop()
        reader = proc.store()
        assert reader.query("SELECT count(*) FROM logs").rows == [(1,)]  # the reader now holds the file
        proc.start(wait=False)
        err = proc.state / "collector.stderr"
        waiting = "the store is held by another process"
        wait_until(lambda: waiting in err.read_text(), 20, "the collector's waiting line")
        assert proc.p is not None and proc.p.poll() is None, err.read_text()  # waiting, not exited
        reader.close()
        wait_http(f"{proc.url}/health")
        assert "the store is free: opened" in err.read_text()
        with open(proc.logs / "app.log", "a") as f:
            f.write("after\n")
        wait_until(lambda: proc.q("SELECT list(body ORDER BY seq) FROM logs")[0][0] == ["before", "after"])
        proc.stop()
    finally:
        proc.kill()


def test_a_store_opened_before_a_restart_reads_the_new_token(tmp_path: Path) -> None:
    """Each collector start writes a new token: a command that read the old one asks again with the new one
    (a restart under a running command answered "the collector refused the token"); a wrong token still fails."""
    from legible._errors import NotRunning

    proc = Proc(tmp_path, vm_url=f"http://127.0.0.1:{free_port()}").start()
    try:
        proc.stop()
        store = proc.store()  # holds the first start's token
        proc.start()  # new ports too: point the store at them
        store.collector_url = proc.url
        assert store.token != (proc.state / "collector.token").read_text().strip()
        res = store.query("SELECT count(*) FROM logs")
        assert res.source == "collector" and res.rows == [(0,)]
        assert store.token == (proc.state / "collector.token").read_text().strip()
        (proc.state / "collector.token").write_text("not-the-token\n")
        with pytest.raises(NotRunning, match="refused the token"):
            proc.store().query("SELECT 1")
        proc.stop()
    finally:
        proc.kill()


def test_size_cap_prunes_oldest(tmp_path: Path) -> None:
    from legible.collector._writer import Writer

    cap = 3 * 1024 * 1024  # the floor of an empty store is 9 blocks of 256 KiB (logs, spans, log_groups, ...)
    w = Writer(tmp_path / "s.duckdb", max_bytes=cap)
    now = time.time_ns()
    for batch in range(10):
        rows = [
            (
                now + i,
                now,
                "app",
                "info",
                9,
                None,
                f"line {'abcdefghij'[batch]} {i} " + "p" * 200,  # one group per batch
                "{}",
                "{}",
                None,
                None,
                None,
                "stdout",
            )
            for i in range(10_000)
        ]
        w.add("logs", rows)
        w.flush()
    before = w.query("SELECT count(*), min(seq) FROM logs")[1][0]
    deleted = w.prune()
    after = w.query("SELECT count(*), min(seq), max(seq) FROM logs")[1][0]
    assert deleted > 0 and after[0] == before[0] - deleted and after[1] > 0 and after[2] == 99_999
    assert w.used_bytes <= cap
    # the dictionary keeps only the groups lines still refer to: those of the batches not pruned
    kept = w.query("SELECT count(*) FROM log_groups WHERE id IN (SELECT group_id FROM logs)")[1][0][0]
    assert w.query("SELECT count(*) FROM log_groups")[1] == [(kept,)] and 0 < kept < 10
    w.close()


def test_service_plan(tmp_path: Path) -> None:
    from legible.config import parse_config
    from legible.services.collector import CollectorService
    from legible.worktree import Worktree

    class Ctx:  # the attributes of legible.plan.PlanContext the kind reads
        worktree = Worktree(tmp_path, "wt-abcdef01")
        ports = {"otlp-http": 41002, "otlp-grpc": 41003, "victoria-metrics": 41001}
        config = parse_config({"app": {"command": "true"}})
        environ: dict[str, str] = {}  # no LEGIBLE_FORWARD_*: nothing is forwarded

        def env_for(self, service: str, port: int) -> dict[str, str]:
            return {"PATH": "/bin", "OTEL_SERVICE_NAME": service, "PORT": str(port)}

    plan = CollectorService().plan(Ctx())  # type: ignore[arg-type]
    assert plan.role == "collector" and plan.depends_on == [] and plan.port == 41002
    assert plan.probe.kind == "http" and plan.probe.target == "http://127.0.0.1:41002/health"
    assert plan.argv[1:3] == ["-m", "legible.collector"]
    assert f"--db={tmp_path}/.legible/data/signals.duckdb" in plan.argv
    assert "--grpc-port=41003" in plan.argv and "--vm-url=http://127.0.0.1:41001" in plan.argv
    assert f"--token-file={tmp_path}/.legible/collector.token" in plan.argv
    assert not any(a.startswith("--forward-config") for a in plan.argv)
    assert plan.stop_timeout >= 10  # time to write what is queued before SIGKILL
    assert plan.env["OTEL_SDK_DISABLED"] == "true" and "OTEL_SERVICE_NAME" not in plan.env
    assert CollectorService().detect().path is not None


def test_a_record_sent_by_stdout_and_otlp_is_stored_once(tmp_path: Path) -> None:
    from legible.collector._writer import Writer

    deduplicated: list[int] = []
    w = Writer(tmp_path / "d.duckdb", on_deduplicated=deduplicated.append)
    now = time.time_ns()

    def row(body: str, source: str, span: str | None = "b7ad6b7169203331") -> tuple:
        return (
            now,
            now,
            "app",
            "error",
            17,
            "ERROR",
            body,
            "{}",
            "{}",
            None,
            "0af7651916cd43dd8448eb211c80319c",
            span,
            source,
        )

    w.add("logs", [row("GET /error 500", "stdout")])
    w.add("logs", [row("GET /error 500", "otlp"), row("GET /error 500\nTraceback ...", "otlp", span=None)])
    w.add("logs", [row("GET /error 500", "stdout"), row("another message", "otlp")])
    w.add("logs", [row("GET /error 500", "otlp", span="00f067aa0ba902b7")])  # another span of the trace
    w.add("logs", [row("boot", "stdout", span=None), row("boot", "otlp", span=None)])
    nothing = (*row("no trace", "stdout", span=None)[:10], None, None, "stdout")
    w.add("logs", [nothing, (*nothing[:12], "otlp")])
    w.flush()
    kept = w.query("SELECT source, body FROM logs ORDER BY seq")[1]
    w.close()
    # the OTLP copies of the stdout record are dropped, with the same span id or without one (a text line
    # that prints only the trace id); a second record from the same source, a different message, a record
    # of another span and records without a trace id are all kept
    assert kept == [
        ("stdout", "GET /error 500"),
        ("stdout", "GET /error 500"),
        ("otlp", "another message"),
        ("otlp", "GET /error 500"),
        ("stdout", "boot"),
        ("stdout", "no trace"),
        ("otlp", "no trace"),
    ]
    assert deduplicated == [2, 1]


def test_a_kept_record_without_a_span_id_learns_it_from_its_dropped_copy(tmp_path: Path) -> None:
    # An app that prints `<time> ERROR <logger> trace_id=<id> <message>` (no span id) and sends the same record
    # by OTLP (with its span id): whichever copy is kept, `legible trace` must be able to place it under its span.
    from legible.collector._writer import Writer

    w = Writer(tmp_path / "d.duckdb")
    now = time.time_ns()
    trace = "0af7651916cd43dd8448eb211c80319c"

    def row(body: str, source: str, span: str | None) -> tuple:
        return (now, now, "app", "error", 17, "ERROR", body, "{}", "{}", None, trace, span, source)

    # still queued when its copy arrives
    w.add("logs", [row("  GET /error 500 \nTraceback ...", "stdout", None)])
    w.add("logs", [row("GET /error 500", "otlp", "b7ad6b7169203331")])
    # already written when its copy arrives
    w.add("logs", [row("checkout failed", "stdout", None)])
    w.flush()
    w.add("logs", [row("checkout failed", "otlp", "00f067aa0ba902b7")])
    # a record of the same trace that no copy named keeps no span id
    w.add("logs", [row("checkout failed twice", "stdout", None)])
    w.flush()
    got = w.query("SELECT source, split_part(body, chr(10), 1), span_id FROM logs ORDER BY seq")[1]
    w.close()
    assert got == [
        ("stdout", "  GET /error 500 ", "b7ad6b7169203331"),
        ("stdout", "checkout failed", "00f067aa0ba902b7"),
        ("stdout", "checkout failed twice", None),
    ]


def test_the_writer_marks_log_rows_with_exception_attributes_at_ingest(tmp_path: Path) -> None:
    # logs.has_exception is what `logs --grep` reads instead of every row's attributes (legible.store.HAS_EXCEPTION)
    from legible.collector._writer import Writer

    w = Writer(tmp_path / "e.duckdb")
    now = time.time_ns()

    def row(body: str, attrs: str) -> tuple:
        return (now, now, "app", "error", 17, "ERROR", body, attrs, "{}", None, None, None, "otlp")

    w.add("logs", [row("a", '{"exception.type": "ValueError"}'), row("b", '{"http.route": "/x"}'), row("c", "{}")])
    w.flush()
    got = w.query("SELECT body, has_exception FROM logs ORDER BY seq")[1]
    w.close()
    assert got == [("a", True), ("b", False), ("c", False)]
