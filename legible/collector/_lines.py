"""Turn a service's stdout/stderr lines into log records: JSON, logfmt or plain text, multi-line aware.

One line is parsed by :func:`parse_line`:

* **JSON** (a line that is one JSON object): message from ``msg``/``message``/``event``/``body``, level
  from ``level``/``severity``/``lvl``/``levelname``/... (names, or pino/bunyan numbers 10..60), time from
  ``ts``/``time``/``timestamp``/``@timestamp``/... (epoch s/ms/us/ns by magnitude, or ISO 8601), trace and
  span ids from ``trace_id``/``traceId``/``otelTraceID``/..., an exception or stack field appended to the
  body; the other keys become attributes.
* **logfmt** (https://brandur.org/logfmt: the line is all ``key=value`` pairs, values optionally quoted):
  the same keys.
* **tab-separated** ``time<TAB>level<TAB>caller<TAB>message``, as VictoriaMetrics (its ``lib/logger``) and
  zap's console encoder write: an ISO 8601 time, a lower-case level name, ``path/file.go:line`` (kept as the
  ``code.location`` attribute) and the message, which becomes the body.
* **Postgres** server lines with ``log_line_prefix = '%m [%p] '`` (what legible's ``postgres`` kind sets):
  ``2026-01-02 03:04:05.678 UTC [123] ERROR:  message``; the severity maps ``DEBUG1-5`` to ``debug``,
  ``LOG``/``INFO``/``NOTICE`` to ``info``, ``WARNING`` to ``warn``, ``ERROR`` to ``error``, ``FATAL``/``PANIC``
  to ``fatal``; a ``log_min_duration_statement`` line (``LOG:  duration: 63.1 ms  statement: ...``) is a
  ``warn`` with ``db.statement`` and ``db.duration_ms`` attributes; the ``DETAIL``/``HINT``/``CONTEXT``/
  ``STATEMENT``/``QUERY`` lines that follow a message from the same process join its record (the
  statement of an error is in its body). Severities: https://www.postgresql.org/docs/15/runtime-config-logging.html
* **Redis** server lines, ``pid:role DD Mon YYYY HH:MM:SS.mmm <mark> message`` (``src/server.c``
  ``serverLogRaw``): the mark ``.`` is ``debug``, ``-`` ``debug`` (verbose), ``*`` ``info`` (notice),
  ``#`` ``warn``; the time is the server's local time.
* **trace-context prefix** ``<time> <LEVEL> [<logger>] trace_id=<32 hex> [span_id=<16 hex>] <message>``
  (bare, or bracketed as the OpenTelemetry logging instrumentation's default format
  ``... [trace_id=.. span_id=.. resource.service.name=..] - <message>``): the message is the body, the
  logger the ``logger`` attribute, so the copy of a record an app also exports over OTLP folds into it.
* **plain text**: the level is the first level word (``ERROR``, ``WARNING``, ``[error]``, ...) in the
  first 256 characters, else ``info``; a leading ISO 8601 time is used as the event time; ``trace_id=<32
  hex>`` and ``span_id=<16 hex>`` anywhere (the OpenTelemetry logging format) are picked up.

:class:`RecordAssembler` keeps multi-line records together: a Python traceback (with chained exceptions,
and attached to the error line before it that ``logger.exception`` writes), indented continuation lines,
Java ``at ...``/``Caused by:``/``... N more`` lines. A record containing a traceback is at least
``error``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson  # several times faster than the stdlib on the hot path (a dependency, see pyproject.toml)

_loads: Callable[[str | bytes], Any] = orjson.loads


def _dumps(obj: Any) -> str:
    out: bytes = orjson.dumps(obj, default=str)
    return out.decode()


#: Longest log body kept, in bytes-ish characters; longer bodies are cut with a ``…[cut N bytes]`` marker.
MAX_LINE = 16 * 1024
#: Most lines one multi-line record may hold.
MAX_RECORD_LINES = 1000
#: Longest attribute value kept (characters), and most attributes per record.
MAX_ATTR_VALUE = 4096
MAX_ATTRS = 128

#: Normalised level -> OpenTelemetry severity number (the first of each range).
SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}
_RANK = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}

_LEVEL_NAMES = {
    "trace": "trace",
    "trc": "trace",
    "finest": "trace",
    "finer": "trace",
    "verbose": "trace",
    "debug": "debug",
    "dbg": "debug",
    "fine": "debug",
    "d": "debug",
    "info": "info",
    "inf": "info",
    "information": "info",
    "notice": "info",
    "i": "info",
    "log": "info",
    "warn": "warn",
    "warning": "warn",
    "wrn": "warn",
    "w": "warn",
    "error": "error",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "e": "error",
    "exception": "error",
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "panic": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
    "dpanic": "fatal",
    "f": "fatal",
}

_MSG_KEYS = ("msg", "message", "event", "body", "log", "text")
_LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level", "loglevel", "severity_text", "status")
_TIME_KEYS = ("ts", "time", "timestamp", "@timestamp", "asctime", "t", "datetime", "date")
_TRACE_KEYS = ("trace_id", "traceId", "traceid", "otelTraceID", "trace.id", "traceID")
_SPAN_KEYS = ("span_id", "spanId", "spanid", "otelSpanID", "span.id", "spanID")
_EXC_KEYS = ("exc_info", "exception", "stack", "stacktrace", "stack_trace", "error.stack", "exc_text")

_LEVEL_RE = re.compile(
    r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|CRITICAL|CRIT|FATAL|PANIC|EMERG)\b"
    r"|[\[<(|](trace|debug|info|notice|warn|warning|error|err|crit|critical|fatal|panic|emerg)[\]>):|]"
    r"|\blevel=\"?(\w+)"
    r"|^(panic|fatal|error|warning|warn|critical)(?: error)?:"
)
#: The upper-case level words of :data:`_LEVEL_RE`'s first alternative.
_UPPER_LEVELS = frozenset(
    ("TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "SEVERE", "CRITICAL", "CRIT", "FATAL")
    + ("PANIC", "EMERG")
)
#: Lower-case stems one of which every match of :data:`_LEVEL_RE` begins with (``level=`` for its third
#: alternative; ``warning``, ``error``, ``critical`` begin with ``warn``, ``err``, ``crit``).
_LEVEL_STEMS: tuple[str, ...] = ("info", "err", "warn", "debug", "trace", "notice", "severe", "crit", "fatal")
_LEVEL_STEMS += ("panic", "emerg", "level=")
#: Any of :data:`_LEVEL_STEMS`: one search finds the earliest place where one of them occurs.
_STEMS_RE = re.compile("|".join(map(re.escape, _LEVEL_STEMS)))


def _level_start(head: str) -> int:
    r"""Where :data:`_LEVEL_RE` can first match in ``head``, or -1 when it cannot match at all.

    A pre-check that spares the (slow, position by position) regex search: a match starts at one of the
    :data:`_LEVEL_STEMS` (case-insensitively) or at the bracket just before it, so a line containing none
    has no level word, and the search may start one character before the first stem. Positions are those of
    the lower-cased text, the same as the original's only for ASCII; otherwise the search starts at 0.
    ``\b`` and ``^`` in the regex still see the whole string (``Pattern.search(text, pos)``).
    """
    m = _STEMS_RE.search(head.lower())  # the leftmost match is the first occurrence of the first stem
    first = -1 if m is None else m.start()
    if first <= 0:
        return first
    return first - 1 if head.isascii() else 0


_ISO_PREFIX = re.compile(r"\[?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
_TRACE_RE = re.compile(r"trace_?id[=:]\s*\"?([0-9a-fA-F]{32})\b", re.IGNORECASE)
_SPAN_RE = re.compile(r"span_?id[=:]\s*\"?([0-9a-fA-F]{16})\b", re.IGNORECASE)
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_LOGFMT_LINE = re.compile(r'(?:\s*[A-Za-z_@][\w.\-/@]*=(?:"(?:[^"\\]|\\.)*"|[^\s"]*))+\s*')
#: :data:`_LOGFMT_LINE` without backtracking (possessive), and a quoted value as runs of plain characters
#: between escapes (the same strings, matched without an alternation per character): a line it matches,
#: :data:`_LOGFMT_LINE` matches too; one it does not match is tried with :data:`_LOGFMT_LINE`.
_LOGFMT_QUICK = re.compile(r'(?:\s*+[A-Za-z_@][\w.\-/@]*+=(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^\s"]*+))++\s*+')
#: One ``key=value`` pair; a quoted value is a quoted string of :data:`_LOGFMT_LINE`, written as in
#: :data:`_LOGFMT_QUICK` (the same strings: a quoted value ends at its first unescaped quote either way).
_LOGFMT_PAIR = re.compile(r'([A-Za-z_@][\w.\-/@]*)=("[^"\\]*(?:\\.[^"\\]*)*"|[^\s"]*)')
_JAVA_CONT = re.compile(r"(?:Caused by: |Suppressed: |\.\.\. \d+ (?:more|common frames omitted))")
_TB_HEAD = "Traceback (most recent call last):"
_TB_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def cut(text: str, limit: int = MAX_LINE) -> str:
    """Return ``text`` cut to ``limit`` characters with a ``…[cut N bytes]`` marker (N counts UTF-8 bytes)."""
    if len(text) <= limit:
        return text
    rest = len(text[limit:].encode("utf-8", "replace"))
    return f"{text[:limit]}…[cut {rest} bytes]"


def level_from_name(value: Any) -> str | None:
    """Map a level name (``WARNING``, ``err``) or a pino/bunyan number (10..60) to a level, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        n = int(value)
        if n >= 60:
            return "fatal"
        if n >= 50:
            return "error"
        if n >= 40:
            return "warn"
        if n >= 30:
            return "info"
        if n >= 20:
            return "debug"
        return "trace" if n >= 10 else None
    if isinstance(value, str):
        level = _LEVEL_NAMES.get(value)
        return level if level is not None else _LEVEL_NAMES.get(value.strip().lower())
    return None


#: :data:`_UPPER_LEVELS` -> level, as :func:`level_from_name` maps them.
_UPPER_LEVEL_NAMES: dict[str, str | None] = {w: level_from_name(w) for w in _UPPER_LEVELS}


def parse_time(value: Any) -> int | None:
    """Return epoch nanoseconds from a number (s/ms/us/ns by magnitude) or an ISO 8601 string, else ``None``.

    Naive ISO times are taken as local time, as Python's ``logging`` writes them.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        if v <= 0:
            return None
        if v < 1e11:
            return int(v * 1e9)
        if v < 1e14:
            return int(v * 1e6)
        if v < 1e17:
            return int(v * 1e3)
        return int(v)
    if isinstance(value, str) and len(value) >= 10 and value[:4].isdigit():
        fast = _iso_ns(value)
        if fast is not None:
            return fast
        try:
            d = _dt.datetime.fromisoformat(value.strip().replace(",", "."))
        except ValueError:
            return None
        return int(d.timestamp() * 1e9)
    return None


#: (``YYYY-MM-DDTHH:MM``, zone) -> epoch ns of that minute; lines of one minute share it.
_MINUTES: dict[tuple[str, str], int] = {}
#: Whole-second ISO stamps (the exact text) -> epoch ns, as :func:`_iso_ns` computed them.
_SECONDS: dict[str, int] = {}
_ISO_FAST = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d(?::?\d\d)?)?")


def _iso_ns(text: str) -> int | None:
    """``YYYY-MM-DD[T ]HH:MM:SS[.,fraction][Z|±HH[:MM]]`` to epoch ns, or ``None`` for other forms.

    The minute is parsed once by ``datetime.fromisoformat`` (naive: local time) and remembered; seconds
    and the fraction are added as integers, so the result is exact to the nanosecond.
    """
    known = _SECONDS.get(text)
    if known is not None:
        return known
    if len(text) > 20 and text[19] in ".,":  # a fraction after a whole second seen before: no regex
        frac = text[20:]
        if len(frac) <= 9 and frac.isascii() and frac.isdigit() and (known := _SECONDS.get(text[:19])) is not None:
            return known + int(frac.ljust(9, "0"))
    m = _ISO_FAST.fullmatch(text)
    if m is None:
        return None
    minute, sec, frac, zone = m.groups()
    key = (minute, zone or "")
    base = _MINUTES.get(key)
    if base is None:
        try:
            d = _dt.datetime.fromisoformat(f"{minute}:00{zone or ''}")
        except ValueError:
            return None
        base = int(d.timestamp()) * 1_000_000_000
        if len(_MINUTES) >= 4096:
            _MINUTES.clear()
        _MINUTES[key] = base
    ns = base + int(sec) * 1_000_000_000
    if len(_SECONDS) >= 4096:
        _SECONDS.clear()
    if frac:
        if zone is None:  # text[:19] is this stamp's whole second (one character per \d), which the next
            _SECONDS[text[:19]] = ns  # stamps with a fraction look up
        return ns + int(frac.ljust(9, "0"))
    _SECONDS[text] = ns  # whole seconds repeat line after line
    return ns


#: 2000-01-01 in epoch ns, and a day in ns: :func:`_sane`'s bounds.
_EPOCH_2000 = 946_684_800_000_000_000
_DAY = 86_400_000_000_000


def _sane(ns: int | None, now_ns: int) -> int | None:
    # Reject times before 2000 or more than a day ahead: a misparsed field, not an event time.
    if ns is None or ns < _EPOCH_2000 or ns > now_ns + _DAY:
        return None
    return ns


def _attr(value: Any) -> Any:
    if isinstance(value, str):
        return cut(value, MAX_ATTR_VALUE)
    if isinstance(value, (dict, list)):
        text = _dumps(value)
        return value if len(text) <= MAX_ATTR_VALUE else cut(text, MAX_ATTR_VALUE)
    return value


def _hex_id(value: Any, pattern: re.Pattern[str]) -> str | None:
    """``value`` lower-cased if it is an id of ``pattern``'s form and not all zeros (no id: W3C Trace Context)."""
    if isinstance(value, str) and pattern.fullmatch(value) and value.strip("0"):
        return value.lower()
    return None


@dataclass(slots=True)
class Parsed:
    """One parsed line (or the head line of a multi-line record).

    Attributes:
        body: the message.
        level: normalised level.
        severity_text: the level as written, or ``None``.
        time_ns: event time, or ``None`` to use the observed time.
        attributes: extra fields (``{}`` for plain text).
        trace_id: 32 lower-case hex, or ``None``.
        span_id: 16 lower-case hex, or ``None``.
        structured: JSON or logfmt (never the head of a continuation).
        explicit_level: the level came from the line rather than the default.

    """

    body: str
    level: str = "info"
    severity_text: str | None = None
    time_ns: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    structured: bool = False
    explicit_level: bool = False


_ROLE = {
    **dict.fromkeys(_MSG_KEYS, "msg"),
    **dict.fromkeys(_LEVEL_KEYS, "level"),
    **dict.fromkeys(_TIME_KEYS, "time"),
    **dict.fromkeys(_TRACE_KEYS, "trace"),
    **dict.fromkeys(_SPAN_KEYS, "span"),
    **dict.fromkeys(_EXC_KEYS, "exc"),
}


def _from_fields(obj: dict[str, Any], line: str, now_ns: int) -> Parsed:
    # One pass over the keys; a key whose value does not fit its role stays an attribute.
    body: str | None = None
    level = sev_text = trace_id = span_id = exc = None
    time_ns = None
    attrs: dict[str, Any] = {}
    for k, v in obj.items():
        role = _ROLE.get(k)
        if role is not None:
            if role == "msg":
                if body is None and isinstance(v, (str, int, float)):
                    body = v if type(v) is str else str(v)
                    continue
            elif role == "level":
                # a known name as written is one look-up; anything else through level_from_name
                lv = _LEVEL_NAMES.get(v) if type(v) is str else None
                if level is None and (lv is not None or (lv := level_from_name(v)) is not None):
                    level, sev_text = lv, v if type(v) is str else str(v)
                    continue
            elif role == "time":
                # a whole-second stamp seen before is one look-up (the same value parse_time returns)
                if time_ns is None:
                    t = _SECONDS.get(v) if type(v) is str else None
                    if t is None:
                        t = parse_time(v)
                    if t is not None and _EPOCH_2000 <= t <= now_ns + _DAY:  # as _sane, without its call
                        time_ns = t
                        continue
            elif role == "trace":
                if trace_id is None and (h := _hex_id(v, _HEX32)):
                    trace_id = h
                    continue
            elif role == "span":
                if span_id is None and (h := _hex_id(v, _HEX16)):
                    span_id = h
                    continue
            elif exc is None and isinstance(v, str) and v.strip():
                exc = v
                continue
        if len(attrs) < MAX_ATTRS:
            if type(k) is not str or len(k) > 256:
                k = str(k)[:256]
            if type(v) is str:
                attrs[k] = v if len(v) <= MAX_ATTR_VALUE else cut(v, MAX_ATTR_VALUE)
            else:
                attrs[k] = v if isinstance(v, (int, float, bool)) or v is None else _attr(v)
    if body is None:
        body = line
    if exc:
        body = f"{body}\n{exc.rstrip()}"
        if level is None and _TB_HEAD in exc:
            level = "error"
    return Parsed(body, level or "info", sev_text, time_ns, attrs, trace_id, span_id, True, level is not None)


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        inner = v[1:-1]
        if "\\" in inner:
            try:
                return str(json.loads(v))
            except ValueError:
                return inner
        return inner
    return v


def _from_tabs(line: str, now_ns: int) -> Parsed | None:
    """``time<TAB>level<TAB>caller<TAB>message`` (VictoriaMetrics, zap console), or ``None`` if not that."""
    parts = line.split("\t", 3)
    if len(parts) != 4 or not _ISO_PREFIX.fullmatch(parts[0]):
        return None
    level = level_from_name(parts[1])
    if level is None:
        return None
    return Parsed(
        body=parts[3],
        level=level,
        severity_text=parts[1],
        time_ns=_sane(parse_time(parts[0]), now_ns),
        attributes={"code.location": parts[2]} if parts[2] else {},
        structured=True,
        explicit_level=True,
    )


_PG_LINE = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (\w+|[+-]\d\d(?::?\d\d)?) \[(\d+)\] "
    r"(DEBUG[1-5]|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|CONTEXT|STATEMENT|QUERY|LOCATION):  (.*)",
    re.DOTALL,
)
_PG_LEVEL = {"LOG": "info", "INFO": "info", "NOTICE": "info", "WARNING": "warn", "ERROR": "error"}
_PG_LEVEL |= {"FATAL": "fatal", "PANIC": "fatal"}
#: Postgres lines that belong to the message before them (from the same process).
_PG_TAIL = ("DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION")
_PG_SLOW = re.compile(
    r"duration: (\d+(?:\.\d+)?) ms  (?:statement|execute [^:]*|parse [^:]*|bind [^:]*): (.*)", re.DOTALL
)
_REDIS_LINE = re.compile(r"(\d+):[XCSM] (\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d\.\d{3}) ([.\-*#]) (.*)", re.DOTALL)
_REDIS_LEVEL = {".": "debug", "-": "debug", "*": "info", "#": "warn"}
#: ``<time> <LEVEL> [<logger>] trace_id=<32 hex> [span_id=<16 hex>] <message>``: Python ``logging`` formats
#: that put the trace context before the message, bare or in brackets as the OpenTelemetry logging
#: instrumentation's ``OTEL_PYTHON_LOG_FORMAT`` default does (``... [trace_id=.. span_id=.. ...] - msg``).
_ID = r"[0-9a-fA-F]{32}|0|-"
_TRACE_PREFIX = re.compile(
    r"\[?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)\]?"
    r" +\[?([A-Za-z]{3,9})\]?:?"
    r"(?: +\[?([\w.\-<>]+)\]?:?)?"
    r"(?: +\[[^\]\n]*\])*"
    rf" +(?:\[trace_id=({_ID})(?: span_id=([0-9a-fA-F]{{16}}|0|-))?[^\]\n]*\]"
    rf"|trace_id=({_ID})(?: span_id=([0-9a-fA-F]{{16}}|0|-))?)"
    r"(?: +-)? +(.*)",
    re.DOTALL,
)


def _pg_time(stamp: str, zone: str) -> int | None:
    if zone in ("UTC", "GMT"):
        zone = "+00:00"
    elif zone.isalpha():  # a named zone other than UTC: its offset is unknown here, use the observed time
        return None
    try:
        return int(_dt.datetime.fromisoformat(f"{stamp}{zone}").timestamp() * 1e9)
    except ValueError:
        return None


def _from_postgres(m: re.Match[str], now_ns: int) -> Parsed:
    stamp, zone, pid, tag, msg = m.groups()
    level = "debug" if tag.startswith("DEBUG") else _PG_LEVEL.get(tag, "info")
    attrs: dict[str, Any] = {"db.system": "postgresql", "process.pid": int(pid)}
    if tag == "LOG" and (slow := _PG_SLOW.match(msg)):
        level = "warn"  # a statement slower than log_min_duration_statement
        attrs["db.duration_ms"] = float(slow.group(1))
        attrs["db.statement"] = cut(slow.group(2), MAX_ATTR_VALUE)
    return Parsed(
        body=f"{tag}:  {msg}",
        level=level,
        severity_text=tag,
        time_ns=_sane(_pg_time(stamp, zone), now_ns),
        attributes=attrs,
        structured=True,
        explicit_level=True,
    )


def _from_redis(m: re.Match[str], now_ns: int) -> Parsed:
    pid, stamp, mark, msg = m.groups()
    try:
        t: int | None = int(_dt.datetime.strptime(stamp, "%d %b %Y %H:%M:%S.%f").timestamp() * 1e9)
    except ValueError:
        t = None
    return Parsed(
        body=msg,
        level=_REDIS_LEVEL[mark],
        severity_text=mark,
        time_ns=_sane(t, now_ns),
        attributes={"db.system": "redis", "process.pid": int(pid)},
        structured=True,
        explicit_level=True,
    )


def _hex_or_none(value: str | None) -> str | None:
    return value.lower() if value and len(value) > 1 and value.strip("0") else None


def _from_trace_prefix(line: str, now_ns: int) -> Parsed | None:
    """``<time> <LEVEL> [<logger>] trace_id=<id> [span_id=<id>] <message>``, or ``None`` if not that.

    The message becomes the body, so the line's first line equals the message of the same record exported
    over OTLP (the writer's stdout/OTLP dedupe compares them); the logger is kept as the ``logger``
    attribute, as for JSON lines.
    """
    m = _TRACE_PREFIX.match(line)
    if m is None:
        return None
    stamp, word, logger, t1, s1, t2, s2, msg = m.groups()
    level = level_from_name(word)
    if level is None:
        return None
    return Parsed(
        body=msg,
        level=level,
        severity_text=word,
        time_ns=_sane(parse_time(stamp), now_ns),
        attributes={"logger": logger} if logger else {},
        trace_id=_hex_or_none(t1 or t2),
        span_id=_hex_or_none(s1 or s2),
        explicit_level=True,
    )


def parse_line(line: str, now_ns: int) -> Parsed:
    """Parse one line (no trailing newline) as JSON, logfmt or plain text; see the module docstring.

    Args:
        line: the line, already decoded and cut to :data:`MAX_LINE`.
        now_ns: the observed time (epoch ns), used to reject absurd parsed times.

    """
    c = line[:1]
    if c == "{" and (line[-1] == "}" or line.rstrip().endswith("}")):
        try:
            obj = _loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return _from_fields(obj, line, now_ns)
    elif "=" in line and (c.isalpha() or c == "_") and (_LOGFMT_QUICK.fullmatch(line) or _LOGFMT_LINE.fullmatch(line)):
        pairs = dict(_LOGFMT_PAIR.findall(line))  # a repeated key: its first place, its last value
        if '"' in line:
            for k, v in pairs.items():
                if v[:1] == '"':
                    pairs[k] = _unquote(v)
        if len(pairs) >= 2 or "msg" in pairs or "level" in pairs:
            return _from_fields(pairs, line, now_ns)
    digit = c.isdigit()
    if digit:  # the prefixed forms all start with a time or a pid
        if "\t" in line and (tsv := _from_tabs(line, now_ns)) is not None:
            return tsv
        if "] " in line[:60] and (pg := _PG_LINE.match(line)) is not None:
            return _from_postgres(pg, now_ns)
        if ":" in line[:12] and (rd := _REDIS_LINE.match(line)) is not None:
            return _from_redis(rd, now_ns)
    if (digit or c == "[") and "trace_id=" in line[:200] and (tp := _from_trace_prefix(line, now_ns)):
        return tp
    p = Parsed(line)
    word = None
    if digit or c == "[":
        t = _ISO_PREFIX.match(line)
        if t:
            stamp = t.group(1)
            ns = _iso_ns(stamp)  # what parse_time tries first
            if ns is None:
                ns = parse_time(stamp)
            if ns is not None and _EPOCH_2000 <= ns <= now_ns + _DAY:  # as _sane, without its call
                p.time_ns = ns
            # "<time> LEVEL ...": the level word right after the time is what _LEVEL_RE would find first
            # (a time holds no other match), so the search over the line is skipped
            end = t.end()
            after = line[end : end + 12].lstrip(" ").split(" ", 1)[0]
            lvl = _UPPER_LEVEL_NAMES.get(after)
            if lvl is not None:
                p.level, p.severity_text, p.explicit_level = lvl, after, True
                word = ""
    if word is None:
        head = line[:256]
        start = _level_start(head)
        if start >= 0:
            m = _LEVEL_RE.search(head, start)
            if m:
                word = m.group(1) or m.group(2) or m.group(3) or m.group(4)
    if word:
        lvl = level_from_name(word)
        if lvl:
            p.level, p.severity_text, p.explicit_level = lvl, word, True
    if "_id" in line or "Id" in line or "ID" in line:
        t = _TRACE_RE.search(line)
        if t and t.group(1).strip("0"):  # all zeros: no trace (W3C Trace Context), as logging prints outside a span
            p.trace_id = t.group(1).lower()
            s = _SPAN_RE.search(line)
            if s and s.group(1).strip("0"):
                p.span_id = s.group(1).lower()
    return p


#: One ``logs`` row in store column order without ``seq``/``template``: time_ns, observed_ns, service, level,
#: severity_number, severity_text, body, attributes (JSON text), resource, scope, trace_id, span_id, source.
LogRow = tuple[Any, ...]


def log_row(service: str, p: Parsed, observed_ns: int) -> LogRow:
    """Return the ``logs`` row (without ``seq``/``template``) of a parsed file record, source ``stdout``.

    Args:
        service: the ``service`` column (the log file's stem).
        p: the record's head line, its body the whole record.
        observed_ns: when its first line was read (epoch ns); the time when the line gives none.

    """
    return (
        p.time_ns or observed_ns,
        observed_ns,
        service,
        p.level,
        SEVERITY[p.level],
        p.severity_text,
        p.body,
        _dumps(p.attributes) if p.attributes else "{}",
        "{}",
        None,
        p.trace_id,
        p.span_id,
        "stdout",
    )


@dataclass(slots=True)
class Record:
    """A finished log record from a file, ready for the store.

    Attributes:
        parsed: the head line's fields; ``parsed.body`` holds the whole record.
        observed_ns: when its first line was read.
        end_offset: byte offset just past its last line in the file.

    """

    parsed: Parsed
    observed_ns: int
    end_offset: int


class RecordAssembler:
    """Group the lines of one file into records (see the module docstring); one instance per file.

    Feed lines with :meth:`feed`, which returns the records that the line finished; :meth:`flush` ends the
    pending record (on idle or shutdown). :attr:`safe_offset` is the file offset up to which every byte
    belongs to a returned record: the offset to persist.
    """

    def __init__(self, start_offset: int = 0) -> None:
        self.safe_offset = start_offset
        self._head: Parsed | None = None
        self._lines: list[str] = []
        self._size = 0
        self._observed = 0
        self._end = start_offset
        self._in_tb = False  # inside traceback frames, waiting for the exception line
        self._after_exc = False  # just saw an exception line: a chain may follow
        self._blank = 0  # blank lines held while deciding
        self._has_tb = False

    @property
    def pending(self) -> bool:
        """A record is open."""
        return self._head is not None

    def _continues(self, line: str) -> bool:
        if self._head is None:
            return False
        if self._in_tb:
            return True
        c = line[:1]
        if c == " " or c == "\t":
            return True
        if line.startswith(_TB_HEAD):
            return not self._has_tb and (self._after_exc or _RANK[self._head.level] >= _RANK["warn"])
        if self._after_exc and line.startswith(_TB_CHAIN):
            return True
        if c.isdigit() and self._head.attributes.get("db.system") == "postgresql":
            m = _PG_LINE.match(line)  # DETAIL/STATEMENT/... of the same backend belong to its message
            if m is not None and m.group(4) in _PG_TAIL and int(m.group(3)) == self._head.attributes["process.pid"]:
                return True
        return bool(self._lines) and _JAVA_CONT.match(line) is not None

    def feed(self, line: str, end_offset: int, now_ns: int) -> list[Record]:
        """Add one line that ends at ``end_offset``; return the records it finished (zero or one).

        Args:
            line: the line without its newline, decoded, cut to :data:`MAX_LINE`.
            end_offset: byte offset just past the line's newline.
            now_ns: the time it was read (epoch ns).

        """
        head, c = self._head, line[:1]
        if (
            head is not None
            and not self._lines
            and not (self._in_tb or self._after_exc)
            and "!" <= c <= "~"
            and c != "T"
            and not (c.isdigit() and head.attributes.get("db.system") == "postgresql")
        ):
            # The common case, a one-line record ended by the next line: what _continues (false: no
            # indent, no traceback, no Postgres detail, no Java frame after a head alone), _finish (no
            # lines to join) and _start (not a traceback head) do, without their calls.
            end = self._end
            out = [Record(head, self._observed, end)]
            self.safe_offset = end
            parsed = self._head = parse_line(line, now_ns)
            self._size = len(parsed.body)
            self._observed = now_ns
            self._end = end_offset
            self._blank = 0
            self._has_tb = False
            return out
        out = []
        if not line or line.isspace():
            if self._head is not None and (self._in_tb or self._after_exc):
                self._blank += 1
            self._end = end_offset
            if self._head is None:
                self.safe_offset = end_offset
            return out
        if self._continues(line) and len(self._lines) < MAX_RECORD_LINES and self._size < MAX_LINE:
            if self._blank and not self._in_tb:
                self._lines.extend([""] * self._blank)
            self._blank = 0
            self._lines.append(line)
            self._size += len(line) + 1
            self._end = end_offset
            self._advance_tb(line)
            return out
        if self._head is not None:
            out.append(self._finish())
        self.safe_offset = self._end if self._head is None else self.safe_offset
        self._start(line, end_offset, now_ns)
        return out

    def feed_rows(self, lines: list[str], offset: int, now_ns: int, service: str, rows: list[LogRow]) -> None:
        """Feed consecutive lines and append the ``logs`` rows of the records they finish to ``rows``.

        The same records as :meth:`feed` line by line followed by :func:`log_row` (the one-line records of the
        common case without a call, a :class:`Record` or a list per line; the rest through :meth:`feed`).

        Args:
            lines: the lines, without their newlines, decoded, each at most :data:`MAX_LINE` characters,
                each one byte per character (ASCII) as their offsets are counted in characters.
            offset: file offset (bytes) where the first line starts.
            now_ns: the time they were read (epoch ns).
            service: the ``service`` column.
            rows: where the rows go.

        """
        head: Any = self._head  # a Parsed whenever ``quiet`` (typed Any: the check is ``quiet``)
        observed, end, safe = self._observed, self._end, self.safe_offset
        quiet = head is not None and not self._lines and not (self._in_tb or self._after_exc)
        fast = False  # the fields above changed since they were read
        append, dumps = rows.append, orjson.dumps
        for line in lines:
            offset += len(line) + 1
            c = line[:1]
            if (
                quiet
                and "!" <= c <= "~"
                and c != "T"
                and not (c.isdigit() and head.attributes.get("db.system") == "postgresql")
            ):
                # What feed's fast path does: the next line starts a record, the head is a finished one.
                lvl, attrs = head.level, head.attributes
                append(
                    (
                        head.time_ns or observed,
                        observed,
                        service,
                        lvl,
                        SEVERITY[lvl],
                        head.severity_text,
                        head.body,
                        dumps(attrs, default=str).decode() if attrs else "{}",  # as _dumps, without its call
                        "{}",
                        None,
                        head.trace_id,
                        head.span_id,
                        "stdout",
                    )
                )
                safe, end, observed = end, offset, now_ns
                head = parse_line(line, now_ns)
                fast = True
                continue
            if fast:
                self._sync(head, observed, end, safe)
                fast = False
            for rec in self.feed(line, offset, now_ns):
                append(log_row(service, rec.parsed, rec.observed_ns))
            head, observed, end, safe = self._head, self._observed, self._end, self.safe_offset
            quiet = head is not None and not self._lines and not (self._in_tb or self._after_exc)
        if fast:
            self._sync(head, observed, end, safe)

    def _sync(self, head: Parsed | None, observed: int, end: int, safe: int) -> None:
        """Store the state :meth:`feed_rows` kept in locals: a one-line record just started."""
        assert head is not None
        self._head, self._observed, self._end, self.safe_offset = head, observed, end, safe
        self._size = len(head.body)
        self._blank = 0
        self._has_tb = False

    def _advance_tb(self, line: str) -> None:
        if line.startswith(_TB_HEAD):
            self._in_tb, self._after_exc, self._has_tb = True, False, True
        elif line.startswith(_TB_CHAIN):
            self._in_tb, self._after_exc, self._has_tb = False, True, False
        elif self._in_tb and line[:1] not in (" ", "\t"):
            self._in_tb, self._after_exc = False, True
        elif not self._in_tb and line[:1] not in (" ", "\t"):
            self._after_exc = False

    def _start(self, line: str, end_offset: int, now_ns: int) -> None:
        self._head = parse_line(line, now_ns)
        self._lines = []
        self._size = len(self._head.body)
        self._observed = now_ns
        self._end = end_offset
        self._blank = 0
        self._in_tb = self._after_exc = self._has_tb = False
        if line.startswith(_TB_HEAD):
            self._in_tb = self._has_tb = True
            self._head.level = "error"

    def _finish(self) -> Record:
        head = self._head
        assert head is not None
        if self._lines:
            head.body = cut(head.body + "\n" + "\n".join(self._lines))
            if (self._has_tb or self._after_exc) and _RANK[head.level] < _RANK["error"]:
                head.level = "error"
            elif not head.explicit_level and any(ln.lstrip().startswith("at ") for ln in self._lines[:3]):
                head.level = "error"
        rec = Record(head, self._observed, self._end)
        self._head = None
        self._lines = []
        self._blank = 0
        self.safe_offset = self._end
        return rec

    def flush(self) -> list[Record]:
        """End the pending record (idle or shutdown); return it, or ``[]``."""
        if self._head is None:
            return []
        return [self._finish()]
