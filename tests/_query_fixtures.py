"""A realistic signal store for the query tests: a temp git worktree with `.legible/data/signals.duckdb`.

Built through legible.store's migrations and plain INSERTs (the collector's table shapes), so the tests run
the "after `legible down`" path: no stack, the CLI reads the kept file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import duckdb

from legible.store import migrate, store_path, template_sql

T_ERR = "4bf92f3577b34da6a3ce929d0e0e4736"
S_ERR_ROOT = "00f067aa0ba902b7"
S_ERR_CHARGE = "a1b2c3d4e5f60718"
T_SLOW = "5c0ffee15c0ffee15c0ffee15c0ffee1"
S_SLOW_ROOT = "b0b0b0b0b0b0b0b0"

TRACEBACK = """Traceback (most recent call last):
  File "/app/server.py", line 88, in handle_error
    charge(order)
  File "/app/payments.py", line 12, in charge
    raise ValueError(f"card declined for order {order.id}")
ValueError: card declined for order 42"""

LOG_COLS = ("seq, time_ns, observed_ns, service, level, severity_number, severity_text, body, template, "
            "attributes, resource, scope, trace_id, span_id, source")
SPAN_COLS = ("seq, trace_id, span_id, parent_span_id, trace_state, service, name, kind, start_ns, end_ns, "
             "duration_ms, status_code, status_message, attributes, resource, scope, events, links, "
             "exception_type, exception_message, received_ns")

SEV = {"debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def build_store(root: Path, now_ns: int | None = None) -> dict[str, object]:
    """Write the store of worktree ``root``; return facts the tests assert on."""
    now = now_ns or time.time_ns()
    path = store_path(root / ".legible")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    migrate(con)
    logs: list[tuple[object, ...]] = []
    spans: list[tuple[object, ...]] = []

    def log(t_ns: int, service: str, level: str, body: str, attrs: dict | None = None,
            trace_id: str | None = None, span_id: str | None = None, source: str = "stdout") -> None:
        logs.append((len(logs), t_ns, t_ns, service, level, SEV[level], level.upper(), body, None,
                     json.dumps(attrs or {}), "{}", None, trace_id, span_id, source))

    def span(trace_id: str, span_id: str, parent: str | None, name: str, start: int, dur_ms: float,
             status: str = "unset", kind: str = "internal", attrs: dict | None = None,
             events: list | None = None, exc: tuple[str, str] | None = None, service: str = "app") -> None:
        spans.append((len(spans), trace_id, span_id, parent, None, service, name, kind, start,
                      start + int(dur_ms * 1e6), dur_ms, status, exc[1] if exc and status == "error" else None,
                      json.dumps(attrs or {}), json.dumps({"service.name": service}), "test",
                      json.dumps(events or []), "[]", exc[0] if exc else None, exc[1] if exc else None, start))

    # 600 ordinary request lines over the last 10 minutes (numbers fold into one template)
    for i in range(600):
        t = now - int((600 - i) * 1e9)
        log(t, "app", "info", f"GET /items/{i % 37} 200 {5 + i % 20}ms")
    for i in range(40):
        log(now - int((400 - i * 9) * 1e9), "app", "warn", f"slow query took {1200 + i} ms")
    for i in range(25):
        log(now - int((500 - i * 19) * 1e9), "app", "debug", f"cache miss key=user:{i}")
    for i in range(30):
        log(now - int((590 - i * 19) * 1e9), "collector", "info", f"flushed batch of {i * 3} rows")
    # 35 distinct one-off lines (many small groups, so the default view must cut)
    for i in range(35):
        log(now - int((300 - i) * 1e9), "app", "info", f"feature flag {chr(65 + i % 26)}{chr(97 + i)} enabled")
    # a log-only trace whose id shares its first 8 hex with T_SLOW (an ambiguous prefix), an hour old
    log(now - int(3600 * 1e9), "app", "debug", "background job tick", {}, "5c0ffee1" + "0" * 24, None, "otlp")
    # an old error outside a 15m window
    log(now - int(2 * 3600 * 1e9), "app", "error", "database is locked", {"db": "main"})
    # the /error request: its trace, with an error span, an exception event and logs under the spans
    t0 = now - int(5 * 1e9)
    span(T_ERR, S_ERR_ROOT, None, "GET /error", t0, 48.5, "error", "server",
         {"http.method": "GET", "http.route": "/error", "http.target": "/error?x=1", "http.status_code": 500})
    span(T_ERR, "c0ffee0000000001", S_ERR_ROOT, "validate", t0 + int(1e6), 2.1, "ok")
    stack = TRACEBACK
    span(T_ERR, S_ERR_CHARGE, S_ERR_ROOT, "charge", t0 + int(4e6), 40.2, "error", "client",
         {"peer.service": "payments"},
         [{"time_ns": t0 + int(44e6), "name": "exception",
           "attributes": {"exception.type": "ValueError", "exception.message": "card declined for order 42",
                          "exception.stacktrace": stack}}],
         ("ValueError", "card declined for order 42"))
    log(t0 + int(2e6), "app", "info", "validating order 42", {"order": "42"}, T_ERR, "c0ffee0000000001", "otlp")
    log(t0 + int(44e6), "app", "error", TRACEBACK, {"http.route": "/error"}, T_ERR, S_ERR_CHARGE)
    log(t0 + int(45e6), "app", "error", "request failed: 500 Internal Server Error", {}, T_ERR, S_ERR_ROOT)
    # a slow trace with 40 repeated SELECT spans
    t1 = now - int(60 * 1e9)
    span(T_SLOW, S_SLOW_ROOT, None, "GET /slow", t1, 2300.0, "unset", "server",
         {"http.method": "GET", "http.route": "/slow", "http.status_code": 200})
    for i in range(40):
        span(T_SLOW, f"d{i:015x}", S_SLOW_ROOT, "SELECT", t1 + int((10 + i * 50) * 1e6), 8.5 + i % 3, "unset",
             "client", {"db.statement": f"SELECT * FROM items WHERE id = {i}"})
    span(T_SLOW, "e000000000000001", S_SLOW_ROOT, "render", t1 + int(2100e6), 150.0)
    # 80 ordinary traces of 3 spans
    for i in range(80):
        tid = hashlib.md5(f"trace{i}".encode()).hexdigest()
        ts = now - int((500 - i * 5) * 1e9)
        root = f"{i + 1:08x}00000000"
        span(tid, root, None, "GET /items/{id}", ts, 20.0 + i, "unset", "server",
             {"http.method": "GET", "http.route": "/items/{id}", "http.status_code": 200})
        span(tid, f"{i + 1:08x}00000001", root, "SELECT", ts + int(1e6), 5.0)
        span(tid, f"{i + 1:08x}00000002", root, "serialize", ts + int(7e6), 2.0)

    con.executemany(f"INSERT INTO logs ({LOG_COLS}) VALUES ({', '.join('?' * 15)})", logs)
    con.execute(f"UPDATE logs SET template = {template_sql()}")
    con.executemany(f"INSERT INTO spans ({SPAN_COLS}) VALUES ({', '.join('?' * 21)})", spans)
    con.close()
    return {"now": now, "logs": len(logs), "spans": len(spans), "traces": 82}
