"""OTLP/HTTP export of the browser's own signals (journey spans, console and network logs), without an SDK.

The browser agent and the journey runner build ``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest``
protobufs directly (``opentelemetry-proto``, already a core dependency) and POST them to the collector's
``/v1/traces`` and ``/v1/logs`` (OTLP/HTTP with ``Content-Type: application/x-protobuf``, see
https://opentelemetry.io/docs/specs/otlp/#otlphttp). The resource is ``service.name=browser`` plus
``legible.worktree=<key>``, so the store shows these rows as service ``browser``.

Trace context follows W3C Trace Context (https://www.w3.org/TR/trace-context/): a ``traceparent`` header is
``00-<32 hex trace id>-<16 hex parent span id>-01``.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

SERVICE = "browser"
#: OpenTelemetry severity numbers (logs data model) by level.
SEVERITY = {"debug": 5, "info": 9, "warn": 13, "error": 17}


def new_trace_id() -> str:
    """Return a random 16-byte trace id as 32 lower-case hex characters."""
    return os.urandom(16).hex()


def new_span_id() -> str:
    """Return a random 8-byte span id as 16 lower-case hex characters."""
    return os.urandom(8).hex()


def traceparent(trace_id: str, span_id: str) -> str:
    """Return the W3C ``traceparent`` value for a sampled span: ``00-<trace_id>-<span_id>-01``."""
    return f"00-{trace_id}-{span_id}-01"


@dataclass
class Span:
    """A finished span to export.

    Attributes:
        name: span name (``journey checkout``, ``step 2 click``).
        trace_id: 32 hex characters.
        span_id: 16 hex characters.
        parent_span_id: 16 hex characters, or ``""`` for a root span.
        start_ns: start, ns since the Unix epoch.
        end_ns: end, ns since the Unix epoch.
        attributes: string, int, float or bool values.
        error: status message; a non-empty value sets status ``ERROR``, else ``OK``.

    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str = ""
    start_ns: int = 0
    end_ns: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class LogRecord:
    """A browser log record to export.

    Attributes:
        time_ns: event time, ns since the Unix epoch.
        level: ``debug`` | ``info`` | ``warn`` | ``error``.
        body: the message.
        attributes: extra fields (``browser.source``, ``code.filepath``, ``url.full``, ...).
        trace_id: 32 hex characters or ``""``.
        span_id: 16 hex characters or ``""``.

    """

    time_ns: int
    level: str
    body: str
    attributes: dict[str, Any] = field(default_factory=dict)
    trace_id: str = ""
    span_id: str = ""


def _any(v: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _kvs(d: dict[str, Any]) -> list[Any]:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    return [KeyValue(key=k, value=_any(v)) for k, v in d.items() if v is not None and v != ""]


def _resource(worktree: str) -> Any:
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    return Resource(attributes=_kvs({"service.name": SERVICE, "legible.worktree": worktree}))


def encode_spans(spans: list[Span], worktree: str) -> bytes:
    """Serialise ``spans`` as an ``ExportTraceServiceRequest`` (scope ``legible.browser``)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

    pb = []
    for s in spans:
        pb.append(
            PbSpan(
                trace_id=bytes.fromhex(s.trace_id),
                span_id=bytes.fromhex(s.span_id),
                parent_span_id=bytes.fromhex(s.parent_span_id) if s.parent_span_id else b"",
                name=s.name,
                kind=PbSpan.SPAN_KIND_INTERNAL if s.parent_span_id else PbSpan.SPAN_KIND_CLIENT,
                start_time_unix_nano=s.start_ns,
                end_time_unix_nano=s.end_ns,
                attributes=_kvs(s.attributes),
                status=Status(
                    code=Status.STATUS_CODE_ERROR if s.error else Status.STATUS_CODE_OK, message=s.error or ""
                ),
            )
        )
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource(worktree),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="legible.browser"), spans=pb)],
            )
        ]
    )
    return bytes(req.SerializeToString())


def encode_logs(records: list[LogRecord], worktree: str) -> bytes:
    """Serialise ``records`` as an ``ExportLogsServiceRequest`` (scope ``legible.browser``)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLog
    from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs

    now = time.time_ns()
    pb = [
        PbLog(
            time_unix_nano=r.time_ns,
            observed_time_unix_nano=now,
            severity_number=SEVERITY.get(r.level, 9),  # type: ignore[arg-type]
            severity_text=r.level.upper(),
            body=AnyValue(string_value=r.body),
            attributes=_kvs(r.attributes),
            trace_id=bytes.fromhex(r.trace_id) if r.trace_id else b"",
            span_id=bytes.fromhex(r.span_id) if r.span_id else b"",
        )
        for r in records
    ]
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=_resource(worktree),
                scope_logs=[ScopeLogs(scope=InstrumentationScope(name="legible.browser"), log_records=pb)],
            )
        ]
    )
    return bytes(req.SerializeToString())


def post(base_url: str, path: str, body: bytes, timeout: float = 3.0) -> None:
    """POST an OTLP/HTTP protobuf body to ``base_url + path`` (``/v1/traces`` or ``/v1/logs``).

    Raises:
        OSError: the collector does not answer, or answers with a status of 300 or more.

    """
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse()
        resp.read()
        if resp.status >= 300:
            raise OSError(f"collector answered {resp.status} to POST {path}")
    except http.client.HTTPException as exc:
        raise OSError(f"POST {path}: {exc}") from exc
    finally:
        conn.close()
