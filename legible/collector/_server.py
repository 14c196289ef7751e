"""The collector process: OTLP/HTTP and OTLP/gRPC receivers, the file tailer, the writer and the pusher.

HTTP (``http.server.ThreadingHTTPServer``, HTTP/1.1 keep-alive, a thread per connection, ``TCP_NODELAY``,
a :data:`CONN_TIMEOUT_S` socket timeout per connection and a listen backlog of :data:`BACKLOG`; OTLP
exporters send few, large requests, so decoding is the bottleneck, not threads):

==================  ===================================================================================
``POST /v1/traces`` OTLP/HTTP export (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
``/v1/logs``        ``application/x-protobuf`` or ``application/json``, optional ``Content-Encoding:
``/v1/metrics``     gzip``. 200 with the Export*ServiceResponse in the request's encoding (with
                    ``partial_success`` when items were rejected) only once every accepted item is queued
                    for the store (or for VictoriaMetrics); 400 with a ``google.rpc.Status`` for an
                    undecodable payload (JSON nested too deeply included); 415 for another content type
                    or encoding; 413 above :data:`MAX_BODY` bytes (compressed or not; a body up to
                    :data:`DRAIN_MAX` is read first so the client sees the answer); 411 for chunked
                    bodies; 429 with ``Retry-After`` when the queue is full and 503 with ``Retry-After``
                    while the store is failing (the OTLP spec's retryable codes).
``POST /query``     token, ``application/json`` ``{"sql", "params", "max_rows", "worktree"}`` ->
                    ``{"columns", "rows", "truncated"}``; 400 ``{"error", "hint"}`` for SQL that is
                    refused; 409 when ``worktree`` is not this collector's (see :mod:`legible.store`).
``GET /health``     200 ``ok`` once the store is open and every receiver listens; 503 with the cause
                    while the store cannot be written.
``GET /status``     token; :data:`STATUS_SCHEMA`, see :meth:`Collector.status`.
``POST /flush``     token; push the derived metrics and flush VictoriaMetrics' buffers (read-your-writes).
``GET /metrics``    the collector's own counters (:class:`~legible.collector._metrics.SelfMetrics`).
==================  ===================================================================================

Least privilege: every listener binds 127.0.0.1. The non-OTLP endpoints answer 403 unless ``Host`` is
``127.0.0.1:<port>`` or ``localhost:<port>`` (DNS rebinding); ``/query``, ``/flush`` and ``/status`` answer
401 without ``Authorization: Bearer <token>``, the random token written to ``--token-file`` (mode 0600,
atomically) before ``/health`` says ready; ``/query`` answers 415 unless the body is ``application/json``
(a web page cannot send that cross-origin without a CORS preflight, which is never granted).

An HTTP/2 connection preface (``PRI * HTTP/2.0``, RFC 9113 section 3.4: an OTLP/gRPC exporter pointed at
the HTTP port) is read and the connection closed, so the exporter fails at once with ``UNAVAILABLE``
(an HTTP/2 ``GOAWAY`` instead makes grpcio retry transparently until its deadline, measured); it is
counted as refused reason ``grpc_on_http_port`` and printed once to the collector's log, naming the gRPC
port.

gRPC: the three OTLP services (names from the ``opentelemetry-proto`` descriptors), registered as generic
handlers that take raw bytes so an undecodable message is counted and answered ``INVALID_ARGUMENT``;
``UNAVAILABLE`` when the queue is full or the store is failing (retryable for every OTLP exporter).
Gzip and message size limits are grpcio's.
"""

from __future__ import annotations

import gc
import hmac
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
import zlib
from collections import Counter as Tally
from collections.abc import Mapping
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import grpc
import prometheus_client
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from legible._errors import UsageError
from legible.collector._forward import Forwarder, tail_request
from legible.collector._metrics import Derived, Pusher, SelfMetrics
from legible.collector._otlp import (
    PayloadError,
    decode,
    decode_twin,
    encode_response,
    log_rows,
    metric_samples,
    response_message,
    span_rows,
    twin_pays,
)
from legible.collector._tail import Tailer
from legible.collector._writer import MEMORY_LIMIT, QUERY_TIMEOUT_S, Writer

if TYPE_CHECKING:
    from legible.contract import CollectorLastReceived, CollectorSignals, CollectorStatusDoc, ForwardQueueDoc

#: Largest request body accepted, before and after decompression, in bytes.
MAX_BODY = 32 * 1024 * 1024
#: Largest body read and discarded before a 413 (larger ones are answered unread and the connection closed).
DRAIN_MAX = 2 * MAX_BODY
#: ``gc.set_threshold`` of the collector process: young collections every 50,000 net allocations instead
#: of 700 (memory stays bounded by the queue's own bound, :data:`~legible.collector._writer.MAX_PENDING`).
GC_THRESHOLDS = (50_000, 20, 20)
#: Seconds a connection may stay silent (between requests or mid-request) before it is closed.
CONN_TIMEOUT_S = 30.0
#: Listen backlog of the HTTP socket.
BACKLOG = 128
#: Seconds OTLP/gRPC calls under way may take to finish at shutdown (they are quick unless the machine is busy).
GRPC_GRACE_S = 5.0
#: Seconds between the HTTP server's checks for a stop request. ``stop`` does not wait them out: it connects to
#: the port, which ends the server's wait at once (issue 12: 0.05 s before, 20 idle wake-ups a second).
HTTP_POLL_S = 1.0
#: Schema of ``GET /status``.
STATUS_SCHEMA: Final = "legible.collector-status/v1"
_SIGNALS = ("traces", "logs", "metrics")
_H2_PREFACE = b"PRI * HTTP/2.0"
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
    request_queue_size = BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away (e.g. after a 413 sent without reading its body)
        print(f"collector: HTTP handler error: {type(exc).__name__}: {exc}", file=sys.stderr)


class Busy(Exception):
    """No room to queue the request's items (HTTP 429 / gRPC ``UNAVAILABLE``); the sender retries.

    Attributes:
        failing: the store is failing (HTTP 503) rather than merely full.

    """

    def __init__(self, message: str, failing: bool = False) -> None:
        super().__init__(message)
        self.failing = failing


def write_token(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` with mode 0600, atomically (a temp file in the same directory, renamed).

    Raises:
        OSError: the directory cannot be written.

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        token_file: where :meth:`start` writes the bearer token (``None``: not written; it is
            :attr:`token`).
        memory_limit: DuckDB's buffer pool size, e.g. ``"128MB"``.
        query_timeout: seconds after which a ``/query`` is interrupted (and longest wait for a query slot).
        forwarder: where accepted spans and logs (OTLP and tailed lines) are also queued for a shared OTLP
            endpoint (:mod:`legible.collector._forward`), or ``None``.

    Raises:
        OSError: a port cannot be bound.
        duckdb.Error: the store cannot be opened.

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
        token_file: Path | None = None,
        memory_limit: str = MEMORY_LIMIT,
        query_timeout: float = QUERY_TIMEOUT_S,
        forwarder: Forwarder | None = None,
    ) -> None:
        self.query_timeout = query_timeout
        self.forwarder = forwarder
        self.worktree = worktree
        self.token = secrets.token_urlsafe(32)
        self.token_file = token_file
        self._tally_lock = threading.Lock()
        self.received: Tally[str] = Tally()
        self.refused: Tally[str] = Tally()
        self.last_received_ns: dict[str, int | None] = dict.fromkeys(_SIGNALS)
        self._warned_h2 = False
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
            on_dropped=lambda t, n: self.refuse(t, "unstorable", n) if n else None,
            on_deduplicated=self.stats.deduplicated.inc,
            memory_limit=memory_limit,
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
        # serve_forever checks for shutdown() every poll_interval s; stop() wakes it with a connection instead
        self._http_thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": HTTP_POLL_S}, name="http", daemon=True
        )
        self.ready = False

    # ---- lifecycle ----

    def start(self) -> None:
        """Write the token file, then start the writer, pusher, tailer and both receivers.

        Raises:
            OSError: the token file cannot be written.

        """
        if self.token_file is not None:
            write_token(self.token_file, self.token)
        self.writer.start()
        self.pusher.start()
        if self.forwarder is not None:
            self.forwarder.start()
        if self.tailer is not None:
            self.tailer.start()
        if self.grpc_server is not None:
            self.grpc_server.start()
        self._http_thread.start()
        self.ready = True

    def stop(self) -> None:
        """Stop receiving, write every accepted row to the store, push once more, close the file."""
        self.ready = False
        if self.grpc_server is not None:  # new RPCs are refused; those under way finish (and are answered)
            self.grpc_server.stop(grace=GRPC_GRACE_S).wait(GRPC_GRACE_S + 1)
        self._shutdown_http()
        self.httpd.server_close()
        if self.tailer is not None:
            self.tailer.stop()
        self.writer.close()
        self.pusher.stop()
        if self.forwarder is not None:
            self.forwarder.stop()

    def _shutdown_http(self) -> None:
        """``httpd.shutdown()`` without waiting out :data:`HTTP_POLL_S`: a connection to the port wakes its loop."""
        if not self._http_thread.is_alive():
            return
        t = threading.Thread(target=self.httpd.shutdown, name="http-shutdown", daemon=True)
        t.start()
        while t.is_alive():
            try:  # accepted and closed at once: the handler reads end of file and returns
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1.0).close()
            except OSError:
                pass
            t.join(0.05)

    @property
    def healthy(self) -> bool:
        """True while started and the store can be written."""
        return self.ready and not self.writer.error

    def refuse(self, sig: str, reason: str, n: int = 1) -> None:
        """Count ``n`` refused items or requests (``/status`` ``refused`` and the ``rejected`` counter)."""
        self.stats.rejected.labels(sig, reason).inc(n)
        with self._tally_lock:
            self.refused[reason] += n

    def _count_received(self, sig: str, n: int) -> None:
        self.stats.received.labels(sig).inc(n)
        with self._tally_lock:
            self.received[sig] += n
            self.last_received_ns[sig] = time.time_ns()

    def status(self) -> CollectorStatusDoc:
        """Return the ``GET /status`` document (counts since this process started).

        Shape: ``{"schema": STATUS_SCHEMA, "healthy": bool, "error": str, "pending": rows queued,
        "received": {"traces": spans, "logs": records, "metrics": data points}, "refused": {reason: n},
        "last_received_ns": {signal: Unix ns of the last accepted export, or None}, "forward": the
        forwarder's :meth:`~legible.collector._forward.Forwarder.status` or None}``.
        """
        with self._tally_lock:
            received = {k: self.received[k] for k in _SIGNALS}
            refused = dict(sorted(self.refused.items()))
            last = dict(self.last_received_ns)
        return {
            "schema": STATUS_SCHEMA,
            "healthy": self.healthy,
            "error": self.writer.error if self.ready else "starting",
            "pending": self.writer.pending,
            "received": cast("CollectorSignals", received),
            "refused": refused,
            "last_received_ns": cast("CollectorLastReceived", last),
            "forward": cast("ForwardQueueDoc", self.forwarder.status()) if self.forwarder is not None else None,
        }

    def h2_refused(self) -> None:
        """Count an HTTP/2 preface on the HTTP port; say so on stderr (the collector's log) the first time."""
        self.refuse("any", "grpc_on_http_port")
        msg = (
            f"this is the OTLP/HTTP port; send OTLP/gRPC to 127.0.0.1:{self.grpc_port}"
            if self.grpc_port > 0
            else "this is the OTLP/HTTP port and this collector has no OTLP/gRPC receiver"
        )
        if not self._warned_h2:
            self._warned_h2 = True
            print(
                f"collector: an HTTP/2 (gRPC?) client connected to the OTLP/HTTP port {self.http_port}: {msg} "
                "(set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf or use the gRPC port)",
                file=sys.stderr,
                flush=True,
            )

    # ---- ingestion (shared by HTTP and gRPC) ----

    def _tail_sink(self, rows: list[tuple[Any, ...]], offsets: dict[str, tuple[int, int]]) -> None:
        self.writer.add("logs", rows, offsets, block=True)
        if rows:
            self.stats.received.labels("stdout").inc(len(rows))
            if self.forwarder is None:  # converting to OTLP costs more than parsing the lines: only when forwarding
                return
            try:
                request = tail_request(rows)
            except Exception as e:  # noqa: BLE001 - never let forwarding stop the tailer
                request = None
                if self.forwarder is not None:
                    self.forwarder.dropped["logs"] += len(rows)
                    self.forwarder.last_error = f"cannot convert tailed lines: {e}"
            if request is not None:
                self._forward("logs", request, len(rows))

    def _forward(self, sig: str, msg: Any, items: int) -> None:
        if self.forwarder is None:
            return
        try:
            self.forwarder.offer(sig, msg, items)
        except Exception as e:  # noqa: BLE001 - a full disk, a bad message: count the loss, never fail the stack
            self.forwarder.dropped[sig] += items
            self.forwarder.last_error = f"cannot queue: {type(e).__name__}: {e}"

    def ingest(self, sig: str, body: bytes, encoding: str) -> tuple[int, str]:
        """Decode and store one export request; return ``(rejected, message)`` for ``partial_success``.

        Raises:
            PayloadError: undecodable (400 / INVALID_ARGUMENT).
            Busy: no room in the queue (429 / UNAVAILABLE) or the store is failing (503 / UNAVAILABLE);
                nothing of the request was kept.

        """
        if self.writer.error:
            self.refuse(sig, "unhealthy")
            raise Busy(f"collector unhealthy: {self.writer.error}", failing=True)
        try:
            msg = decode(sig, body, encoding)
        except PayloadError:
            self.refuse(sig, "decode")
            raise
        now = time.time_ns()
        if sig == "metrics":
            with self._delta_lock:
                d = metric_samples(msg, self.worktree, self._delta)
            if not self.derived.add_samples(d.rows):
                self.refuse(sig, "busy", len(d.rows))
                raise Busy("collector busy, retry")
        else:
            if not self.writer.has_room(_items(sig, msg)):  # refuse before the costly part: building rows
                self.refuse(sig, "busy", _items(sig, msg))
                raise Busy("collector busy, retry", failing=bool(self.writer.error))
            rows_of = decode_twin(sig, body) if encoding != "json" and twin_pays() else msg
            d = span_rows(rows_of, now) if sig == "traces" else log_rows(rows_of, now)
            if d.rows and not self.writer.add("spans" if sig == "traces" else "logs", d.rows):
                self.refuse(sig, "busy", len(d.rows))
                raise Busy("collector busy, retry", failing=bool(self.writer.error))
        accepted = d.received - (d.rejected if sig != "metrics" else 0)
        if accepted > 0:
            self._count_received(sig, accepted)
            if sig != "metrics":
                self._forward(sig, msg, accepted)
        if d.rejected:
            self.refuse(sig, "invalid_item", d.rejected)
        return d.rejected, d.reason

    def _grpc_export(self, sig: str) -> Any:
        def export(request: bytes, context: grpc.ServicerContext) -> Any:
            try:
                rejected, message = self.ingest(sig, request, "protobuf")
            except PayloadError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            except Busy as e:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
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
            cols, rows, truncated = self.writer.query(doc["sql"], doc.get("params"), max_rows, self.query_timeout)
        except UsageError as e:
            return 400, {"error": e.message, "hint": e.hint}
        except (TypeError, ValueError) as e:
            return 400, {"error": f"query: {e}", "hint": ""}
        return 200, {"columns": cols, "rows": rows, "truncated": truncated}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "legible-collector"
    sys_version = ""
    disable_nagle_algorithm = True  # TCP_NODELAY: no 40 ms Nagle + delayed-ACK stall per keep-alive answer
    timeout = CONN_TIMEOUT_S
    collector: Collector

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def parse_request(self) -> bool:
        raw: bytes = getattr(self, "raw_requestline", b"")
        if raw.startswith(_H2_PREFACE):  # an HTTP/2 (gRPC) client on the HTTP/1.1 port
            self.close_connection = True
            self.collector.h2_refused()
            try:  # read the rest of the preface, then close: the gRPC client fails at once with UNAVAILABLE
                self.rfile.read(8)  # "\r\nSM\r\n\r\n"
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        return super().parse_request()

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

    def _text(self, code: int, text: str, extra: dict[str, str] | None = None) -> None:
        self._send(code, text.encode(), "text/plain; charset=utf-8", extra)

    def _json(self, code: int, doc: Mapping[str, Any]) -> None:
        self._send(code, json.dumps(doc).encode(), "application/json")

    def _local_host(self) -> bool:
        """True when ``Host`` names this loopback listener (a DNS-rebinding page sends its own name)."""
        port = self.collector.http_port
        host = (self.headers.get("Host") or "").strip().lower()
        if host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return True
        self.collector.refuse("any", "foreign_host")
        self.close_connection = True  # a request body, if any, is left unread
        self._json(403, {"error": f"Host {host!r} is not this collector", "hint": f"use 127.0.0.1:{port}"})
        return False

    def _authorized(self) -> bool:
        got = self.headers.get("Authorization") or ""
        want = f"Bearer {self.collector.token}"
        if hmac.compare_digest(got.encode(), want.encode()):
            return True
        self.collector.refuse("any", "unauthorized")
        self.close_connection = True  # a request body, if any, is left unread
        where = self.collector.token_file or "the collector's --token-file"
        self._send(
            401,
            json.dumps({"error": "missing or wrong bearer token", "hint": f"send the token in {where}"}).encode(),
            "application/json",
            {"WWW-Authenticate": 'Bearer realm="legible-collector"'},
        )
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        c = self.collector
        if not self._local_host():
            return
        if path == "/health":
            if c.healthy:
                self._text(200, "ok\n")
            else:
                self._text(503, f"unhealthy: {c.writer.error}\n" if c.ready else "starting\n")
        elif path == "/metrics":
            c.stats.pending.set(c.writer.pending)
            c.stats.db_bytes.set(c.writer.used_bytes)
            self._send(200, c.stats.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/status":
            if self._authorized():
                self._json(200, c.status())
        else:
            self._text(404, "not found\n")

    def _read_body(self, sig: str) -> bytes | None:
        c = self.collector
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            c.refuse(sig, "no_length")
            self._text(411, "Content-Length required\n")
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._text(400, "bad Content-Length\n")
            return None
        if length > MAX_BODY:
            self.close_connection = True
            c.refuse(sig, "too_large")
            if length <= DRAIN_MAX:  # read it so the client, still sending, gets the answer (no broken pipe)
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        return None
                    left -= len(chunk)
            self._text(413, f"request body too large (at most {MAX_BODY} bytes)\n")
            return None
        return self.rfile.read(length)

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        try:
            if path in _PATHS:
                self._export(_PATHS[path])
            elif path in ("/query", "/flush"):
                self._control(path)
            else:
                if self._read_body("unknown") is not None:
                    self._text(404, "not found\n")
        except (ConnectionError, TimeoutError):
            raise
        except Exception as e:  # a bug must still answer, and must not take the thread's connection silently
            print(f"collector: POST {path}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            self.close_connection = True
            self._text(500, f"internal error: {type(e).__name__}\n")

    def _control(self, path: str) -> None:
        c = self.collector
        if not self._local_host() or not self._authorized():
            return
        if path == "/flush":  # push derived metrics and have VictoriaMetrics index them now
            if self._read_body("flush") is None:
                return
            ok = c.pusher.flush_now()
            self._text(200 if ok else 503, "ok\n" if ok else "push failed\n")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            self.close_connection = True
            c.refuse("query", "content_type")
            self._json(415, {"error": f"/query takes application/json, not {ctype!r}", "hint": ""})
            return
        body = self._read_body("query")
        if body is None:
            return
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        code, answer = c.query(doc)
        self._json(code, answer)

    def _export(self, sig: str) -> None:
        c = self.collector
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        encoding = _TYPES.get(ctype)
        body = self._read_body(sig)
        if body is None:
            return
        if encoding is None:
            c.refuse(sig, "content_type")
            self._text(415, f"unsupported content type {ctype!r}\n")
            return
        cenc = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if cenc == "gzip":
                body = _gunzip(body, MAX_BODY)
            elif cenc not in ("identity", ""):
                c.refuse(sig, "content_encoding")
                self._text(415, f"unsupported content encoding {cenc!r}\n")
                return
            rejected, message = c.ingest(sig, body, encoding)
        except OverflowError:
            c.refuse(sig, "too_large")
            self._text(413, "decompressed body too large\n")
            return
        except zlib.error as e:
            c.refuse(sig, "decode")
            out, otype = _status_body(3, f"bad gzip: {e}", encoding)
            self._send(400, out, otype)
            return
        except PayloadError as e:
            out, otype = _status_body(3, str(e), encoding)
            self._send(400, out, otype)
            return
        except Busy as e:
            out, otype = _status_body(14, str(e), encoding)
            self._send(503 if e.failing else 429, out, otype, {"Retry-After": "1"})
            return
        out = encode_response(sig, rejected, message, encoding)
        self._send(200, out, "application/json" if encoding == "json" else "application/x-protobuf")


def _items(sig: str, msg: Any) -> int:
    """Spans (``traces``) or log records (``logs``) in a decoded request."""
    if sig == "traces":
        return sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
    return sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)


def load_forwarder(path: Path) -> Forwarder:
    """Build the forwarder from its JSON file (rendered by :mod:`legible.forward`, mode 0600).

    Shape: ``{"url": OTLP/HTTP base, "queue_dir": path, "labels": {k: v}, "headers": {k: v},
    "max_bytes": int}``.

    Raises:
        OSError: the file or the queue directory cannot be read or created.
        ValueError: the file is not that JSON.

    """
    doc = json.loads(path.read_text())
    return Forwarder(
        url=str(doc["url"]),
        queue_dir=Path(doc["queue_dir"]),
        labels=doc.get("labels") or {},
        headers=doc.get("headers") or {},
        max_bytes=int(doc["max_bytes"]),
        state_dir=Path(doc["queue_dir"]).parent.parent,  # .legible/data/forward -> .legible
    )


def serve(args: Any) -> int:
    """Run a collector until SIGTERM/SIGINT; return the exit code (0 after a clean shutdown).

    Args:
        args: parsed command line (see :mod:`legible.collector.__main__`).

    """
    try:
        forwarder = load_forwarder(Path(args.forward_config)) if args.forward_config else None
        col = Collector(
            db=Path(args.db),
            logs_dir=Path(args.logs_dir) if args.logs_dir else None,
            vm_url=args.vm_url or "",
            worktree=args.worktree,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            max_db_mb=args.max_db_mb,
            token_file=Path(args.token_file) if args.token_file else None,
            memory_limit=args.memory_limit,
            query_timeout=args.query_timeout,
            forwarder=forwarder,
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
    # Ingest allocates row tuples by the thousand and keeps up to MAX_PENDING of them queued, none in a
    # cycle: the default thresholds (700 allocations) ran the young-generation collection so often, over
    # so many live tuples, that it cost about 15% of ingest CPU. Startup objects are frozen out of it.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        col.start()
    except OSError as e:
        print(f"collector: cannot write the token file: {e}", file=sys.stderr)
        return 2
    print(
        f"collector: ready http=127.0.0.1:{col.http_port} grpc=127.0.0.1:{col.grpc_port} db={args.db}",
        file=sys.stderr,
        flush=True,
    )
    while not done.wait(1.0):
        pass
    t0 = time.monotonic()
    pending = col.writer.pending
    col.stop()
    print(
        f"collector: stopped; wrote the {pending} queued rows in {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return 0
