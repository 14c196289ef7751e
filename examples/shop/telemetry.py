"""Logging and OpenTelemetry for the shop: what goes to stdout, stderr and an OTLP endpoint.

* stdout: one JSON object per line (``ts``, ``level``, ``msg``, extra fields, ``trace_id``, ``span_id``).
* stderr: records that carry an exception, as a plain line followed by the usual multi-line traceback.
* OTLP: traces, logs (every ``logging`` record, with trace and span ids) and metrics, over HTTP/protobuf,
  or gRPC when ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``. The SDK reads the standard variables itself
  (endpoint, headers, timeout, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, batch delays, metric
  export interval). With no endpoint set, nothing is exported for that signal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import format_span_id, format_trace_id

SERVICE_NAME = "shop"
SERVICE_VERSION = "1.0.0"
# The SDK's own default is 60 s, too slow for a demo that is watched live; the variable still wins.
DEFAULT_METRIC_EXPORT_INTERVAL_MS = 5000
# How long one exporter's complaints stay muted after it has printed one line.
TELEMETRY_WARNING_INTERVAL_S = 60.0
_MAX_TELEMETRY_WARNING_CHARS = 200
_STANDARD_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@dataclass
class Telemetry:
    """The providers set up by :func:`setup_telemetry`, kept so they can be flushed at exit."""

    providers: list[Any] = field(default_factory=list)

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Flush and stop every provider, waiting at most ``timeout_s`` in total.

        Each provider flushes in its own daemon thread: with a live endpoint this takes milliseconds; with a
        dead one the exporters would keep retrying for ``OTEL_EXPORTER_OTLP_TIMEOUT`` (10 s) each, and a
        process being stopped should not hang on that.
        """
        threads = [threading.Thread(target=p.shutdown, daemon=True) for p in self.providers]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout_s
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))


class JsonLineFormatter(logging.Formatter):
    """Format a record as one JSON object with the current trace and span ids."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single line of JSON."""
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_KEYS})
        doc["logger"] = record.name
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            doc["trace_id"] = format_trace_id(ctx.trace_id)
            doc["span_id"] = format_span_id(ctx.span_id)
        return json.dumps(doc, default=str, separators=(",", ":"))


class TracebackFormatter(logging.Formatter):
    """Format a record as ``<ts> <LEVEL> <logger> trace_id=<id> <msg>`` followed by its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the first line and, when the record has one, the multi-line traceback."""
        ctx = trace.get_current_span().get_span_context()
        trace_id = format_trace_id(ctx.trace_id) if ctx.is_valid else "-"
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        text = f"{ts} {record.levelname} {record.name} trace_id={trace_id} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


class OncePerInterval(logging.Filter):
    """Let one record per logger through every ``interval_s`` seconds and count the ones held back."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether the record may be printed; ``record.held_back`` counts those muted before it."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(record.name)
            if last is not None and now - last < self._interval_s:
                self._held[record.name] = self._held.get(record.name, 0) + 1
                return False
            self._last[record.name] = now
            record.held_back = self._held.pop(record.name, 0)
        return True


class ShortTelemetryFormatter(logging.Formatter):
    """One short line per telemetry warning: no traceback, the middle of a long message cut out."""

    def format(self, record: logging.LogRecord) -> str:
        """Return ``telemetry <level> <logger>: <message>`` with a note about muted repeats."""
        msg = record.getMessage()
        if len(msg) > _MAX_TELEMETRY_WARNING_CHARS:  # keep the start (what) and the end (why, what next)
            half = _MAX_TELEMETRY_WARNING_CHARS // 2
            msg = f"{msg[:half]} ... {msg[-half:]}"
        held = getattr(record, "held_back", 0)
        note = f" ({held} similar muted)" if held else ""
        return (
            f"telemetry {record.levelname.lower()} {record.name}: {msg}{note}"
            f" [more from this logger muted for {TELEMETRY_WARNING_INTERVAL_S:.0f}s]"
        )


def configure_logging() -> None:
    """Send JSON lines to stdout, tracebacks to stderr, and tame the OpenTelemetry SDK's own logging."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)

    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(JsonLineFormatter())
    stdout.addFilter(lambda r: r.exc_info is None)
    root.addHandler(stdout)

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(TracebackFormatter())
    stderr.addFilter(lambda r: r.exc_info is not None)
    root.addHandler(stderr)

    # When no collector listens, every exporter retries with backoff and logs a warning per retry plus an
    # error per lost batch, for each of three signals, forever. Raising the level to ERROR would hide the
    # one useful early hint ("connection refused") and still repeat errors. Instead the SDK and exporters
    # (all under the ``opentelemetry`` logger) get their own handler that prints one short line per logger
    # per minute on stderr. ``propagate = False`` also keeps these records away from the OTLP log handler,
    # which would otherwise feed "export failed" logs back into the failing exporter.
    otel = logging.getLogger("opentelemetry")
    otel.setLevel(logging.WARNING)
    otel.propagate = False
    otel_handler = logging.StreamHandler(sys.stderr)
    otel_handler.addFilter(OncePerInterval(TELEMETRY_WARNING_INTERVAL_S))
    otel_handler.setFormatter(ShortTelemetryFormatter())
    otel.addHandler(otel_handler)

    # The app logs one JSON line per request itself; werkzeug's access lines would duplicate them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def setup_telemetry() -> Telemetry:
    """Configure logging and the OpenTelemetry providers, and register them globally.

    Tracer and meter providers are always installed, so spans (and the trace ids in log lines) exist even
    when nothing is exported; exporters are attached only for signals that have an endpoint.

    Returns:
        The providers, for :meth:`Telemetry.shutdown` at exit.
    """
    configure_logging()
    resource = _resource()
    telemetry = Telemetry()

    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    span_exporter = _exporter("traces")
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    telemetry.providers.append(tracer_provider)

    metric_exporter = _exporter("metrics")
    readers = []
    if metric_exporter is not None:
        interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") else DEFAULT_METRIC_EXPORT_INTERVAL_MS
        readers.append(PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
    metrics.set_meter_provider(meter_provider)
    telemetry.providers.append(meter_provider)

    log_exporter = _exporter("logs")
    if log_exporter is not None:
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        set_logger_provider(logger_provider)
        telemetry.providers.append(logger_provider)
        # The SDK marks its LoggingHandler deprecated in favour of opentelemetry-instrumentation-logging, a
        # package this example does not depend on; the handler still works, so the notice is silenced here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            handler = LoggingHandler(logger_provider=logger_provider)
        logging.getLogger().addHandler(handler)

    return telemetry


def _resource() -> Resource:
    """Return the SDK's resource (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``) with shop defaults."""
    resource = Resource({"service.version": SERVICE_VERSION}).merge(Resource.create())
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


def _exporter(signal: str) -> Any:
    """Return an OTLP exporter for ``signal`` (traces, metrics or logs), or ``None`` without an endpoint.

    The protocol comes from ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL``:
    ``grpc`` selects the gRPC exporters, anything else HTTP/protobuf. Exporters are imported lazily so the
    gRPC stack is only loaded when used.
    """
    upper = signal.upper()
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")):
        return None
    protocol = os.environ.get(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip().lower() == "grpc":
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter()
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return OTLPMetricExporter()
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter()
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        return HttpSpanExporter()
    if signal == "metrics":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        return HttpMetricExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

    return HttpLogExporter()
