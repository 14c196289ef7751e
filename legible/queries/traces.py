r"""Trace queries over the store's ``spans`` (and ``logs``): the trace list and one trace as a folded tree.

:func:`list_traces` aggregates spans per trace in one DuckDB statement (root span, service, start,
duration, span count, errors, first exception). :func:`get_trace` loads one trace's spans and log lines
(resolving a unique id prefix) into a :class:`TraceTree`; :func:`render_tree` prints it indented, with
repeated siblings folded, error paths kept and the output bounded.

Example::

    from legible.queries import traces, worktree_store
    store = worktree_store()
    res = traces.list_traces(store, traces.make_trace_filter(since="1h", errors=True))
    tree = traces.get_trace(store, res.traces[0].trace_id)
    print("\n".join(traces.render_tree(tree)))
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from legible._errors import UsageError
from legible.queries._fmt import (
    View,
    align,
    cut_line,
    fmt_ago,
    fmt_clock,
    fmt_count,
    fmt_ms,
    iso,
    now_ns,
    one_line,
    parse_duration,
    parse_limit,
    parse_time,
)

if TYPE_CHECKING:
    from legible.contract import SpanLog, TraceDoc, TraceFilterDoc, TracesDoc, TraceSummaryDoc
    from legible.contract import SpanNode as SpanNodeDoc
    from legible.store import Store

__all__ = [
    "DEFAULT_SINCE",
    "KEY_ATTRIBUTES",
    "SpanNode",
    "TraceFilter",
    "TraceList",
    "TraceSummary",
    "TraceTree",
    "get_trace",
    "list_traces",
    "make_trace_filter",
    "render_traces",
    "render_tree",
    "trace_view",
    "traces_view",
]

#: Default window of ``legible traces``.
DEFAULT_SINCE = "1h"
#: Span attributes shown in the tree (old and new semantic-convention names), in this order.
KEY_ATTRIBUTES = (
    "http.method",
    "http.request.method",
    "http.route",
    "http.target",
    "url.path",
    "http.status_code",
    "http.response.status_code",
    "db.statement",
    "db.query.text",
    "rpc.method",
    "messaging.destination.name",
    "peer.service",
    "error.type",
)
#: Same-named siblings shown before the rest are folded into one line.
FOLD_AFTER = 3
#: Log lines shown under one span.
LOGS_PER_SPAN = 3
_HEX_RE = re.compile(r"[0-9a-f]{6,32}")


@dataclass
class TraceFilter:
    """Which traces :func:`list_traces` returns; every field narrows (AND).

    Attributes:
        since_ns: traces with spans starting at or after this (ns since the epoch); 0 for none.
        until_ns: ... and before this, or ``None``.
        since_text: the window as the user wrote it, for the summary.
        services: traces with a span of any of these services; empty for all.
        name: traces with a span whose name contains this (case-insensitive), or ``None``.
        min_duration_ms: traces at least this long (ms), or ``None``.
        errors: only traces with an error span.

    """

    since_ns: int = 0
    until_ns: int | None = None
    since_text: str = DEFAULT_SINCE
    services: list[str] = field(default_factory=list)
    name: str | None = None
    min_duration_ms: float | None = None
    errors: bool = False

    def sql(self) -> tuple[str, list[Any], str, list[Any]]:
        """Return ``(where, where_params, having, having_params)`` for the per-trace aggregation."""
        where: list[str] = []
        wp: list[Any] = []
        having: list[str] = []
        hp: list[Any] = []
        if self.since_ns:
            where.append("start_ns >= ?")
            wp.append(self.since_ns)
        if self.until_ns is not None:
            where.append("start_ns < ?")
            wp.append(self.until_ns)
        if self.services:
            having.append(f"bool_or(service IN ({', '.join('?' * len(self.services))}))")
            hp.extend(self.services)
        if self.name:
            having.append("bool_or(contains(lower(name), ?))")
            hp.append(self.name.lower())
        if self.min_duration_ms is not None:
            having.append("(max(end_ns) - min(start_ns)) / 1e6 >= ?")
            hp.append(self.min_duration_ms)
        if self.errors:
            having.append("bool_or(status_code = 'error')")
        return " AND ".join(where) or "TRUE", wp, " AND ".join(having) or "TRUE", hp

    def describe(self) -> str:
        """The window and filters in a few words."""
        if not self.since_ns:
            parts = ["in the whole store"]
        elif re.fullmatch(r"[\d.]+[a-zµ]*", self.since_text.strip()):
            parts = [f"in last {self.since_text.strip()}"]
        else:
            parts = [f"since {self.since_text}"]
        if self.services:
            parts.append("service=" + ",".join(self.services))
        if self.name:
            parts.append(f"name~{self.name!r}")
        if self.min_duration_ms is not None:
            parts.append(f">= {fmt_ms(self.min_duration_ms)}")
        if self.errors:
            parts.append("with errors")
        return ", ".join(parts)

    def to_json(self) -> TraceFilterDoc:
        """The filter as JSON."""
        return {
            "since": iso(self.since_ns) if self.since_ns else None,
            "until": iso(self.until_ns),
            "services": self.services,
            "name": self.name,
            "min_duration_ms": self.min_duration_ms,
            "errors": self.errors,
        }


def make_trace_filter(
    since: str | None = DEFAULT_SINCE,
    until: str | None = None,
    service: Sequence[str] = (),
    name: str | None = None,
    min_duration: str | None = None,
    errors: bool = False,
    now: int | None = None,
) -> TraceFilter:
    """Parse and check the ``legible traces`` filter options.

    Args:
        since: window start (``5m``, ``14:03``, ISO 8601, ``all``).
        until: window end, same forms, or ``None``.
        service: service names (items may be comma-separated).
        name: substring of a span name.
        min_duration: shortest trace, a duration like ``500ms`` or ``2s``.
        errors: only traces with an error span.
        now: the current time in ns (default: the clock).

    Raises:
        UsageError: a malformed time or duration.

    """
    now = now_ns() if now is None else now
    since = since or "all"
    flt = TraceFilter(since_ns=parse_time(since, now, what="--since"), since_text=since, errors=errors)
    if until:
        flt.until_ns = parse_time(until, now, what="--until")
    flt.services = [s.strip() for item in service for s in item.split(",") if s.strip()]
    flt.name = name or None
    if min_duration:
        flt.min_duration_ms = parse_duration(min_duration, what="--min-duration") * 1000
    return flt


# ------------------------------------------------------------------------------------------------ list


@dataclass
class TraceSummary:
    """One trace in the list.

    Attributes:
        trace_id: 32 hex.
        root: the root span's name (the earliest span's when the root is missing).
        service: the root span's service.
        start_ns: earliest span start (ns since the epoch).
        duration_ms: latest span end minus earliest start, in ms.
        spans: span count.
        errors: spans with status ``error``.
        error: the first exception (``Type: message``) or error span (``name: status``), or ``None``.

    """

    trace_id: str
    root: str
    service: str
    start_ns: int
    duration_ms: float
    spans: int
    errors: int
    error: str | None

    def to_json(self) -> TraceSummaryDoc:
        """The summary as JSON."""
        return {
            "trace_id": self.trace_id,
            "root": self.root,
            "service": self.service,
            "start": iso(self.start_ns),
            "duration_ms": round(self.duration_ms, 3),
            "spans": self.spans,
            "errors": self.errors,
            "error": self.error,
        }


@dataclass
class TraceList:
    """The answer of :func:`list_traces`.

    Attributes:
        filter: the filter used.
        now_ns: when the query ran.
        order: ``"recent"`` (newest first) or ``"slowest"`` (longest first).
        total: traces matching.
        total_errors: matching traces with an error.
        traces: the traces shown.
        missing: when nothing matched and the running app sent no spans since it became ready: one line
            saying so and why (:func:`legible.queries.source.missing_telemetry`), else ``""``.

    """

    filter: TraceFilter
    now_ns: int
    order: str
    total: int
    total_errors: int
    traces: list[TraceSummary]
    missing: str = ""

    def to_json(self) -> TracesDoc:
        """The ``legible.traces/v1`` document."""
        return {
            "schema": "legible.traces/v1",
            "filter": self.filter.to_json(),
            "order": self.order,
            "total": self.total,
            "total_errors": self.total_errors,
            "shown": len(self.traces),
            "traces": [t.to_json() for t in self.traces],
            "missing": self.missing,
            "warnings": [],
        }


def _list_sql(where: str, having: str, order: str, limit: int) -> str:
    """Return the statement of :func:`list_traces`; its parameters are ``[*where, *having, *where]``.

    Two passes over the window's spans: the first groups them per trace with the cheap aggregates the order,
    the ``HAVING`` filters and the totals need (start, end, count, errors), and keeps the top ``limit``; the
    second reads only the spans of those traces (a join on ``trace_id``, which DuckDB pushes into the scan as a
    filter) for the root's name and service and the first error, the ``arg_min``s over strings that cost most of
    the time when computed for every trace (the list of 20 of 20,000 traces: about half of the statement).
    Same rows as one pass: the second pass applies the same ``WHERE`` to the same spans.
    """
    return f"""
WITH t AS (
  SELECT trace_id, min(start_ns) AS start_ns, (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms, count(*) AS spans,
         count(*) FILTER (WHERE status_code = 'error') AS errors
  FROM spans WHERE {where} GROUP BY trace_id HAVING {having}),
top AS (SELECT *, count(*) OVER () AS total, sum(CASE WHEN errors > 0 THEN 1 ELSE 0 END) OVER () AS total_errors
        FROM t ORDER BY {order}, trace_id LIMIT {int(max(limit, 0))}),
d AS (
  SELECT trace_id,
         coalesce(arg_min(name, start_ns) FILTER (WHERE parent_span_id IS NULL), arg_min(name, start_ns)) AS root,
         coalesce(arg_min(service, start_ns) FILTER (WHERE parent_span_id IS NULL),
                  arg_min(service, start_ns)) AS service,
         coalesce(arg_min(exception_type || ': ' || coalesce(exception_message, ''), start_ns)
                    FILTER (WHERE exception_type IS NOT NULL),
                  arg_min(name || coalesce(': ' || status_message, ''), start_ns)
                    FILTER (WHERE status_code = 'error')) AS error
  FROM spans WHERE trace_id IN (SELECT trace_id FROM top) AND {where} GROUP BY trace_id)
SELECT top.trace_id, d.root, d.service, top.start_ns, top.duration_ms, top.spans, top.errors, d.error, top.total,
       top.total_errors
FROM top JOIN d ON d.trace_id = top.trace_id ORDER BY top.{order}, top.trace_id
"""  # noqa: S608 - fixed SQL fragments; values are bound parameters


def list_traces(
    store: Store, flt: TraceFilter, limit: int = 20, slowest: bool = False, now: int | None = None
) -> TraceList:
    """Aggregate spans per trace in DuckDB and return the newest (or slowest) ``limit`` traces.

    Args:
        store: the worktree's store.
        flt: the filter.
        limit: most traces returned.
        slowest: order by duration (longest first) instead of start (newest first).
        now: the current time in ns, for relative times.

    Raises:
        UsageError: DuckDB rejected the query.
        NotRunning: there is no store yet.

    """
    now = now_ns() if now is None else now
    where, wp, having, hp = flt.sql()
    order = "duration_ms DESC" if slowest else "start_ns DESC"
    sql = _list_sql(where, having, order, limit)
    rows = store.query(sql, [*wp, *hp, *wp]).rows
    items = [TraceSummary(r[0], r[1], r[2], int(r[3]), float(r[4]), int(r[5]), int(r[6]), r[7]) for r in rows]
    total = int(rows[0][8]) if rows else 0
    total_err = int(rows[0][9]) if rows else 0
    missing = ""
    if not items:
        from legible.queries.source import missing_telemetry

        missing = missing_telemetry(store, "traces")
    return TraceList(flt, now, "slowest" if slowest else "recent", total, total_err, items, missing)


def render_traces(res: TraceList, limit: int | None = None) -> list[str]:
    """Render the trace list: a summary line, one line per trace, the cut line when cut."""
    flt, now = res.filter, res.now_ns
    if not res.traces:
        empty = [f"0 traces {flt.describe()} (try --since all, or `legible logs` if the app sends no spans)"]
        return [*empty, res.missing] if res.missing else empty
    what = "slowest first" if res.order == "slowest" else "newest first"
    errors = "" if flt.errors else f", {fmt_count(res.total_errors)} with errors"  # --errors: all of them are
    head = f"{fmt_count(res.total)} traces {flt.describe()}{errors}; {len(res.traces)} shown, {what}"
    rows = [["TRACE", "START", "DURATION", "SPANS", "SERVICE", "ROOT"]]
    for t in res.traces:
        root = one_line(t.root, 60)
        if t.errors:
            root += f"  ERROR({t.errors}) {one_line(t.error or '', 100)}"
        rows.append(
            [
                t.trace_id[:16],
                f"{fmt_clock(t.start_ns)} ({fmt_ago(t.start_ns, now)})",
                fmt_ms(t.duration_ms),
                str(t.spans),
                t.service,
                root,
            ]
        )
    out = [head, *align(rows)]
    hidden = res.total - len(res.traces)
    if hidden > 0:
        n = max(2 * len(res.traces), 50)
        out.append(cut_line(hidden, "traces", f"--limit {n}, --errors, --min-duration 500ms, --slowest 10, or --json"))
    out.append("one trace as a tree: legible trace <TRACE>")
    return out


# ------------------------------------------------------------------------------------------------ tree


@dataclass
class SpanNode:
    """One span of a :class:`TraceTree`, with its children and log lines.

    Attributes:
        span_id: 16 hex.
        parent_span_id: the parent's id, or ``None`` for a root.
        service: the span's service.
        name: the span name.
        kind: ``server``, ``client``, ``internal``, ...
        start_ns: start, ns since the epoch.
        duration_ms: duration in ms.
        status_code: ``unset``, ``ok`` or ``error``.
        status_message: status description, or ``None``.
        attributes: span attributes.
        events: ``[{"time_ns", "name", "attributes"}]``.
        children: child spans, by start time.
        logs: log lines of this span: ``{"time_ns", "level", "service", "body"}``, by time.
        orphan: the parent span is not in the store (not received, or pruned).

    """

    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: str
    start_ns: int
    duration_ms: float
    status_code: str
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    children: list[SpanNode] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    orphan: bool = False

    @property
    def is_error(self) -> bool:
        """The span's status is ``error``."""
        return self.status_code == "error"

    def exception_frames(self) -> list[tuple[str, str, str | None]]:
        """``[(type, message, top frame)]`` of the span's ``exception`` events; see :func:`top_frame`."""
        out = []
        for ev in self.events:
            if ev.get("name") == "exception":
                a = ev.get("attributes") or {}
                out.append(
                    (
                        str(a.get("exception.type", "Exception")),
                        str(a.get("exception.message", "")),
                        top_frame(str(a.get("exception.stacktrace") or "")),
                    )
                )
        return out

    def subtree_has_error(self) -> bool:
        """This span or a descendant has status ``error`` or an error log line."""
        return (
            self.is_error
            or any(lg["level"] in ("error", "fatal") for lg in self.logs)
            or any(c.subtree_has_error() for c in self.children)
        )

    def to_json(self, trace_start_ns: int) -> SpanNodeDoc:
        """The span and its subtree as JSON (times ISO 8601; ``offset_ms`` from the trace start)."""
        return {
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "service": self.service,
            "name": self.name,
            "kind": self.kind,
            "start": iso(self.start_ns),
            "offset_ms": round((self.start_ns - trace_start_ns) / 1e6, 3),
            "duration_ms": round(self.duration_ms, 3),
            "status_code": self.status_code,
            "status_message": self.status_message,
            "attributes": self.attributes,
            "events": self.events,
            "orphan": self.orphan,
            "logs": [_log_json(lg) for lg in self.logs],
            "children": [c.to_json(trace_start_ns) for c in self.children],
        }


@dataclass
class TraceTree:
    """One trace: its root spans (normally one) with their subtrees, and logs not tied to a span.

    Attributes:
        trace_id: 32 hex.
        roots: spans without a (received) parent, by start time.
        span_count: spans in the trace.
        error_count: spans with status ``error``.
        start_ns: earliest span start (or log time when the trace has no spans).
        end_ns: latest span end.
        loose_logs: log lines of the trace whose span is unknown.
        log_count: all log lines of the trace.
        now_ns: when the query ran.

    """

    trace_id: str
    roots: list[SpanNode]
    span_count: int
    error_count: int
    start_ns: int
    end_ns: int
    loose_logs: list[dict[str, Any]]
    log_count: int
    now_ns: int

    @property
    def duration_ms(self) -> float:
        """Latest end minus earliest start, ms."""
        return (self.end_ns - self.start_ns) / 1e6

    def to_json(self) -> TraceDoc:
        """The ``legible.trace/v1`` document: the full tree."""
        return {
            "schema": "legible.trace/v1",
            "trace_id": self.trace_id,
            "start": iso(self.start_ns),
            "duration_ms": round(self.duration_ms, 3),
            "spans": self.span_count,
            "errors": self.error_count,
            "logs": self.log_count,
            "roots": [r.to_json(self.start_ns) for r in self.roots],
            "loose_logs": [_log_json(lg) for lg in self.loose_logs],
        }


def _log_json(row: dict[str, Any]) -> SpanLog:
    """A log row of the trace (``time_ns``, ``level``, ``service``, ``body``) with ``time`` in ISO 8601."""
    return cast("SpanLog", {**row, "time": iso(row["time_ns"])})


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


def resolve_trace_id(store: Store, text: str) -> str:
    """Return the full trace id that ``text`` (a full id, or a unique prefix of at least 6 hex) names.

    Raises:
        UsageError: not hex or shorter than 6, no trace starts with it, or several do (listed).

    """
    tid = text.strip().lower()
    if not _HEX_RE.fullmatch(tid):
        raise UsageError(f"trace id {text!r} must be 6 to 32 hex digits", hint="copy it from `legible traces`")
    if len(tid) == 32:
        return tid
    sql = (
        "SELECT trace_id FROM (SELECT DISTINCT trace_id FROM spans WHERE starts_with(trace_id, ?) UNION "
        "SELECT DISTINCT trace_id FROM logs WHERE starts_with(trace_id, ?)) ORDER BY 1 LIMIT 6"
    )
    found = [r[0] for r in store.query(sql, [tid, tid]).rows]
    if not found:
        raise UsageError(f"no trace starts with {tid}", hint="`legible traces --since all` lists the stored ones")
    if len(found) > 1:
        more = ", ".join(found[:5]) + (" ..." if len(found) > 5 else "")
        raise UsageError(f"{tid} is ambiguous: {more}", hint="give more digits")
    return str(found[0])


def get_trace(store: Store, trace_id: str, max_logs: int = 2000, now: int | None = None) -> TraceTree:
    """Load one trace (spans and their log lines) into a tree.

    Args:
        store: the worktree's store.
        trace_id: the full id or a unique prefix (>= 6 hex).
        max_logs: most log lines loaded.
        now: the current time in ns, for relative times.

    Raises:
        UsageError: see :func:`resolve_trace_id`.
        NotRunning: there is no store yet.

    """
    now = now_ns() if now is None else now
    tid = resolve_trace_id(store, trace_id)
    spans = store.query(
        "SELECT span_id, parent_span_id, service, name, kind, start_ns, end_ns, duration_ms, status_code, "
        "status_message, attributes, events FROM spans WHERE trace_id = ? ORDER BY start_ns, seq",
        [tid],
    ).rows
    logs = store.query(
        "SELECT time_ns, level, service, body, span_id FROM logs WHERE trace_id = ? ORDER BY time_ns, seq LIMIT ?",
        [tid, int(max_logs)],
    ).dicts()
    nodes: dict[str, SpanNode] = {}
    end = 0
    for sid, parent, svc, name, kind, start, stop, dur, code, msg, attrs, events in spans:
        nodes[sid] = SpanNode(
            sid, parent, svc, name, kind, int(start), float(dur), code, msg, _json(attrs, {}), _json(events, [])
        )
        end = max(end, int(stop))
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent_node = nodes.get(node.parent_span_id) if node.parent_span_id else None
        if parent_node is None or parent_node is node:
            node.orphan = node.parent_span_id is not None
            roots.append(node)
        else:
            parent_node.children.append(node)
    loose: list[dict[str, Any]] = []
    for lg in logs:
        sid = lg.pop("span_id")
        (nodes[sid].logs if sid in nodes else loose).append(lg)
    start = min((n.start_ns for n in nodes.values()), default=min((lg["time_ns"] for lg in logs), default=0))
    end = end or max((lg["time_ns"] for lg in logs), default=start)
    errors = sum(1 for n in nodes.values() if n.is_error)
    return TraceTree(tid, roots, len(nodes), errors, start, end, loose, len(logs), now)


_PY_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)(?:, in (.+))?')
_JAVA_FRAME = re.compile(r"^\s*at ([\w$.<>/]+)\.([\w$<>]+)\(([^():]+):(\d+)\)")
_JS_FRAME = re.compile(r"^\s*at (?:(.+?) \()?(.+?):(\d+):\d+\)?$")


def top_frame(stacktrace: str) -> str | None:
    """The source frame where an exception was raised, as ``file:line in function``, or ``None``.

    ``stacktrace`` is the ``exception.stacktrace`` attribute of an OpenTelemetry exception event
    (https://opentelemetry.io/docs/specs/semconv/exceptions/exceptions-spans/), in the language's own format:
    a Python traceback (the innermost frame is the last ``File "...", line N, in f``), a Java stack trace
    (the first ``at pkg.Class.method(File.java:N)``) or a JavaScript one (the first ``at f (file:N:C)``).
    """
    lines = stacktrace.splitlines()
    py = [m for m in (_PY_FRAME.match(ln) for ln in lines) if m]
    if py:
        m = py[-1]
        return f"{m.group(1)}:{m.group(2)}" + (f" in {m.group(3).strip()}" if m.group(3) else "")
    for ln in lines:
        if j := _JAVA_FRAME.match(ln):
            return f"{j.group(3)}:{j.group(4)} in {j.group(1).rsplit('.', 1)[-1]}.{j.group(2)}"
        if js := _JS_FRAME.match(ln):
            return f"{js.group(2)}:{js.group(3)}" + (f" in {js.group(1)}" if js.group(1) else "")
    return None


def _attrs_text(node: SpanNode) -> str:
    a = node.attributes
    parts = []
    for key in KEY_ATTRIBUTES:
        if key in a and a[key] not in (None, ""):
            if key in ("http.target", "url.path") and a.get("http.route") == a[key]:
                continue
            parts.append(f"{key}={one_line(str(a[key]), 60)}")
    return " ".join(parts)


def _log_text(lg: dict[str, Any]) -> str:
    from legible.queries.logs import compact_location, headline

    head, loc = headline(str(lg.get("body") or ""))
    at = f"  at {compact_location(loc)}" if loc else ""
    return f"{fmt_clock(lg['time_ns'], ms=True)} {lg['level']} {one_line(head, 140)}{at}"


def render_tree(tree: TraceTree, limit: int = 40) -> list[str]:
    """Render one trace: a header, the indented span tree, exceptions and log lines, a cut line.

    Each span line reads ``name  duration  +offset  [service]  ERROR  key=value ...``; an exception is
    ``! Type: message  at file:line in function`` under its span (the top source frame, :func:`top_frame`)
    and a log line ``| HH:MM:SS.mmm level message``. More than :data:`FOLD_AFTER` same-named siblings fold
    into ``… N more `name` spans (total T)`` (error spans are never folded). When the lines exceed ``limit``,
    lines on error paths are kept first, then the earliest; the last line says how many were cut.
    """
    t0 = tree.start_ns
    lines: list[tuple[str, bool]] = []  # (text, important)

    def emit_logs(logs: list[dict[str, Any]], pad: str, span_hint: str) -> None:
        pick = sorted(logs, key=lambda lg: (lg["level"] not in ("error", "fatal", "warn"), lg["time_ns"]))
        pick = sorted(pick[:LOGS_PER_SPAN], key=lambda lg: lg["time_ns"])
        for lg in pick:
            lines.append((f"{pad}| {_log_text(lg)}", lg["level"] in ("error", "fatal")))
        if len(logs) > len(pick):
            lines.append(
                (
                    f"{pad}| … {len(logs) - len(pick)} more log lines: legible logs --trace-id "
                    f"{tree.trace_id} --raw{span_hint}",
                    False,
                )
            )

    def walk(node: SpanNode, depth: int, parent_service: str | None) -> None:
        pad = "  " * depth
        offset = (node.start_ns - t0) / 1e6
        parts = [f"{pad}{one_line(node.name, 80)}", fmt_ms(node.duration_ms), f"+{fmt_ms(offset)}" if offset else "+0"]
        if node.service != parent_service:
            parts.append(f"[{node.service}]")
        if node.is_error:
            parts.append("ERROR")
        if node.orphan:
            parts.append("(parent not received)")
        attrs = _attrs_text(node)
        if attrs:
            parts.append(attrs)
        important = node.subtree_has_error()
        lines.append(("  ".join(parts), important))
        excs = node.exception_frames()
        for etype, emsg, frame in excs:
            at = f"  at {one_line(frame, 120)}" if frame else ""
            lines.append((f"{pad}  ! {etype}: {one_line(emsg, 160)}{at}", True))
        if node.is_error and not excs and node.status_message:
            lines.append((f"{pad}  ! status: {one_line(node.status_message, 160)}", True))
        emit_logs(node.logs, pad + "  ", "")
        seen: dict[str, int] = {}
        folded: dict[str, list[SpanNode]] = {}
        for child in node.children:
            seen[child.name] = seen.get(child.name, 0) + 1
            if seen[child.name] > FOLD_AFTER and not child.subtree_has_error():
                folded.setdefault(child.name, []).append(child)
        announced: set[str] = set()
        for child in node.children:
            hidden = folded.get(child.name, [])
            if child in hidden:
                if child.name not in announced:
                    announced.add(child.name)
                    total = sum(c.duration_ms for c in hidden)
                    lines.append(
                        (
                            f"{pad}  … {len(hidden)} more `{one_line(child.name, 60)}` spans (total {fmt_ms(total)})",
                            False,
                        )
                    )
                continue
            walk(child, depth + 1, node.service)

    for root in tree.roots:
        walk(root, 0, None)
    if tree.loose_logs:
        lines.append(("logs of this trace without a known span:", False))
        emit_logs(tree.loose_logs, "  ", "")
    first = tree.roots[0] if tree.roots else None
    title = f"{first.name} [{first.service}]" if first else "(no spans stored)"
    head = (
        f"trace {tree.trace_id}: {title} {fmt_ms(tree.duration_ms)}, {tree.span_count} spans, "
        f"{tree.error_count} errors, {tree.log_count} log lines, started {fmt_clock(t0)} "
        f"({fmt_ago(t0, tree.now_ns)})"
    )
    if len(lines) <= limit:
        return [head, *(t for t, _ in lines)]
    keep = {i for i, (_, imp) in enumerate(lines) if imp}
    keep = set(sorted(keep)[:limit])
    for i in range(len(lines)):
        if len(keep) >= limit:
            break
        keep.add(i)
    out = [head, *(lines[i][0] for i in sorted(keep))]
    out.append(
        cut_line(
            len(lines) - len(keep), "lines of this trace", f"--limit {max(2 * limit, 200)} or --json (the full tree)"
        )
    )
    return out


# ------------------------------------------------------------------------------------------------ views


def traces_view(
    flt: TraceFilter,
    *,
    slowest: int | None = None,
    limit: int | None = None,
    sql: str | None = None,
    store: Store | None = None,
) -> View:
    """What ``legible traces`` shows: the newest traces, the ``slowest`` N, or the rows of one ``sql`` SELECT.

    Args:
        flt: the filter (:func:`make_trace_filter`); not used with ``sql``.
        slowest: show the N longest traces, longest first, instead of the newest ``limit``.
        limit: traces shown (default 20) or SQL rows (default 40).
        sql: one read-only SELECT over the store's tables.
        store: the store (default: the current directory's worktree store).

    Returns:
        The ``legible.traces/v1`` (or ``legible.sql/v1``) document and the text lines.

    Raises:
        UsageError: a bad count, or DuckDB rejected the query.
        NotRunning: there is no store yet.

    """
    from legible.queries.source import worktree_store

    store = store or worktree_store()
    if sql:
        from legible.queries.sql import render_sql, run_sql, sql_json

        res = run_sql(store, sql)
        return View(sql_json(res, "legible.sql/v1"), render_sql(res, parse_limit(limit, 40)))
    if slowest is not None:
        n = parse_limit(slowest, 10, what="--slowest")
    else:
        n = parse_limit(limit, 20)
    traced = list_traces(store, flt, n, slowest=slowest is not None)
    return View(traced.to_json(), render_traces(traced, n))


def trace_view(trace_id: str, *, limit: int | None = None, store: Store | None = None) -> View:
    """What ``legible trace ID`` shows: the whole tree as a document, and at most ``limit`` lines (40) of it.

    Raises:
        UsageError: a malformed, unknown or ambiguous id, or a bad ``limit``.
        NotRunning: there is no store yet.

    """
    from legible.queries.source import worktree_store

    n = parse_limit(limit, 40)
    tree = get_trace(store or worktree_store(), trace_id)
    return View(tree.to_json(), render_tree(tree, n))
