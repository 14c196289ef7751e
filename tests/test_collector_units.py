"""Pure parts of the collector: line parsing, multi-line records, Prometheus naming, span histogram."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from legible.collector._lines import MAX_LINE, RecordAssembler, cut, parse_line
from legible.collector._metrics import Derived, render
from legible.collector._otlp import label_name, prom_name
from legible.collector._tail import CHUNK, PASS_CHUNKS, PASS_ROWS, Tailer

NOW = 1_800_000_000_000_000_000


@pytest.mark.parametrize(
    ("line", "level", "body"),
    [
        ('{"level":"warning","message":"disk 91%","host":"a"}', "warn", "disk 91%"),
        ('{"level":50,"msg":"pino error","time":1714557600000}', "error", "pino error"),
        ('{"severity":"CRITICAL","event":"structlog event"}', "fatal", "structlog event"),
        (
            '{"msg":"with exc","exc_info":"Traceback (most recent call last):\\nKeyError: 1"}',
            "error",
            "with exc\nTraceback (most recent call last):\nKeyError: 1",
        ),
        ('time=2024-05-01T10:00:00Z level=debug msg="cache miss" key=k1', "debug", "cache miss"),
        ("2024-05-01 10:00:00,123 ERROR [app] failed", "error", "2024-05-01 10:00:00,123 ERROR [app] failed"),
        ("[2024-05-01T10:00:00Z] [warn] low memory", "warn", "[2024-05-01T10:00:00Z] [warn] low memory"),
        ("WARNING:root:careful", "warn", "WARNING:root:careful"),
        ("just some text with error inside", "info", "just some text with error inside"),
        ("{not json", "info", "{not json"),
        (  # VictoriaMetrics' own log format (lib/logger): time, level, caller, message, tab-separated
            "2024-01-01T00:00:00.000Z\twarn\tVictoriaMetrics/lib/promscrape/scrapework.go:387\tcannot scrape",
            "warn",
            "cannot scrape",
        ),
        ("2024-01-01T00:00:00.000Z\terror\tapp/vminsert/main.go:12\tcannot open", "error", "cannot open"),
        ("2024-01-01 10:00:00\tnot-a-level\tx\ty", "info", "2024-01-01 10:00:00\tnot-a-level\tx\ty"),
        ("a=b but not logfmt", "info", "a=b but not logfmt"),
    ],
)
def test_parse_line(line: str, level: str, body: str) -> None:
    p = parse_line(line, NOW)
    assert (p.level, p.body) == (level, body)


def test_parsed_fields() -> None:
    p = parse_line(
        '{"ts":1714557600.5,"msg":"x","trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736",'
        '"spanId":"00f067aa0ba902b7","n":1,"nested":{"a":[1,2]}}',
        NOW,
    )
    assert p.time_ns == 1714557600_500000000 and p.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert p.span_id == "00f067aa0ba902b7" and p.attributes == {"n": 1, "nested": {"a": [1, 2]}}
    p = parse_line("GET / [trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7] ok", NOW)
    assert (p.trace_id, p.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    # all zeros is no id (W3C Trace Context): what logging integrations print outside a span
    p = parse_line('{"msg":"x","trace_id":"' + "0" * 32 + '","span_id":"' + "0" * 16 + '"}', NOW)
    assert (p.trace_id, p.span_id) == (None, None) and p.attributes["trace_id"] == "0" * 32
    p = parse_line(f"GET / [trace_id={'0' * 32} span_id={'0' * 16}] ok", NOW)
    assert (p.trace_id, p.span_id) == (None, None)
    assert parse_line('{"ts":99999999999999999999,"msg":"far"}', NOW).time_ns is None
    p = parse_line("2024-01-01T00:00:00.000Z\twarn\tlib/logger/flag.go:12\tflag x", NOW)
    assert p.time_ns == 1704067200_000000000 and p.attributes == {"code.location": "lib/logger/flag.go:12"}


def _records(text: str) -> list[tuple[str, str]]:
    asm = RecordAssembler()
    out = []
    off = 0
    for line in text.split("\n"):
        off += len(line) + 1
        out += asm.feed(line, off, NOW)
    out += asm.flush()
    return [(r.parsed.level, r.parsed.body) for r in out]


def test_multiline_records() -> None:
    recs = _records(
        "Traceback (most recent call last):\n  File \"a\", line 1\nKeyError: 'x'\nINFO next\n"
        'INFO request\nTraceback (most recent call last):\n  File "b"\nOSError: y\n'
        'Exception in thread "main" java.lang.RuntimeException: r\n\tat a.B.c(B.java:1)\n'
        "Caused by: x.Y: z\n\t... 1 more\n"
        "panic: oh no\n\ngoroutine 1 [running]:\nmain.main()\n\t/x/main.go:5 +0x1d\n"
    )
    assert recs[0] == ("error", "Traceback (most recent call last):\n  File \"a\", line 1\nKeyError: 'x'")
    assert recs[1] == ("info", "INFO next")
    assert recs[2] == ("info", "INFO request")  # an info line does not adopt the crash that follows
    assert recs[3][0] == "error" and recs[3][1].endswith("OSError: y")
    assert recs[4][0] == "error" and recs[4][1].count("\n") == 3
    assert recs[5] == ("fatal", "panic: oh no")
    assert recs[6][1] == "goroutine 1 [running]:"
    assert recs[7][1] == "main.main()\n\t/x/main.go:5 +0x1d"


def test_safe_offset_stops_before_an_open_record() -> None:
    asm = RecordAssembler()
    assert asm.feed("first", 6, NOW) == [] and asm.safe_offset == 0
    assert len(asm.feed("second", 13, NOW)) == 1 and asm.safe_offset == 6
    asm.flush()
    assert asm.safe_offset == 13


@pytest.mark.parametrize("width", [100, 20])
def test_a_tail_pass_hands_up_to_two_chunks_of_rows_to_the_writer_at_once(tmp_path: Path, width: int) -> None:
    """100-byte lines: a pass reads a second chunk (one chunk holds fewer than PASS_ROWS); 20-byte lines: one."""
    logs = tmp_path / "logs"
    logs.mkdir()
    per_chunk = CHUNK // width
    n = 2 * per_chunk + per_chunk // 2  # two and a half chunks
    lines = [f"line {i:0{width - 6}d}" for i in range(n)]  # each ``width`` bytes with its newline
    (logs / "app.log").write_bytes(("\n".join(lines) + "\n").encode())
    batches: list[list[tuple[object, ...]]] = []
    offsets: list[int] = []
    tailer = Tailer(logs, {}, lambda rows, marks: (batches.append(rows), offsets.extend(o for _, o in marks.values())))
    tailer.start()  # its thread polls; stop() ends the last record and closes the file
    deadline = time.monotonic() + 60
    while sum(map(len, batches)) < n - 1 and time.monotonic() < deadline:  # the last line waits for stop()
        time.sleep(0.01)
    tailer.stop(timeout=30)
    first = len(batches[0])
    if per_chunk < PASS_ROWS:  # the first chunk left the pass short of PASS_ROWS: it read the second too
        assert per_chunk + 1 < first <= PASS_CHUNKS * per_chunk
    else:  # one chunk was enough rows
        assert first <= per_chunk
    bodies = [row[6] for batch in batches for row in batch]
    assert bodies == lines  # every line once, in order
    assert offsets == sorted(offsets) and offsets[-1] == n * width


def test_cut() -> None:
    assert cut("é" * (MAX_LINE + 3)).endswith("…[cut 6 bytes]")
    assert cut("short") == "short"


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
        ("http.server.duration", "ms", "histogram", "http_server_duration_milliseconds"),
        ("process.memory.usage", "By", "gauge", "process_memory_usage_bytes"),
        ("system.cpu.utilization", "1", "gauge", "system_cpu_utilization_ratio"),
        ("shop.orders", "{order}", "counter", "shop_orders"),
        ("requests_total", "", "counter", "requests"),
        ("throughput", "By/s", "gauge", "throughput_bytes_per_second"),
        ("2xx-count", "", "gauge", "_2xx_count"),
    ],
)
def test_prom_name(name: str, unit: str, kind: str, expected: str) -> None:
    assert prom_name(name, unit, kind) == expected


def test_label_name() -> None:
    assert label_name("http.route") == "http_route" and label_name("1a") == "key_1a"


def test_span_histogram_exposition() -> None:
    d = Derived("wt")
    row = ("t", "s", None, None, "svc", "GET /", "server", 0, 0, 0.0, "ok")
    d.observe_spans([row[:9] + (ms,) + row[10:] for ms in (1.0, 2.0, 3.0, 3000.0)])
    d.count_logs([(0, 0, "svc", "error")])
    text = render(d.take()[0]).decode()
    assert (
        'legible_span_duration_seconds_bucket{service="svc",span_kind="server",span_name="GET /",'
        'status_code="ok",vmrange="1.896e-03...2.021e-03",worktree="wt"} 1.0'
    ) in text
    assert 'vmrange="9.380e-01...1.000e+00"' not in text and 'vmrange="2.966e+00...3.162e+00"' in text
    assert 'le="' not in text and 'legible_spans_total{service="svc"' in text
    assert 'legible_log_lines_total{level="error",service="svc",worktree="wt"} 1.0' in text


def test_samples_of_a_failed_push_stay_queued_and_a_full_queue_refuses() -> None:
    import socket

    from legible.collector import _metrics
    from legible.collector._metrics import Derived, Pusher, SelfMetrics
    from legible.collector._otlp import Sample

    with socket.socket() as s:  # a port nothing listens on: VictoriaMetrics is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = Derived("wt")
    samples = [Sample("m", "gauge", "m", {"k": str(i)}, float(i), 0) for i in range(3)]
    assert d.add_samples(samples)
    stats = SelfMetrics()
    assert Pusher(f"http://127.0.0.1:{port}", d, stats, timeout=0.5).push_once() is False
    fams, n = d.take()  # still there, in order, for the next push
    assert n == 3 and [s.value for s in fams[-1].samples] == [0.0, 1.0, 2.0]
    assert b'legible_collector_dropped_total{reason="vm_unavailable"}' not in stats.exposition()
    assert d.add_samples(samples[:1] * _metrics.MAX_SAMPLES)  # fills the queue exactly
    assert not d.add_samples(samples[:1])  # all or nothing: the export is refused, nothing half-kept


def test_a_push_carries_what_changed_and_a_failed_push_resends_everything() -> None:
    d = Derived("wt")
    row = ("t", "s", None, None, "svc", "GET /", "server", 0, 0, 0.0, "ok")
    d.observe_spans([row[:5] + (name,) + row[6:9] + (5.0,) + row[10:] for name in ("GET /a", "GET /b")])
    first = render(d.take()[0]).decode()
    assert 'span_name="GET /a"' in first and 'span_name="GET /b"' in first
    assert d.take()[0] == []  # idle: nothing to push until the periodic full push
    d.observe_spans([row[:5] + ("GET /a",) + row[6:9] + (7.0,) + row[10:]])
    changed = render(d.take()[0]).decode()
    assert 'span_name="GET /a"' in changed and 'span_name="GET /b"' not in changed
    d.resend_all()  # what the pusher calls when a push failed
    again = render(d.take()[0]).decode()
    assert 'span_name="GET /a"' in again and 'span_name="GET /b"' in again


@pytest.mark.parametrize(
    ("line", "level", "body", "logger", "trace", "span"),
    [
        (  # the example shop's stderr format (TracebackFormatter)
            "2026-11-29T07:27:28.258+00:00 ERROR shop trace_id=c4d56abf664f6dd6373bb761c6d6259d Exception on /x",
            "error",
            "Exception on /x",
            "shop",
            "c4d56abf664f6dd6373bb761c6d6259d",
            None,
        ),
        (  # OTEL_PYTHON_LOG_FORMAT's default (opentelemetry-instrumentation-logging)
            "2026-11-29 07:27:28,258 WARNING [shop.web] [app.py:12] [trace_id=c4d56abf664f6dd6373bb761c6d6259d "
            "span_id=b7ad6b7169203331 resource.service.name=shop trace_sampled=True] - low stock",
            "warn",
            "low stock",
            "shop.web",
            "c4d56abf664f6dd6373bb761c6d6259d",
            "b7ad6b7169203331",
        ),
        ("2026-11-29T07:27:28Z INFO trace_id=- started", "info", "started", None, None, None),
        # not a level word after the time: the line stays whole
        ("2026-11-29T07:27:28Z hello trace_id=c4d56abf664f6dd6373bb761c6d6259d x", "info", None, None, None, None),
    ],
)
def test_trace_context_prefix_is_parsed(
    line: str, level: str, body: str | None, logger: str | None, trace: str | None, span: str | None
) -> None:
    p = parse_line(line, 1_800_000_000 * 10**9)
    assert p.level == level
    if body is None:
        assert p.body == line and p.trace_id == "c4d56abf664f6dd6373bb761c6d6259d"
        return
    assert (p.body, p.attributes.get("logger"), p.trace_id, p.span_id) == (body, logger, trace, span)
    assert p.time_ns is not None and p.explicit_level


def test_rows_through_the_twin_messages_equal_rows_through_the_real_ones() -> None:
    """Attributes read as encoded KeyValues (and remembered) give exactly the rows of the real messages."""
    import time

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from legible.collector._otlp import decode, decode_twin, log_rows, span_rows

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    spans = rs.scope_spans.add().spans
    for i in range(3):
        sp = spans.add(trace_id=bytes([i + 1]) * 16, span_id=b"\x02" * 8, name="GET /", start_time_unix_nano=10)
        sp.attributes.add(key="http.method").value.string_value = "GET"
        sp.attributes.add(key="n").value.int_value = i
        sp.attributes.add(key="long").value.string_value = "x" * 5000  # cut, and too long to be remembered
        sp.attributes.add(key="arr").value.array_value.values.add().double_value = 1.5
        ev = sp.events.add(name="exception")
        ev.attributes.add(key="exception.type").value.string_value = "ValueError"
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    for i in range(3):
        lr = records.add(severity_number=17, trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
        lr.body.string_value = f"m{i}"
        lr.attributes.add(key="k").value.bool_value = bool(i % 2)
    now = time.time_ns()
    for sig, req_, fn in (("traces", req, span_rows), ("logs", logs, log_rows)):
        body = req_.SerializeToString()
        real = fn(decode(sig, body, "protobuf"), now).rows  # type: ignore[operator]
        assert real and real == fn(decode_twin(sig, body), now).rows == fn(decode_twin(sig, body), now).rows  # type: ignore[operator]
    assert (
        '"long":"' + "x" * 4096 + "…[cut 904 bytes]"
        in span_rows(decode_twin("traces", req.SerializeToString()), now).rows[0][12]
    )


def test_iso_times_are_exact_and_each_minute_parsed_once_gives_the_same_answer() -> None:
    import datetime as dt

    from legible.collector._lines import parse_time

    assert parse_time("2024-05-01T10:00:00.123456789Z") == 1714557600_123456789
    assert parse_time("2024-05-01 12:00:01,5+02:00") == 1714557601_500000000
    assert parse_time("2024-05-01T10:00:59.999-05") == 1714575659_999000000
    naive = "2024-05-01 10:00:07.25"  # local time, as Python's logging writes it
    assert parse_time(naive) == int(dt.datetime.fromisoformat(naive[:-3]).timestamp()) * 10**9 + 250_000_000
    assert parse_time(naive) == parse_time(naive)  # the second comes from the remembered minute
    assert parse_time("2024-05-01T10:00:00 UTC") is None and parse_time("2024-05-01") == int(
        dt.datetime(2024, 5, 1).timestamp() * 1e9
    )


def test_arrow_batch_of_repeated_and_mixed_string_columns_holds_the_rows_values() -> None:
    from legible.collector._writer import LOG_COLUMNS, _arrow

    def row(i: int, service: str, source: object, trace: str | None) -> tuple[object, ...]:
        return (i, i, service, "info", 9, "xyxzx"[i], f"b{i}", "{}", "{}", None, trace, None, source)

    # source and resource of one value (built by repeat), scope all None (nulls); service and trace id
    # differ only in the middle, severity text has its first value at both ends and the middle (all three
    # converted one by one)
    rows = [row(i, "app", "stdout", None if i != 2 else "t") for i in range(5)]
    rows[2] = (*rows[2][:2], "db", *rows[2][3:])
    table = _arrow(LOG_COLUMNS, rows, 7)
    assert table.column("seq").to_pylist() == [7, 8, 9, 10, 11]
    for k, (name, _) in enumerate(LOG_COLUMNS):
        assert table.column(name).to_pylist() == [r[k] for r in rows], name
    # a non-string value in a string column is refused as before (the writer then sifts the row out)
    with pytest.raises((TypeError, ValueError)):
        _arrow(LOG_COLUMNS, [row(0, "app", "stdout", None), row(1, "app", 5, None)], 0)
    with pytest.raises((TypeError, ValueError)):
        _arrow(LOG_COLUMNS, [row(0, "app", 5, None), row(1, "app", 5, None)], 0)
