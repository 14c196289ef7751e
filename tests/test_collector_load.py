"""The collector under load, with real processes: what it acknowledges is what it stores.

A real collector (``python -m legible.collector``, no VictoriaMetrics) takes 4 OTLP/HTTP senders and one
OTLP/gRPC sender at full speed, batches of 100 spans, while ``legible traces``/``logs`` queries run through
``/query``; every span answered 200/OK is then counted in the store, exactly; refusals are 429/503 with
``Retry-After`` or gRPC ``UNAVAILABLE``/``RESOURCE_EXHAUSTED``. A SIGTERM mid-load (``legible down``) loses
no acknowledged span; 10,000 malformed payloads interleaved with valid ones are each answered 4xx /
``INVALID_ARGUMENT`` and every valid one is stored. Throughput and latency figures are in
``benchmarks/bench_collector.py``; nothing here asserts a duration.

``LEGIBLE_LOAD_SECONDS`` (default 60) sets the length of the main load run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from legible.collector._otlp import PayloadError, decode
from legible.queries.logs import log_groups, make_filter
from legible.queries.traces import list_traces, make_trace_filter
from legible.store import open_store
from tests.conftest import wait_until
from tests.test_collector import WT, Proc

LOAD_S = float(os.environ.get("LEGIBLE_LOAD_SECONDS", "60"))
BATCH = 100
RSS_LIMIT = 400 * 2**20
PB = {"Content-Type": "application/x-protobuf"}
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE_GRPC = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def spans_body(service: str, seed: int, n: int = BATCH) -> bytes:
    """An ExportTraceServiceRequest of ``n`` spans of ``service``, 5 spans per trace, durations 1-2000 ms."""
    rnd = random.Random(seed)
    now = time.time_ns()
    spans = []
    trace = b""
    root = b""
    for i in range(n):
        if i % 5 == 0:
            trace, root = rnd.randbytes(16), rnd.randbytes(8)
        dur = rnd.randint(1, 2000) * 1_000_000
        spans.append(
            Span(
                trace_id=trace,
                span_id=root if i % 5 == 0 else rnd.randbytes(8),
                parent_span_id=b"" if i % 5 == 0 else root,
                name="GET /api/items/{id}" if i % 5 == 0 else "SELECT items",
                kind=2 if i % 5 == 0 else 3,
                start_time_unix_nano=now - dur,
                end_time_unix_nano=now,
                status=Status(code=2 if i % 37 == 0 else 0),
                attributes=[_kv("http.route", "/api/items/{id}"), _kv("load.seed", str(seed))],
            )
        )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={"attributes": [_kv("service.name", service)]},
                scope_spans=[ScopeSpans(scope={"name": "load"}, spans=spans)],
            )
        ]
    ).SerializeToString()


def logs_body(service: str, n: int = BATCH) -> bytes:
    now = time.time_ns()
    records = [
        LogRecord(
            time_unix_nano=now,
            severity_number=17 if i % 10 == 0 else 9,
            body=AnyValue(string_value=f"order {i} failed: card declined" if i % 10 == 0 else f"GET /item/{i} 200"),
        )
        for i in range(n)
    ]
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource={"attributes": [_kv("service.name", service)]},
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    ).SerializeToString()


@dataclass
class Tally:
    """What one sender saw: acknowledged items per kind, refusals by answer, anything unexpected."""

    acked: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    unanswered: int = 0  # requests without an answer (connection closed mid-request: only at SIGTERM)


def http_sender(url: str, service: str, stop: threading.Event, tally: Tally, logs_every: int = 10) -> None:
    """Send span batches (and every ``logs_every``-th request a log batch) until ``stop``; retry refusals."""
    bodies = [spans_body(service, seed) for seed in range(8)]
    logs = logs_body(service)
    s = requests.Session()
    i = 0
    while not stop.is_set():
        i += 1
        kind, path, body = ("logs", "/v1/logs", logs) if i % logs_every == 0 else ("spans", "/v1/traces", bodies[i % 8])
        while not stop.is_set():
            try:
                r = s.post(url + path, data=body, headers=PB, timeout=60)
            except requests.RequestException:
                tally.unanswered += 1
                s = requests.Session()
                time.sleep(0.05)
                continue
            if r.status_code == 200:
                tally.acked[kind] += BATCH
                break
            if r.status_code in (429, 503) and r.headers.get("Retry-After"):
                tally.refused[str(r.status_code)] += 1
                time.sleep(0.1)  # Retry-After says 1 s; a shorter wait keeps the pressure on
                continue
            tally.unexpected.append(f"{r.status_code} {r.text[:200]}")
            return


def grpc_sender(target: str, service: str, stop: threading.Event, tally: Tally) -> None:
    """Send span batches over OTLP/gRPC until ``stop``; retry UNAVAILABLE / RESOURCE_EXHAUSTED."""
    bodies = [spans_body(service, 100 + seed) for seed in range(8)]
    with grpc.insecure_channel(target) as ch:
        call = ch.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        i = 0
        while not stop.is_set():
            i += 1
            while not stop.is_set():
                try:
                    call(bodies[i % 8], timeout=60)
                except grpc.RpcError as e:
                    code = e.code()  # type: ignore[attr-defined]
                    if code in RETRYABLE_GRPC:
                        tally.refused[code.name] += 1
                        time.sleep(0.1)
                        continue
                    if code == grpc.StatusCode.CANCELLED:  # no answer (the server went away): not acknowledged
                        tally.unanswered += 1
                        time.sleep(0.1)
                        continue
                    tally.unexpected.append(f"{code.name} {e.details()}")  # type: ignore[attr-defined]
                    return
                tally.acked["spans"] += BATCH
                break


def count(store_like: Any, table: str, service: str) -> int:
    return int(store_like.query(f"SELECT count(*) FROM {table} WHERE service = ?", [service]).rows[0][0])  # noqa: S608


class Load:
    """Senders and a querier running against one collector until :meth:`stop`."""

    def __init__(self, col: Proc, http_senders: int = 4, grpc_senders: int = 1) -> None:
        self.col = col
        self.stop_event = threading.Event()
        self.tallies: dict[str, Tally] = {}
        self.threads: list[threading.Thread] = []
        for k in range(http_senders):
            name = f"load-http-{k}"
            self.tallies[name] = Tally()
            self.threads.append(
                threading.Thread(target=http_sender, args=(col.url, name, self.stop_event, self.tallies[name]))
            )
        for k in range(grpc_senders):
            name = f"load-grpc-{k}"
            self.tallies[name] = Tally()
            target = f"127.0.0.1:{col.grpc}"
            self.threads.append(
                threading.Thread(target=grpc_sender, args=(target, name, self.stop_event, self.tallies[name]))
            )
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(120)
        assert not any(t.is_alive() for t in self.threads)

    def unexpected(self) -> list[str]:
        return [f"{n}: {u}" for n, t in self.tallies.items() for u in t.unexpected]


def app_queries(store: Any) -> dict[str, int]:
    """The queries behind `legible traces`, `legible traces --slowest 10` and `legible logs`; sizes of the answers."""
    recent = list_traces(store, make_trace_filter(), limit=20)
    slowest = list_traces(store, make_trace_filter(), limit=10, slowest=True)
    groups = log_groups(store, make_filter())
    return {"recent": len(recent.traces), "slowest": len(slowest.traces), "log groups": len(groups.groups)}


def watch_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.wait(0.25):
        try:
            peak[0] = max(peak[0], proc.memory_info().rss)
        except psutil.Error:
            return


@pytest.fixture
def col(tmp_path: Path) -> Iterator[Proc]:
    proc = Proc(tmp_path, vm_url="", max_db_mb=4096).start()
    yield proc
    if proc.p is not None and proc.p.poll() is None:
        proc.p.send_signal(signal.SIGTERM)
        proc.p.wait(60)
    proc.stderr.close()


def _sigterm(col: Proc) -> int:
    assert col.p is not None
    col.p.send_signal(signal.SIGTERM)
    return col.p.wait(60)


def _until(fn: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < end, f"not true within {timeout}s"
        time.sleep(0.1)


def test_everything_acknowledged_under_load_is_stored_and_queries_answer(col: Proc) -> None:
    assert col.p is not None
    store = col.store()
    rss_stop, peak = threading.Event(), [0]
    rss = threading.Thread(target=watch_rss, args=(col.p.pid, rss_stop, peak))
    rss.start()
    load = Load(col)
    answers: list[dict[str, int]] = []
    query_errors: list[str] = []
    end = time.monotonic() + LOAD_S
    try:
        while time.monotonic() < end:  # the agent's queries keep answering while the senders push
            try:
                answers.append(app_queries(store))
            except Exception as e:
                query_errors.append(f"{type(e).__name__}: {e}")
            time.sleep(1.0)
    finally:
        load.stop()
    assert load.unexpected() == []
    assert query_errors == []
    assert answers and answers[-1]["slowest"] == 10
    # what was acknowledged is stored, exactly (nothing was lost, nothing stored twice)
    for service, tally in load.tallies.items():
        assert tally.unanswered == 0, service
        assert tally.acked["spans"] > 0, service
        _until(lambda s=service, t=tally: count(store, "spans", s) >= t.acked["spans"], 60)  # type: ignore[misc]
        assert count(store, "spans", service) == tally.acked["spans"], service
        assert count(store, "logs", service) == tally.acked["logs"], service
    final = app_queries(store)
    assert final["slowest"] == 10 and final["recent"] == 20 and final["log groups"] > 0
    auth = {"Authorization": f"Bearer {(col.state / 'collector.token').read_text().strip()}"}
    status = requests.get(f"{col.url}/status", headers=auth, timeout=10).json()
    assert status["healthy"] is True and status["error"] == ""
    acked_spans = sum(t.acked["spans"] for t in load.tallies.values())
    assert status["received"]["traces"] == acked_spans
    assert requests.get(f"{col.url}/health", timeout=10).status_code == 200
    rss_stop.set()
    rss.join()
    assert 0 < peak[0] < RSS_LIMIT, f"collector RSS peaked at {peak[0] / 2**20:.0f} MiB"
    refused = sum((t.refused for t in load.tallies.values()), Counter())
    print(f"\nacked spans {acked_spans:,}, refused-and-retried {dict(refused)}, peak RSS {peak[0] / 2**20:.0f} MiB")
    # after `down`: the same counts from the file
    assert _sigterm(col) == 0
    with open_store(col.state, None, worktree=WT) as kept:
        for service, tally in load.tallies.items():
            assert count(kept, "spans", service) == tally.acked["spans"], service


def test_sigterm_mid_load_keeps_every_acknowledged_span(col: Proc) -> None:
    load = Load(col)
    _until(lambda: sum(t.acked["spans"] for t in load.tallies.values()) >= 20_000, 60)
    rc = _sigterm(col)  # while the senders still send (what `legible down` does)
    load.stop()
    assert rc == 0, (col.state / "collector.stderr").read_text()[-2000:]
    assert load.unexpected() == []
    with open_store(col.state, None, worktree=WT) as kept:
        for service, tally in load.tallies.items():
            stored = count(kept, "spans", service)
            # in flight at the signal: stored maybe, acknowledged never; at most one batch per sender
            assert tally.acked["spans"] <= stored <= tally.acked["spans"] + BATCH, service
            assert tally.acked["spans"] > 0
    assert "accepted rows could not be written" not in (col.state / "collector.stderr").read_text()


def _malformed(rnd: random.Random, good: bytes) -> tuple[str, bytes, dict[str, str], int]:
    """One payload the collector must refuse: ``(what, body, headers, expected HTTP status)``."""
    kind = rnd.randrange(8)
    js = {"Content-Type": "application/json"}
    if kind == 0:
        return "wrong content type", good, {"Content-Type": "text/plain"}, 415
    if kind == 1:
        return "bad gzip", b"\x1f\x8b" + rnd.randbytes(40), {**PB, "Content-Encoding": "gzip"}, 400
    if kind == 2:
        return "invalid json", b'{"resourceSpans": [' + rnd.randbytes(10).hex().encode(), js, 400
    if kind == 3:
        depth = rnd.choice((200, 1000, 5000))
        return "deep json", b'{"resourceSpans":' + b"[" * depth + b"]" * depth + b"}", js, 400
    if kind == 4:
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": rnd.randbytes(4).hex() + "zz"}]}]}]}
        return "bad hex id", json.dumps(doc).encode(), js, 400
    while True:  # a mutated or truncated protobuf that does not decode (checked with the collector's decoder)
        b = bytearray(good[: rnd.randrange(1, len(good))] if kind == 5 else good)
        for _ in range(rnd.randint(1, 8)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        try:
            decode("traces", bytes(b), "protobuf")
        except PayloadError:
            return "broken protobuf", bytes(b), PB, 400


def test_malformed_payloads_interleaved_with_valid_ones(col: Proc) -> None:
    rnd = random.Random(11)
    good = spans_body("fuzz-template", 1, n=10)
    valid = spans_body("fuzz-valid", 2, n=10)
    s = requests.Session()
    answers: Counter[str] = Counter()
    valid_acked = 0
    with grpc.insecure_channel(f"127.0.0.1:{col.grpc}") as ch:
        call = ch.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        for i in range(10_000):
            what, body, headers, code = _malformed(rnd, good)
            if i % 2 == 1 and headers == PB:  # half of the protobuf ones over gRPC
                with pytest.raises(grpc.RpcError) as e:
                    call(body, timeout=10)
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what  # type: ignore[attr-defined]
                answers["grpc INVALID_ARGUMENT"] += 1
            else:
                r = s.post(f"{col.url}/v1/traces", data=body, headers=headers, timeout=10)
                assert r.status_code == code, (what, r.status_code, r.text[:200])
                answers[f"http {code}"] += 1
            if i % 10 == 0:  # a valid batch every 10 malformed ones, alternating transports
                if i % 20 == 0:
                    call(valid, timeout=10)
                else:
                    r = s.post(f"{col.url}/v1/traces", data=valid, headers=PB, timeout=10)
                    assert r.status_code == 200
                valid_acked += 10
    assert col.p is not None and col.p.poll() is None  # never crashed
    assert sum(answers.values()) == 10_000 and answers["grpc INVALID_ARGUMENT"] > 1500
    store = col.store()
    wait_until(lambda: count(store, "spans", "fuzz-valid") >= valid_acked, timeout=30)
    assert count(store, "spans", "fuzz-valid") == valid_acked
    assert count(store, "spans", "fuzz-template") == 0
    assert requests.get(f"{col.url}/health", timeout=5).status_code == 200
