"""The collector process: OTLP/HTTP and OTLP/gRPC receivers, the file tailer, the writer and the pusher.

HTTP (``http.server.ThreadingHTTPServer``, HTTP/1.1 keep-alive; OTLP exporters send few, large
requests, so a thread per connection is not the bottleneck, decoding is):

==================  ===================================================================================
``POST /v1/traces`` OTLP/HTTP export (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
``/v1/logs``        ``application/x-protobuf`` or ``application/json``, optional ``Content-Encoding:
``/v1/metrics``     gzip``. 200 with the Export*ServiceResponse in the request's encoding (with
                    ``partial_success`` when items were rejected); 400 with a ``google.rpc.Status`` for
                    an undecodable payload; 415 for another content type or encoding; 413 above
                    :data:`MAX_BODY` bytes (compressed or not); 411 without ``Content-Length``; 503 with
                    ``Retry-After`` when the writer is full (the exporter retries).
``POST /query``     ``{"sql", "params", "max_rows", "worktree"}`` -> ``{"columns", "rows",
                    "truncated"}``; 400 ``{"error", "hint"}`` for SQL that is refused; 409 when
                    ``worktree`` is not this collector's (see :mod:`legible.store`).
``GET /health``     200 ``ok`` once the store is open and every receiver listens.
``POST /flush``     push the derived metrics now and flush VictoriaMetrics' buffers (read-your-writes).
``GET /metrics``    the collector's own counters (:class:`~legible.collector._metrics.SelfMetrics`).
==================  ===================================================================================

gRPC: the three OTLP services (names from the ``opentelemetry-proto`` descriptors), registered as generic
handlers that take raw bytes so an undecodable message is counted and answered ``INVALID_ARGUMENT``;
``UNAVAILABLE`` when the writer is full. Gzip and message size limits are grpcio's.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import prometheus_client
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from legible._errors import UsageError
from legible.collector._metrics import Derived, Pusher, SelfMetrics
from legible.collector._otlp import (
    PayloadError,
    decode,
    encode_response,
    log_rows,
    metric_samples,
    response_message,
    span_rows,
)
from legible.collector._tail import Tailer
from legible.collector._writer import Writer

#: Largest request body accepted, before and after decompression, in bytes.
MAX_BODY = 32 * 1024 * 1024
_PATHS = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}
_TYPES = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_GRPC_SERVICES = {
    "traces": trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    "logs": logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
    "metrics": metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away (e.g. after a 413 sent without reading its body)
        print(f"collector: HTTP handler error: {type(exc).__name__}: {exc}", file=sys.stderr)


class Busy(Exception):
    """The writer has :data:`~legible.collector._writer.MAX_PENDING` rows waiting; retry later."""


def _status_body(code: int, message: str, encoding: str) -> tuple[bytes, str]:
    try:
        from google.rpc import status_pb2
    except ImportError:  # googleapis-common-protos is optional: fall back to plain text
        return message.encode(), "text/plain; charset=utf-8"
    st = status_pb2.Status(code=code, message=message)
    if encoding == "json":
        from google.protobuf import json_format

        return json_format.MessageToJson(st, indent=None).encode(), "application/json"
    return st.SerializeToString(), "application/x-protobuf"


def _gunzip(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data, limit + 1)
    if len(out) > limit:
        raise OverflowError
    if not d.eof:
        raise PayloadError("truncated gzip stream")
    return out


class Collector:
    """Everything one collector process runs; :meth:`start` then :meth:`stop`.

    Args:
        db: the DuckDB file.
        logs_dir: the supervisor's logs directory to tail (``None``: no tailing).
        vm_url: VictoriaMetrics base URL, or ``""``.
        worktree: the worktree key (label ``worktree`` and the ``/query`` guard).
        http_port: OTLP/HTTP port on 127.0.0.1 (0: any free port, see :attr:`http_port`).
        grpc_port: OTLP/gRPC port on 127.0.0.1 (0: any; -1: no gRPC).
        max_db_mb: store size cap in MiB (0: none).

    """

    def __init__(
        self,
        db: Path,
        logs_dir: Path | None,
        vm_url: str,
        worktree: str,
        http_port: int = 0,
        grpc_port: int = 0,
        max_db_mb: int = 512,
    ) -> None:
        self.worktree = worktree
        self.stats = SelfMetrics()
        self.derived = Derived(worktree)
        self._delta: dict[Any, float] = {}
        self._delta_lock = threading.Lock()
        self.writer = Writer(
            db,
            max_bytes=max_db_mb * 1024 * 1024,
            on_logs=self.derived.count_logs,
            on_spans=self.derived.observe_spans,
            on_written=lambda t, n: self.stats.written.labels(t).inc(n),
            on_pruned=lambda t, n: self.stats.pruned.labels(t).inc(n),
            on_dropped=lambda t, n: self.stats.rejected.labels(t, "unstorable").inc(n) if n else None,
            on_deduplicated=self.stats.deduplicated.inc,
        )
        self.pusher = Pusher(vm_url, self.derived, self.stats)
        self.tailer = Tailer(logs_dir, self.writer.offsets(), self._tail_sink) if logs_dir is not None else None
        handler = type("Handler", (_Handler,), {"collector": self})
        self.httpd = _Server(("127.0.0.1", http_port), handler)
        self.http_port = self.httpd.server_address[1]
        self.grpc_server: grpc.Server | None = None
        self.grpc_port = -1
        if grpc_port >= 0:
            self.grpc_server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="grpc"),
                options=[
                    ("grpc.max_receive_message_length", MAX_BODY),
                    ("grpc.so_reuseport", 0),
                ],
            )
            self.grpc_server.add_generic_rpc_handlers(
                [
                    grpc.method_handlers_generic_handler(
                        _GRPC_SERVICES[sig],
                        {
                            "Export": grpc.unary_unary_rpc_method_handler(
                                self._grpc_export(sig),
                                request_deserializer=None,
                                response_serializer=lambda m: m.SerializeToString(),
                            )
                        },
                    )
                    for sig in _GRPC_SERVICES
                ]
            )
            self.grpc_port = self.grpc_server.add_insecure_port(f"127.0.0.1:{grpc_port}")
            if self.grpc_port == 0:
                raise OSError(f"cannot bind OTLP/gRPC on 127.0.0.1:{grpc_port}")
        self._http_thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)
        self.ready = False

    # ---- lifecycle ----

    def start(self) -> None:
        """Start the writer, pusher, tailer and both receivers."""
        self.writer.start()
        self.pusher.start()
        if self.tailer is not None:
            self.tailer.start()
        if self.grpc_server is not None:
            self.grpc_server.start()
        self._http_thread.start()
        self.ready = True

    def stop(self) -> None:
        """Stop receiving, flush everything to the store, push once more, close the file."""
        self.ready = False
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=0.3)
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.tailer is not None:
            self.tailer.stop()
        self.writer.close()
        self.pusher.stop()

    # ---- ingestion (shared by HTTP and gRPC) ----

    def _tail_sink(self, rows: list[tuple[Any, ...]], offsets: dict[str, tuple[int, int]]) -> None:
        self.writer.add("logs", rows, offsets, block=True)
        if rows:
            self.stats.received.labels("stdout").inc(len(rows))

    def ingest(self, sig: str, body: bytes, encoding: str) -> tuple[int, str]:
        """Decode and store one export request; return ``(rejected, message)`` for ``partial_success``.

        Raises:
            PayloadError: undecodable (400 / INVALID_ARGUMENT).
            Busy: the writer is full (503 / UNAVAILABLE).

        """
        msg = decode(sig, body, encoding)
        now = time.time_ns()
        if sig == "metrics":
            with self._delta_lock:
                d = metric_samples(msg, self.worktree, self._delta)
            dropped = self.derived.add_samples(d.rows)
            if dropped:
                self.stats.dropped.labels("queue_full").inc(dropped)
        else:
            d = span_rows(msg, now) if sig == "traces" else log_rows(msg, now)
            if d.rows and not self.writer.add("spans" if sig == "traces" else "logs", d.rows):
                self.stats.rejected.labels(sig, "busy").inc(len(d.rows))
                raise Busy
        accepted = d.received - (d.rejected if sig != "metrics" else 0)
        if accepted > 0:
            self.stats.received.labels(sig).inc(accepted)
        if d.rejected:
            self.stats.rejected.labels(sig, "invalid_item").inc(d.rejected)
        return d.rejected, d.reason

    def _grpc_export(self, sig: str) -> Any:
        def export(request: bytes, context: grpc.ServicerContext) -> Any:
            try:
                rejected, message = self.ingest(sig, request, "protobuf")
            except PayloadError as e:
                self.stats.rejected.labels(sig, "decode").inc()
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            except Busy:
                context.abort(grpc.StatusCode.UNAVAILABLE, "collector busy, retry")
            return response_message(sig, rejected, message)

        return export

    def query(self, doc: Any) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /query``; return ``(status, JSON document)``."""
        if not isinstance(doc, dict) or not isinstance(doc.get("sql"), str):
            return 400, {"error": 'query: expected {"sql": ..., "params": ...}', "hint": ""}
        wt = doc.get("worktree")
        if wt and wt != self.worktree:
            return 409, {"error": f"this collector serves worktree {self.worktree}, not {wt}", "hint": ""}
        try:
            max_rows = int(doc.get("max_rows") or 10_000)
            cols, rows, truncated = self.writer.query(doc["sql"], doc.get("params"), max_rows)
        except UsageError as e:
            return 400, {"error": e.message, "hint": e.hint}
        except (TypeError, ValueError) as e:
            return 400, {"error": f"query: {e}", "hint": ""}
        return 200, {"columns": cols, "rows": rows, "truncated": truncated}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "legible-collector"
    sys_version = ""
    collector: Collector

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == "/health":
            ok = self.collector.ready
            self._send(200 if ok else 503, b"ok\n" if ok else b"starting\n", "text/plain; charset=utf-8")
        elif path == "/metrics":
            self.collector.stats.pending.set(self.collector.writer.pending)
            self.collector.stats.db_bytes.set(self.collector.writer.used_bytes)
            self._send(200, self.collector.stats.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _read_body(self, sig: str) -> bytes | None:
        c = self.collector
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            c.stats.rejected.labels(sig, "no_length").inc()
            self._send(411, b"Content-Length required\n", "text/plain; charset=utf-8")
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(400, b"bad Content-Length\n", "text/plain; charset=utf-8")
            return None
        if length > MAX_BODY:
            self.close_connection = True  # do not read it; the connection is dropped after the answer
            c.stats.rejected.labels(sig, "too_large").inc()
            self._send(413, b"request body too large\n", "text/plain; charset=utf-8")
            return None
        return self.rfile.read(length)

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        c = self.collector
        if path == "/flush":  # push derived metrics and have VictoriaMetrics index them now
            self._read_body("flush")
            ok = c.pusher.flush_now()
            self._send(200 if ok else 503, b"ok\n" if ok else b"push failed\n", "text/plain; charset=utf-8")
            return
        if path == "/query":
            body = self._read_body("query")
            if body is None:
                return
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            code, answer = c.query(doc)
            self._send(code, json.dumps(answer).encode(), "application/json")
            return
        sig = _PATHS.get(path)
        if sig is None:
            self._read_body("unknown")
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        encoding = _TYPES.get(ctype)
        body = self._read_body(sig)
        if body is None:
            return
        if encoding is None:
            c.stats.rejected.labels(sig, "content_type").inc()
            self._send(415, f"unsupported content type {ctype!r}\n".encode(), "text/plain; charset=utf-8")
            return
        cenc = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if cenc == "gzip":
                body = _gunzip(body, MAX_BODY)
            elif cenc not in ("identity", ""):
                c.stats.rejected.labels(sig, "content_encoding").inc()
                self._send(415, f"unsupported content encoding {cenc!r}\n".encode(), "text/plain; charset=utf-8")
                return
            rejected, message = c.ingest(sig, body, encoding)
        except OverflowError:
            c.stats.rejected.labels(sig, "too_large").inc()
            self._send(413, b"decompressed body too large\n", "text/plain; charset=utf-8")
            return
        except (PayloadError, zlib.error) as e:
            c.stats.rejected.labels(sig, "decode").inc()
            out, otype = _status_body(3, str(e), encoding)
            self._send(400, out, otype)
            return
        except Busy:
            out, otype = _status_body(14, "collector busy, retry", encoding)
            self._send(503, out, otype, {"Retry-After": "1"})
            return
        out = encode_response(sig, rejected, message, encoding)
        self._send(200, out, "application/json" if encoding == "json" else "application/x-protobuf")


def serve(args: Any) -> int:
    """Run a collector until SIGTERM/SIGINT; return the exit code (0 after a clean shutdown).

    Args:
        args: parsed command line (see :mod:`legible.collector.__main__`).

    """
    try:
        col = Collector(
            db=Path(args.db),
            logs_dir=Path(args.logs_dir) if args.logs_dir else None,
            vm_url=args.vm_url or "",
            worktree=args.worktree,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            max_db_mb=args.max_db_mb,
        )
    except OSError as e:
        print(f"collector: cannot start: {e}", file=sys.stderr)
        return 5
    except Exception as e:  # e.g. the DuckDB file is held by another process
        print(f"collector: cannot start: {type(e).__name__}: {' '.join(str(e).split())[:300]}", file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    col.start()
    print(
        f"collector: ready http=127.0.0.1:{col.http_port} grpc=127.0.0.1:{col.grpc_port} db={args.db}",
        file=sys.stderr,
        flush=True,
    )
    while not done.wait(1.0):
        pass
    col.stop()
    return 0
