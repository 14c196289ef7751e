"""OTLP decoding: request bytes to protobuf messages, and messages to store rows and metric samples.

Follows the OTLP specification 1.x (https://opentelemetry.io/docs/specs/otlp/): binary protobuf or the
OTLP JSON encoding (lowerCamelCase or snake_case keys, enums as names or numbers, 64-bit integers as
numbers or strings, and trace/span ids as **hex** strings, not base64). Decoding is
``google.protobuf.json_format`` over the message classes of ``opentelemetry-proto``; ids are rewritten
from hex to base64 first.

Items that cannot be stored are rejected one by one and reported in the response's ``partial_success``:
a span whose trace id is not 16 bytes or span id not 8 bytes, or either of them all zeros, and a log record
with ids of the wrong length. An all-zero id is no id (W3C Trace Context, https://www.w3.org/TR/trace-context/
#trace-id: "All bytes as zero ... is considered an invalid value"; OTLP's ``trace.proto`` and ``logs.proto`` say
the same): a log record's or a link's is stored as NULL, a span's all-zero parent makes it a root span.
Attribute values are cut to :data:`~legible.collector._lines.MAX_ATTR_VALUE` characters and an item keeps
at most :data:`~legible.collector._lines.MAX_ATTRS` attributes, :data:`MAX_EVENTS` events and links.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from legible.collector._lines import MAX_ATTR_VALUE, MAX_ATTRS, SEVERITY, _dumps, cut, level_from_name

MAX_EVENTS = 128
_MAX_NS = 2**63 - 1
MAX_DEPTH = 8
_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_STATUS = ("unset", "ok", "error")
_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}

REQUEST_TYPES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}


class PayloadError(ValueError):
    """The payload is not a valid Export*ServiceRequest (HTTP 400, gRPC ``INVALID_ARGUMENT``)."""


def _ids_to_base64(node: Any, depth: int = 0) -> Any:
    if depth > 64:
        raise PayloadError("JSON nested too deeply")
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    node[k] = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError:
                    raise PayloadError(f"{k}: not a hex string") from None
            elif isinstance(v, (dict, list)):
                _ids_to_base64(v, depth + 1)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, (dict, list)):
                _ids_to_base64(v, depth + 1)
    return node


def decode(signal: str, body: bytes, encoding: str) -> Message:
    """Decode an Export{Trace,Logs,Metrics}ServiceRequest.

    Args:
        signal: ``traces``, ``logs`` or ``metrics``.
        body: the (already decompressed) payload.
        encoding: ``protobuf`` or ``json``.

    Raises:
        PayloadError: truncated or malformed protobuf, invalid UTF-8, bad JSON or bad hex ids.

    """
    msg = REQUEST_TYPES[signal]()
    if encoding == "json":
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise PayloadError(f"invalid JSON: {e}") from None
        except RecursionError:  # the json module's C scanner raises it past the interpreter's recursion limit
            raise PayloadError("invalid JSON: nested too deeply") from None
        if not isinstance(doc, dict):
            raise PayloadError("invalid OTLP JSON: not an object")
        try:
            json_format.ParseDict(_ids_to_base64(doc), msg, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
            raise PayloadError(f"invalid OTLP JSON: {' '.join(str(e).split())[:300]}") from None
        return msg
    try:
        msg.ParseFromString(body)
    except (DecodeError, ValueError, RecursionError) as e:
        raise PayloadError(f"invalid protobuf: {' '.join(str(e).split())[:300]}") from None
    return msg


# ---- attributes as raw bytes: the same wire format, read through a twin message ----------------------
#
# Converting a span's attributes through the protobuf messages (one Python object per KeyValue, its key,
# its AnyValue, the oneof, the value) was two thirds of the CPU of turning a span into a row. A request is
# therefore parsed a second time through twins of ``TracesData``/``LogsData`` whose ``Span.attributes`` and
# ``LogRecord.attributes`` are declared ``repeated bytes`` (a repeated message and repeated bytes share the
# wire format: https://protobuf.dev/programming-guides/encoding/#embedded): each attribute arrives as its
# encoded ``KeyValue``, and equal encodings (``http.method=GET`` on every span) are converted once and
# remembered in :data:`_ATTR_CACHE`. The request was validated by the real messages first.

#: Encoded ``KeyValue`` -> (key, value); at most :data:`ATTR_CACHE_MAX` entries of at most
#: :data:`ATTR_CACHE_BYTES` bytes each (then it starts again empty).
_ATTR_CACHE: dict[bytes, tuple[str, Any]] = {}
ATTR_CACHE_MAX = 20_000
ATTR_CACHE_BYTES = 256


def _twin(module: Any, package: str, owners: set[str]) -> Any:
    """Build the twin of ``module``'s file in ``package``, with ``<owner>.attributes`` as ``repeated bytes``."""
    pool = descriptor_pool.DescriptorPool()
    for dep in (common_pb2, resource_pb2):
        dp = descriptor_pb2.FileDescriptorProto()
        dep.DESCRIPTOR.CopyToProto(dp)
        pool.Add(dp)
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    own = f".{fdp.package}."
    fdp.name, fdp.package = f"legible/{package}.proto", package
    for msg in fdp.message_type:
        for f in msg.field:
            if msg.name in owners and f.name == "attributes":
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                f.ClearField("type_name")
            elif f.type_name.startswith(own):
                f.type_name = f".{package}." + f.type_name[len(own) :]
        for f in (g for nested in msg.nested_type for g in nested.field):  # Span.Event, Span.Link: unchanged
            if f.type_name.startswith(own):
                f.type_name = f".{package}." + f.type_name[len(own) :]
    pool.Add(fdp)
    return pool


_TWINS: dict[str, Any] = {}
#: Attribute encodings found in :data:`_ATTR_CACHE` and not, lately (halved every 100,000), and requests seen.
_STATS = [0, 0, 0]


def twin_pays() -> bool:
    """Whether to build this request's rows through :func:`decode_twin`: when most attributes are remembered.

    A remembered attribute costs about 0.4 us, one converted through the real messages about 1 us, and one
    not yet remembered about 2 us (measured on a 2-core machine), so the twin is used while at least two
    thirds of the attributes were found, and for one request in 16 otherwise, to notice when that changes.
    """
    _STATS[2] += 1
    hits, misses = _STATS[0], _STATS[1]
    if hits + misses > 100_000:
        _STATS[0], _STATS[1] = hits // 2, misses // 2
    return misses * 2 <= hits or _STATS[2] % 16 == 0


def decode_twin(signal: str, body: bytes) -> Message:
    """Parse a protobuf ``traces`` or ``logs`` request (already validated by :func:`decode`) through its twin.

    The result has the fields of ``TracesData``/``LogsData`` (the same as the Export requests'), except that
    span and log record ``attributes`` are a list of encoded ``KeyValue`` (see :func:`attributes`).

    Raises:
        PayloadError: the body does not parse (it parsed as the real request, so this is not expected).

    """
    cls = _TWINS.get(signal)
    if cls is None:
        if signal == "traces":
            pool = _twin(trace_pb2, "legible_twin_trace", {"Span"})
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("legible_twin_trace.TracesData"))
        else:
            pool = _twin(logs_pb2, "legible_twin_logs", {"LogRecord"})
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("legible_twin_logs.LogsData"))
        _TWINS[signal] = cls
    try:
        msg: Message = cls.FromString(body)
    except (DecodeError, ValueError, RecursionError) as e:
        raise PayloadError(f"invalid protobuf: {' '.join(str(e).split())[:300]}") from None
    return msg


def encode_response(signal: str, rejected: int, message: str, encoding: str) -> bytes:
    """Return the encoded Export*ServiceResponse (``protobuf`` or ``json``); see :func:`response_message`."""
    resp = response_message(signal, rejected, message)
    if encoding == "json":
        text: str = json_format.MessageToJson(resp, indent=None)
        return text.encode()
    data: bytes = resp.SerializeToString()
    return data


def response_message(signal: str, rejected: int, message: str) -> Message:
    """Return the Export*ServiceResponse, with ``partial_success`` when ``rejected`` > 0 (OTLP spec)."""
    cls = {
        "traces": ExportTraceServiceResponse,
        "logs": ExportLogsServiceResponse,
        "metrics": ExportMetricsServiceResponse,
    }[signal]
    resp: Any = cls()  # the three response classes share `partial_success` by shape only
    if rejected:
        ps = resp.partial_success
        field_name = {
            "traces": "rejected_spans",
            "logs": "rejected_log_records",
            "metrics": "rejected_data_points",
        }
        setattr(ps, field_name[signal], rejected)
        ps.error_message = message
    return resp


# ---- values -----------------------------------------------------------------------------------------


def any_value(v: Any, depth: int = 0) -> Any:
    """Convert an OTLP ``AnyValue`` to a plain JSON value (bytes as base64; long strings cut)."""
    k = v.WhichOneof("value")
    if k == "string_value":
        s = v.string_value
        return s if len(s) <= MAX_ATTR_VALUE else cut(s, MAX_ATTR_VALUE)
    if k == "int_value":
        return v.int_value
    if k == "bool_value":
        return v.bool_value
    if k == "double_value":
        d = v.double_value
        return d if math.isfinite(d) else str(d)
    if k == "bytes_value":
        return cut(base64.b64encode(v.bytes_value).decode(), MAX_ATTR_VALUE)
    if depth >= MAX_DEPTH:
        return "…[nested too deep]"
    if k == "array_value":
        return [any_value(x, depth + 1) for x in v.array_value.values[:MAX_ATTRS]]
    if k == "kvlist_value":
        return {kv.key[:256]: any_value(kv.value, depth + 1) for kv in v.kvlist_value.values[:MAX_ATTRS]}
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    """Convert repeated ``KeyValue`` (messages, or their encodings from :func:`decode_twin`) to a dict.

    At most :data:`MAX_ATTRS` keys are kept; values as :func:`any_value` gives them.

    Raises:
        PayloadError: an encoded ``KeyValue`` does not parse.

    """
    out: dict[str, Any] = {}
    if not kvs:
        return out
    if len(kvs) > MAX_ATTRS:
        kvs = kvs[:MAX_ATTRS]
    if isinstance(kvs[0], bytes):
        cache = _ATTR_CACHE
        misses = 0
        for raw in kvs:
            hit = cache.get(raw)
            if hit is None:
                misses += 1
                try:
                    kv = KeyValue.FromString(raw)
                except DecodeError as e:
                    raise PayloadError(f"invalid protobuf: {e}") from None
                hit = (kv.key[:256], any_value(kv.value))
                if len(raw) <= ATTR_CACHE_BYTES:
                    if len(cache) >= ATTR_CACHE_MAX:
                        cache.clear()
                    cache[raw] = hit
            out[hit[0]] = hit[1]
        _STATS[0] += len(kvs) - misses
        _STATS[1] += misses
        return out
    for kv in kvs:
        key = kv.key
        if len(key) > 256:
            key = key[:256]
        v = kv.value
        k = v.WhichOneof("value")
        if k == "string_value":
            s = v.string_value
            out[key] = s if len(s) <= MAX_ATTR_VALUE else cut(s, MAX_ATTR_VALUE)
        elif k == "int_value":
            out[key] = v.int_value
        elif k == "bool_value":
            out[key] = v.bool_value
        else:
            out[key] = any_value(v)
    return out


def _json(d: dict[str, Any]) -> str:
    return _dumps(d) if d else "{}"


_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def _hex(b: bytes) -> str | None:
    """``b`` as lowercase hex, or None for no id: empty, or all zeros (invalid, see the module docstring)."""
    return binascii.hexlify(b).decode() if b and b.strip(b"\0") else None


def _resource(res: Any) -> tuple[dict[str, Any], str, str]:
    attrs = attributes(res.attributes)
    service = attrs.get("service.name")
    return attrs, str(service) if service not in (None, "") else "unknown_service", _json(attrs)


# ---- traces -----------------------------------------------------------------------------------------


@dataclass
class Decoded:
    """Rows decoded from one request.

    Attributes:
        rows: store rows (``spans`` or ``logs`` column order without ``seq``), or metric samples.
        rejected: items rejected.
        reason: why the first item was rejected (for ``partial_success.error_message``).
        received: items in the request.

    """

    rows: list[Any] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""
    received: int = 0


def span_rows(req: Any, now_ns: int) -> Decoded:
    """Flatten a trace request into ``spans`` rows (see ``docs/store.md``; ``seq`` is added by the writer).

    Args:
        req: an ``ExportTraceServiceRequest``, or its :func:`decode_twin` (faster: attributes by encoding).
        now_ns: the receive time (epoch ns), the ``received_ns`` column.

    """
    out = Decoded()
    rows = out.rows
    for rs in req.resource_spans:
        _, service, res_json = _resource(rs.resource)
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for sp in ss.spans:
                out.received += 1
                trace_id, span_id, parent = sp.trace_id, sp.span_id, sp.parent_span_id
                if len(trace_id) != 16 or len(span_id) != 8 or len(parent) not in (0, 8):
                    out.rejected += 1
                    out.reason = out.reason or "span with a trace id not of 16 bytes or a span id not of 8 bytes"
                    continue
                if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
                    out.rejected += 1
                    out.reason = out.reason or "span with an all-zero trace id or span id (invalid in OTLP)"
                    continue
                start, end = sp.start_time_unix_nano, sp.end_time_unix_nano
                if start > _MAX_NS or end > _MAX_NS:
                    out.rejected += 1
                    out.reason = out.reason or "span with a time beyond the year 2262"
                    continue
                if end < start:
                    end = start
                exc_type = exc_msg = None
                ev_json = links_json = "[]"
                if sp.events:
                    events = []
                    for ev in sp.events[:MAX_EVENTS]:
                        ea = attributes(ev.attributes)
                        if ev.name == "exception" and exc_type is None:
                            exc_type = str(ea.get("exception.type", "")) or None
                            exc_msg = str(ea.get("exception.message", "")) or None
                        events.append({"time_ns": min(ev.time_unix_nano, _MAX_NS), "name": ev.name, "attributes": ea})
                    ev_json = _dumps(events)
                if sp.links:
                    links_json = _dumps(
                        [
                            {
                                "trace_id": _hex(ln.trace_id),
                                "span_id": _hex(ln.span_id),
                                "attributes": attributes(ln.attributes),
                            }
                            for ln in sp.links[:MAX_EVENTS]
                        ]
                    )
                kind = sp.kind
                if sp.HasField("status"):
                    st = sp.status
                    status, status_message = st.code, st.message or None
                else:
                    status, status_message = 0, None
                attrs = sp.attributes
                rows.append(
                    (
                        trace_id.hex(),
                        span_id.hex(),
                        parent.hex() if parent and parent != _ZERO_SPAN else None,
                        sp.trace_state or None,
                        service,
                        sp.name,
                        _KINDS[kind] if 0 <= kind < 6 else "unspecified",
                        start,
                        end,
                        (end - start) / 1e6,
                        _STATUS[status] if 0 <= status < 3 else "unset",
                        status_message,
                        _dumps(attributes(attrs)) if attrs else "{}",
                        res_json,
                        scope,
                        ev_json,
                        links_json,
                        exc_type,
                        exc_msg,
                        now_ns,
                    )
                )
    return out


# ---- logs -------------------------------------------------------------------------------------------


def _level_of(number: int, text: str) -> str:
    if 1 <= number <= 24:
        return ("trace", "debug", "info", "warn", "error", "fatal")[(number - 1) // 4]
    return level_from_name(text) or "info"


def log_rows(req: Any, now_ns: int) -> Decoded:
    """Flatten a logs request into ``logs`` rows (see :func:`span_rows`).

    The ``source`` column is ``otlp``, or ``browser`` for records of the service ``browser`` (console
    messages and failed requests that ``legible browser`` reports), as ``docs/store.md`` documents.
    """
    out = Decoded()
    rows = out.rows
    for rl in req.resource_logs:
        _, service, res_json = _resource(rl.resource)
        source = "browser" if service == "browser" else "otlp"
        for sl in rl.scope_logs:
            scope = sl.scope.name or None
            for lr in sl.log_records:
                out.received += 1
                if len(lr.trace_id) not in (0, 16) or len(lr.span_id) not in (0, 8):
                    out.rejected += 1
                    out.reason = out.reason or "log record with a trace id not of 16 bytes or a span id not of 8 bytes"
                    continue
                b = lr.body
                kind = b.WhichOneof("value")
                if kind == "string_value":
                    body = cut(b.string_value)
                elif kind is None:
                    body = ""
                else:
                    v = any_value(b)
                    body = cut(v if isinstance(v, str) else _dumps(v))
                sev = lr.severity_number if 1 <= lr.severity_number <= 24 else 0
                level = _level_of(sev, lr.severity_text)
                observed = lr.observed_time_unix_nano
                observed = observed if 0 < observed <= _MAX_NS else now_ns
                t = lr.time_unix_nano
                rows.append(
                    (
                        t if 0 < t <= _MAX_NS else observed,
                        observed,
                        service,
                        level,
                        sev or SEVERITY[level],
                        lr.severity_text or None,
                        body,
                        _json(attributes(lr.attributes)),
                        res_json,
                        scope,
                        _hex(lr.trace_id),
                        _hex(lr.span_id),
                        source,
                    )
                )
    return out


# ---- metrics ----------------------------------------------------------------------------------------

_UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
_PER = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
_BAD = re.compile(r"[^a-zA-Z0-9_:]+")
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]+")


def _unit_suffix(unit: str, gauge_like: bool) -> str:
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if gauge_like else ""
    if "/" in unit:
        a, _, b = unit.partition("/")
        a2 = _UNITS.get(a, a) if a else ""
        b2 = _PER.get(b, _UNITS.get(b, b))
        return f"{a2}_per_{b2}" if a2 else f"per_{b2}"
    return _UNITS.get(unit, unit)


def prom_name(name: str, unit: str, kind: str) -> str:
    """Return the Prometheus metric name of an OTLP metric (without ``_total``/``_bucket`` suffixes).

    Follows https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/: invalid
    characters (dots, dashes) become ``_``, repeated ``_`` collapse, a leading digit gets ``_``, the unit is
    appended as a full word (``ms`` -> ``milliseconds``, ``By`` -> ``bytes``, ``1`` -> ``ratio`` for gauges,
    ``{...}`` annotations dropped, ``a/b`` -> ``a_per_b``) unless the name already ends with it.

    Args:
        name: the OTLP metric name.
        unit: the OTLP (UCUM) unit.
        kind: ``gauge``, ``counter``, ``histogram`` or ``summary``.

    """
    n = re.sub(r"__+", "_", _BAD.sub("_", name)).strip("_") or "metric"
    if n[0].isdigit():
        n = "_" + n
    suffix = _BAD.sub("_", _unit_suffix(unit, kind == "gauge")).strip("_")
    if suffix and not n.endswith(suffix):
        n = f"{n}_{suffix}"
    if kind == "counter" and n.endswith("_total"):
        n = n[: -len("_total")]
    return n


def label_name(key: str) -> str:
    """Return a valid Prometheus label name for an attribute key (dots to ``_``, leading digit ``key_``)."""
    n = _BAD_LABEL.sub("_", key) or "_"
    if n[0].isdigit():
        n = "key_" + n
    if n.startswith("__") and not key.startswith("__"):
        n = n.lstrip("_") or "_"
    return n


def _labels(kvs: Any, base: dict[str, str]) -> dict[str, str]:
    out = dict(base)
    for kv in kvs[:MAX_ATTRS]:
        v = any_value(kv.value)
        out[label_name(kv.key)] = cut(v if isinstance(v, str) else _dumps(v), 256)
    return out


@dataclass
class Sample:
    """One Prometheus sample: ``name{labels} value timestamp_ms``; ``kind`` is the family type."""

    family: str
    kind: str
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int
    help: str = ""


def _fmt_le(b: float) -> str:
    return repr(float(b)) if math.isfinite(b) else "+Inf"


def metric_samples(req: ExportMetricsServiceRequest, worktree: str, delta_state: dict[Any, float]) -> Decoded:
    """Convert a metrics request to Prometheus samples (see :func:`prom_name` for names).

    Labels: the point's attributes, ``service`` (resource ``service.name``), ``job`` (``namespace/name`` as
    the spec maps it), ``worktree``. Monotonic sums become counters ``<name>_total``, non-monotonic sums
    and gauges become gauges, histograms ``_bucket{le}``/``_sum``/``_count``, exponential histograms
    ``_sum``/``_count`` only, summaries ``{quantile}``/``_sum``/``_count``. Delta temporality is summed into
    cumulative values in ``delta_state`` (keyed by series), as Prometheus needs. Points without a value
    are rejected.
    """
    out = Decoded()
    for rm in req.resource_metrics:
        res_attrs, service, _ = _resource(rm.resource)
        ns = res_attrs.get("service.namespace")
        base = {"service": service, "job": f"{ns}/{service}" if ns else service, "worktree": worktree}
        if "service.instance.id" in res_attrs:
            base["instance"] = str(res_attrs["service.instance.id"])
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    out.rejected += 1
                    out.reason = out.reason or "metric without data"
                    continue
                data = getattr(m, kind)
                for dp in data.data_points:
                    out.received += 1
                    labels = _labels(dp.attributes, base)
                    ts = dp.time_unix_nano // 1_000_000
                    if kind == "gauge" or (kind == "sum" and not data.is_monotonic):
                        fam = prom_name(m.name, m.unit, "gauge")
                        val = _number(dp)
                        if val is None:
                            out.rejected += 1
                            out.reason = out.reason or "number data point without a value"
                            continue
                        if kind == "sum" and data.aggregation_temporality == 1:
                            val = _acc(delta_state, (fam, tuple(sorted(labels.items()))), val)
                        out.rows.append(Sample(fam, "gauge", fam, labels, val, ts, m.description))
                    elif kind == "sum":
                        fam = prom_name(m.name, m.unit, "counter")
                        val = _number(dp)
                        if val is None:
                            out.rejected += 1
                            out.reason = out.reason or "number data point without a value"
                            continue
                        if data.aggregation_temporality == 1:
                            val = _acc(delta_state, (fam, tuple(sorted(labels.items()))), val)
                        out.rows.append(Sample(fam, "counter", fam + "_total", labels, val, ts, m.description))
                    elif kind == "histogram":
                        fam = prom_name(m.name, m.unit, "histogram")
                        key = (fam, tuple(sorted(labels.items())))
                        delta = data.aggregation_temporality == 1
                        cum = 0.0
                        bounds = list(dp.explicit_bounds) + [math.inf]
                        counts = list(dp.bucket_counts)
                        if len(counts) != len(bounds):
                            out.rejected += 1
                            out.reason = out.reason or "histogram with bucket_counts not matching explicit_bounds"
                            continue
                        for b, c in zip(bounds, counts, strict=True):
                            cum += c
                            v = _acc(delta_state, (*key, b), cum) if delta else cum
                            out.rows.append(
                                Sample(
                                    fam,
                                    "histogram",
                                    fam + "_bucket",
                                    {**labels, "le": _fmt_le(b)},
                                    v,
                                    ts,
                                    m.description,
                                )
                            )
                        s = _acc(delta_state, (*key, "sum"), dp.sum) if delta else dp.sum
                        n = _acc(delta_state, (*key, "count"), dp.count) if delta else dp.count
                        out.rows.append(Sample(fam, "histogram", fam + "_sum", labels, s, ts, m.description))
                        out.rows.append(Sample(fam, "histogram", fam + "_count", labels, n, ts, m.description))
                    elif kind == "exponential_histogram":
                        fam = prom_name(m.name, m.unit, "histogram")
                        key = (fam, tuple(sorted(labels.items())))
                        delta = data.aggregation_temporality == 1
                        s = _acc(delta_state, (*key, "sum"), dp.sum) if delta else dp.sum
                        n = _acc(delta_state, (*key, "count"), dp.count) if delta else dp.count
                        out.rows.append(Sample(fam, "untyped", fam + "_sum", labels, s, ts, m.description))
                        out.rows.append(Sample(fam, "untyped", fam + "_count", labels, n, ts, m.description))
                    elif kind == "summary":
                        fam = prom_name(m.name, m.unit, "summary")
                        for q in dp.quantile_values:
                            out.rows.append(
                                Sample(
                                    fam,
                                    "summary",
                                    fam,
                                    {**labels, "quantile": repr(q.quantile)},
                                    q.value,
                                    ts,
                                    m.description,
                                )
                            )
                        out.rows.append(Sample(fam, "summary", fam + "_sum", labels, dp.sum, ts, m.description))
                        out.rows.append(Sample(fam, "summary", fam + "_count", labels, dp.count, ts, m.description))
    return out


def _number(dp: Any) -> float | None:
    k = dp.WhichOneof("value")
    if k == "as_double":
        return float(dp.as_double)
    if k == "as_int":
        return float(dp.as_int)
    return None


def _acc(state: dict[Any, float], key: Any, delta: float) -> float:
    if len(state) > 200_000:  # bound memory: forget everything rather than grow without end
        state.clear()
    v = state.get(key, 0.0) + delta
    state[key] = v
    return v
