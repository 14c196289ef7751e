r"""Log queries over the store's ``logs`` table: groups of similar lines, raw lines, follow.

All filtering and grouping runs in DuckDB (one set-based statement per view), so the cost is one scan of
the time window whatever the number of lines. Results are plain dataclasses; ``render_*`` turn them into
the bounded text of ``legible logs`` and ``*.to_json()`` into its ``legible.logs/v1`` document.

Example::

    from legible.queries import logs, worktree_store
    store = worktree_store()
    flt = logs.make_filter(since="15m", level="warn")
    print("\n".join(logs.render_groups(logs.log_groups(store, flt, limit=30))))
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from legible._errors import NotRunning, UsageError
from legible.queries._fmt import (
    View,
    align,
    cut_line,
    fmt_ago,
    fmt_clock,
    fmt_count,
    iso,
    now_ns,
    one_line,
    parse_limit,
    parse_time,
)

if TYPE_CHECKING:
    from legible.contract import LogFilterDoc, LogGroupDoc, LogsGroupsDoc, LogsRawDoc
    from legible.store import Store, WordPlan

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_SINCE",
    "FIELDS",
    "LEVELS",
    "LogFilter",
    "LogGroup",
    "LogGroups",
    "LogLines",
    "compact_location",
    "follow",
    "follow_lines",
    "headline",
    "log_groups",
    "log_lines",
    "logs_view",
    "make_filter",
    "parse_limit",
    "render_groups",
    "render_lines",
]

#: Normalised levels, lowest first (the store's ``logs.level`` values).
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
_LEVEL_ALIASES = {
    "warning": "warn",
    "err": "error",
    "crit": "fatal",
    "critical": "fatal",
    "information": "info",
    "dbg": "debug",
    "notice": "info",
    "panic": "fatal",
    "severe": "error",
}
#: Default time window of ``legible logs``.
DEFAULT_SINCE = "15m"
#: ``--fields`` names -> SQL expressions over ``logs`` (``attr.KEY`` is accepted too).
FIELDS = {
    "ts": "time_ns",
    "time": "time_ns",
    "level": "level",
    "service": "service",
    "body": "body",
    "trace_id": "trace_id",
    "span_id": "span_id",
    "source": "source",
    "template": "template",
    "severity": "severity_text",
    "seq": "seq",
    "scope": "scope",
    "attributes": "attributes::VARCHAR",
    "resource": "resource::VARCHAR",
}
DEFAULT_FIELDS = ("ts", "level", "service", "body")
#: Lines of one multi-line body shown in raw text (the rest is counted).
RAW_BODY_LINES = 8
#: Per group in the grouped view: at most this many detail lines (traceback location) in total.
MAX_DETAIL_LINES = 8
_RANK = "CASE level WHEN 'fatal' THEN 0 WHEN 'error' THEN 0 WHEN 'warn' THEN 1 ELSE 2 END"
_HEX_RE = re.compile(r"[0-9a-f]{1,32}")


def _level(text: str) -> str:
    lv = _LEVEL_ALIASES.get(text.strip().lower(), text.strip().lower())
    if lv not in LEVELS:
        raise UsageError(f"--level: {text!r} is not a level", hint=f"one of {', '.join(LEVELS)}")
    return lv


@dataclass
class LogFilter:
    """Which log lines a query looks at; every field narrows (AND).

    Attributes:
        since_ns: lower time bound, ns since the epoch (inclusive); 0 for none.
        until_ns: upper time bound (exclusive), or ``None``.
        since_text: how the user wrote the window (``"15m"``), for the summary line.
        until_text: same for ``until_ns``.
        services: service names (any of), or empty for all.
        min_level: lowest level included (``"warn"`` includes error and fatal), or ``None``.
        grep: case-insensitive substring of the body, or ``None``.
        regex: RE2 regular expression searched in the body, or ``None``.
        attrs: ``(key, value)`` pairs each of which must equal the attribute (or resource attribute).
        trace_id: lower-case hex trace id or a prefix of one, or ``None``.
        grep_word: how the word index narrows ``grep`` (from :func:`legible.store.pick_word`, set by
            :meth:`with_index`), or ``None`` to scan; not part of the filter's meaning.

    """

    since_ns: int = 0
    until_ns: int | None = None
    since_text: str = DEFAULT_SINCE
    until_text: str | None = None
    services: list[str] = field(default_factory=list)
    min_level: str | None = None
    grep: str | None = None
    regex: str | None = None
    attrs: list[tuple[str, str]] = field(default_factory=list)
    trace_id: str | None = None
    grep_word: WordPlan | None = field(default=None, compare=False)

    def with_index(self, store: Store) -> LogFilter:
        """Return this filter with :attr:`grep_word` chosen on ``store`` (one small query), or itself unchanged.

        Raises:
            NotRunning: there is no store yet.

        """
        if not self.grep or self.grep_word is not None:
            return self
        from dataclasses import replace

        from legible.store import pick_word

        word = pick_word(lambda sql, params: store.query(sql, params).rows, self.grep)
        return self if word is None else replace(self, grep_word=word)

    def where(self, *, with_time: bool = True) -> tuple[str, list[Any]]:
        """Return ``(sql, params)``: the ``WHERE`` condition (no keyword) and its positional parameters."""
        conds: list[str] = []
        params: list[Any] = []
        if with_time and self.since_ns:
            conds.append("time_ns >= ?")
            params.append(self.since_ns)
        if with_time and self.until_ns is not None:
            conds.append("time_ns < ?")
            params.append(self.until_ns)
        if self.services:
            conds.append(f"service IN ({', '.join('?' * len(self.services))})")
            params.extend(self.services)
        if self.min_level:
            lv = LEVELS[LEVELS.index(self.min_level) :]
            conds.append(f"level IN ({', '.join('?' * len(lv))})")
            params.extend(lv)
        if self.grep:
            from legible.store import search_contains

            cond, cond_params = search_contains(self.grep, self.grep_word)
            conds.append(cond)
            params.extend(cond_params)
        if self.regex:
            from legible.store import search_regex

            cond, cond_params = search_regex(self.regex)
            conds.append(cond)
            params.extend(cond_params)
        for key, value in self.attrs:
            path = '$."' + key.replace('"', '\\"') + '"'
            conds.append("coalesce(json_extract_string(attributes, ?), json_extract_string(resource, ?)) = ?")
            params.extend([path, path, value])
        if self.trace_id:
            if len(self.trace_id) == 32:
                conds.append("trace_id = ?")
            else:
                conds.append("starts_with(trace_id, ?)")
            params.append(self.trace_id)
        return (" AND ".join(conds) or "TRUE"), params

    def describe(self, *, with_time: bool = True) -> str:
        """The window and filters in a few words: ``in last 15m, level>=warn, service=app``."""
        if not with_time:
            parts = ["new lines"]
        elif self.until_text:
            parts = [f"between {self.since_text} and {self.until_text}"]
        elif not self.since_ns:
            parts = ["in the whole store"]
        elif re.fullmatch(r"[\d.]+[a-zµ]*", self.since_text.strip()):
            parts = [f"in last {self.since_text.strip()}"]
        else:
            parts = [f"since {self.since_text}"]
        if self.min_level:
            parts.append(f"level>={self.min_level}")
        if self.services:
            parts.append("service=" + ",".join(self.services))
        if self.grep:
            parts.append(f"grep {self.grep!r}")
        if self.regex:
            parts.append(f"regex {self.regex!r}")
        parts.extend(f"{k}={v}" for k, v in self.attrs)
        if self.trace_id:
            parts.append(f"trace {self.trace_id}")
        return ", ".join(parts)

    def to_json(self) -> LogFilterDoc:
        """The filter as JSON (times ISO 8601)."""
        return {
            "since": iso(self.since_ns) if self.since_ns else None,
            "until": iso(self.until_ns),
            "services": self.services,
            "min_level": self.min_level,
            "grep": self.grep,
            "regex": self.regex,
            "attrs": dict(self.attrs),
            "trace_id": self.trace_id,
        }


def make_filter(
    since: str | None = DEFAULT_SINCE,
    until: str | None = None,
    service: Sequence[str] = (),
    level: str | None = None,
    grep: str | None = None,
    regex: str | None = None,
    attr: Sequence[str] = (),
    trace_id: str | None = None,
    now: int | None = None,
) -> LogFilter:
    """Parse and check the user's filter options (the ``legible logs`` flags) into a :class:`LogFilter`.

    Args:
        since: window start: a duration back from now (``5m``), a clock time, ISO 8601 or ``all``.
        until: window end, same forms, or ``None`` for now.
        service: service names; each item may be comma-separated.
        level: lowest level to include (``warn`` includes ``error`` and ``fatal``); aliases like
            ``warning``/``err`` are accepted.
        grep: case-insensitive substring.
        regex: regular expression (RE2 syntax, checked here with Python's ``re`` for a clear error).
        attr: ``key=value`` strings.
        trace_id: hex trace id or a prefix of one (any case).
        now: the current time in ns (default: the clock).

    Raises:
        UsageError: any option is malformed (bad duration or time, unknown level, bad regex, ``attr``
            without ``=``, non-hex trace id).

    """
    now = now_ns() if now is None else now
    since = since or "all"
    flt = LogFilter(since_text=since, until_text=until)
    flt.since_ns = parse_time(since, now, what="--since")
    if until:
        flt.until_ns = parse_time(until, now, what="--until")
    flt.services = [s.strip() for item in service for s in item.split(",") if s.strip()]
    flt.min_level = _level(level) if level else None
    flt.grep = grep or None
    if regex:
        try:
            re.compile(regex)
        except re.error as e:
            raise UsageError(f"--regex: {regex!r} is not a regular expression: {e}", hint="RE2 syntax") from None
        flt.regex = regex
    for item in attr:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--attr: {item!r} is not key=value", hint="e.g. --attr http.route=/error")
        flt.attrs.append((key.strip(), value))
    if trace_id:
        tid = trace_id.strip().lower()
        if not _HEX_RE.fullmatch(tid):
            raise UsageError(f"--trace-id: {trace_id!r} is not a hex trace id", hint="32 hex digits, or a prefix")
        flt.trace_id = tid
    return flt


def headline(body: str) -> tuple[str, str | None]:
    """Return ``(headline, location)`` of a log body.

    The headline is the first line, or for a Python traceback its last line (``ValueError: boom``); the
    location is the innermost ``File "...", line N, in f`` of a traceback, else ``None``.
    """
    lines = [ln for ln in body.rstrip().splitlines() if ln.strip()]
    if not lines:
        return "", None
    if len(lines) > 1 and any(ln.startswith("Traceback (most recent call last)") for ln in lines):
        frames = [ln.strip() for ln in lines if ln.lstrip().startswith('File "')]
        last = lines[-1].strip()
        first = lines[0].strip()
        head = last if first.startswith("Traceback") else f"{first} … {last}"
        return head, frames[-1] if frames else None
    return lines[0].strip(), None


def compact_location(frame: str) -> str:
    """``File "/app/pay.py", line 12, in charge`` -> ``/app/pay.py:12 in charge`` (other text unchanged)."""
    m = re.match(r'File "([^"]+)", line (\d+)(?:, in (.+))?', frame.strip())
    if not m:
        return one_line(frame, 150)
    return f"{m.group(1)}:{m.group(2)}" + (f" in {m.group(3)}" if m.group(3) else "")


# ----------------------------------------------------------------------------------------------- groups


@dataclass
class LogGroup:
    """Lines of one service and level with the same template.

    Attributes:
        level: the level.
        service: the service.
        template: the folded headline shared by the lines.
        count: number of lines.
        first_ns: time of the first line (ns since the epoch).
        last_ns: time of the newest line.
        example: the newest line's full body.
        trace_id: trace id of the newest line that has one, or ``None``.

    """

    level: str
    service: str
    template: str
    count: int
    first_ns: int
    last_ns: int
    example: str
    trace_id: str | None

    def to_json(self) -> LogGroupDoc:
        """The group as JSON (times ISO 8601)."""
        return {
            "level": self.level,
            "service": self.service,
            "count": self.count,
            "template": self.template,
            "first": iso(self.first_ns),
            "last": iso(self.last_ns),
            "example": self.example,
            "trace_id": self.trace_id,
        }


@dataclass
class LogGroups:
    """The grouped view: totals over the window and the top groups.

    Attributes:
        filter: the filter used.
        now_ns: when the query ran.
        total: lines matching.
        total_groups: groups matching (``len(groups)`` or more).
        by_level: ``{level: (lines, groups)}``.
        services: services seen, most lines first.
        groups: the groups shown, errors first, then warnings, then by count.
        newest_outside_ns: when nothing matched in the window: the newest matching line outside it.
        total_outside: when nothing matched in the window: matching lines outside it.
        missing: when nothing matched and the running app sent no OTLP log records since it became ready:
            one line saying so and why (:func:`legible.queries.source.missing_telemetry`), else ``""``.

    """

    filter: LogFilter
    now_ns: int
    total: int
    total_groups: int
    by_level: dict[str, tuple[int, int]]
    services: list[str]
    groups: list[LogGroup]
    newest_outside_ns: int | None = None
    total_outside: int = 0
    missing: str = ""

    def to_json(self) -> LogsGroupsDoc:
        """The ``legible.logs/v1`` document of the grouped view."""
        return {
            "schema": "legible.logs/v1",
            "view": "groups",
            "filter": self.filter.to_json(),
            "total": self.total,
            "total_groups": self.total_groups,
            "shown": len(self.groups),
            "by_level": {k: {"lines": v[0], "groups": v[1]} for k, v in self.by_level.items()},
            "services": self.services,
            "groups": [g.to_json() for g in self.groups],
            "missing": self.missing,
            "warnings": [],
        }


def _top_and_totals(source: str, known: str, unknown: str, limit: int) -> str:
    """The end of both grouping statements, over the CTE ``source`` (one row per group).

    ``source`` has ``level, service, template, n, first_ns, last_ns, ex_seq, trace_id``; ``known`` is the
    condition of its rows that are groups, ``unknown`` the per-row count of lines whose group is not known
    (summed into the ``n`` row). Renders the ``top`` CTE and the ``g``/``s``/``n`` rows :func:`log_groups` reads.
    """
    return f"""top AS (SELECT *, {_RANK} AS rank FROM {source} WHERE {known}
        ORDER BY rank, n DESC, last_ns DESC, level, service, template LIMIT {int(max(limit, 0))})
(SELECT 'g' AS kind, top.level, top.service, top.template, top.n, top.first_ns, top.last_ns, top.ex_seq,
        top.trace_id, top.rank, ex.body
 FROM top LEFT JOIN logs AS ex ON ex.seq = top.ex_seq)
UNION ALL
(SELECT 's', level, service, NULL, sum(n)::BIGINT, min(first_ns), max(last_ns), count(*), NULL, NULL, NULL
 FROM {source} WHERE {known} GROUP BY level, service)
UNION ALL
(SELECT 'n', NULL, NULL, NULL, coalesce(sum({unknown}), 0)::BIGINT, NULL, NULL, NULL, NULL, NULL, NULL
 FROM {source})
"""  # noqa: S608 - fixed SQL fragments; values are bound parameters


def _groups_sql(template: str, where: str, limit: int) -> str:
    """Return pass 1 of :func:`log_groups` as one statement.

    Its rows: the top ``limit`` groups (kind ``g``) with the body of their newest line (found by ``seq``,
    unique per table: a join on a few values, so only those rows' bodies are read), totals per level and
    service (``s``), and the count of lines without a stored template (``n``). DuckDB's ``arg_max`` skips rows
    whose first argument is ``NULL`` (``arg_max_null`` does not), so a group's ``trace_id`` is that of its
    newest line with one, without a ``FILTER`` evaluated per row (tests/test_query_ties.py checks it).
    """
    return f"""
WITH g AS MATERIALIZED (
  SELECT level, service, {template} AS template, count(*) AS n, min(time_ns) AS first_ns,
         max(time_ns) AS last_ns, arg_max(seq, time_ns) AS ex_seq,
         arg_max(trace_id, time_ns) AS trace_id, count(*) - count(template) AS untemplated
  FROM logs WHERE {where} GROUP BY 1, 2, 3),
{_top_and_totals("g", "true", "untemplated", limit)}"""  # noqa: S608 - fixed SQL fragments; values are bound parameters


def _groups_by_id_sql(where: str, limit: int) -> str:
    """Return the fast form of :func:`_groups_sql`: the lines grouped on ``logs.group_id``, not on three strings.

    Same rows as ``_groups_sql("template", where, limit)`` (``tests/test_queries_logs_group_id.py`` compares them
    over random rows and every filter), as long as every matching line has a ``group_id`` that ``log_groups``
    holds: the aggregate runs on the integer (a perfect hash aggregate, about half the time of one on
    ``(level, service, template)`` over a million lines), and only the groups found are joined to their strings,
    which order the top ``limit`` exactly as before. The ``n`` row counts the matching lines whose group is not
    known that way (``group_id`` ``NULL``, e.g. rows another writer stored, or an id missing from the dictionary);
    when it is not zero the caller must ask :func:`_groups_sql` instead.
    """
    return f"""
WITH g AS MATERIALIZED (
  SELECT group_id, count(*) AS n, min(time_ns) AS first_ns, max(time_ns) AS last_ns,
         arg_max(seq, time_ns) AS ex_seq, arg_max(trace_id, time_ns) AS trace_id
  FROM logs WHERE {where} GROUP BY group_id),
k AS MATERIALIZED (
  SELECT d.level, d.service, d.template, g.n, g.first_ns, g.last_ns, g.ex_seq, g.trace_id
  FROM g LEFT JOIN log_groups AS d ON d.id = g.group_id),
{_top_and_totals("k", "level IS NOT NULL", "CASE WHEN level IS NULL THEN n ELSE 0 END", limit)}"""  # noqa: S608


def log_groups(store: Store, flt: LogFilter, limit: int = 30, now: int | None = None) -> LogGroups:
    """Group the matching lines by ``(level, service, template)`` in DuckDB (one scan, then the examples).

    Args:
        store: the worktree's store.
        flt: the filter.
        limit: most groups returned (errors first, then warnings, then by count, then newest).
        now: the current time in ns (default: the clock), for relative times.

    Returns:
        A :class:`LogGroups`.

    Raises:
        UsageError: DuckDB rejected the filter (e.g. a regex RE2 does not accept).
        NotRunning: there is no store yet.

    """
    now = now_ns() if now is None else now
    flt = flt.with_index(store)
    where, params = flt.where()
    # One statement, one round trip: the grouping reads only narrow columns (the newest line of a group is
    # found by seq, not body: 3x faster on a million lines), then the few example bodies are joined in by
    # seq. The collector fills logs.group_id (and logs.template); if some matching rows lack the id, the
    # statement is redone on the strings, and if some lack the template, with the (slower) expression over body.
    rows = store.query(_groups_by_id_sql(where, limit), params).rows
    if any(r[0] == "n" and r[4] for r in rows):
        rows = store.query(_groups_sql("template", where, limit), params).rows
    if any(r[0] == "g" and r[3] is None for r in rows) or any(r[0] == "n" and r[4] for r in rows):
        from legible.store import template_sql

        rows = store.query(_groups_sql(f"coalesce(template, {template_sql()})", where, limit), params).rows
    found: list[tuple[Any, ...]] = []
    by_level: dict[str, list[int]] = {}
    per_service: dict[str, int] = {}
    bodies: dict[int, str] = {}
    for kind, level, service, template, n, first_ns, last_ns, ex_seq, tid, _rank, body in rows:
        if kind == "n":
            continue
        if kind == "g":
            found.append((level, service, template or "", int(n), int(first_ns), int(last_ns), int(ex_seq), tid))
            if body is not None:
                bodies[int(ex_seq)] = body
        else:
            acc = by_level.setdefault(level, [0, 0])
            acc[0] += int(n)
            acc[1] += int(ex_seq)
            per_service[service] = per_service.get(service, 0) + int(n)
    groups = [LogGroup(lv, sv, tp, n, f, la, bodies.get(seq, ""), tid) for lv, sv, tp, n, f, la, seq, tid in found]
    groups.sort(  # the statement's order; ties broken by level, service, template, so every run shows the same
        key=lambda g: (
            0 if g.level in ("error", "fatal") else 1 if g.level == "warn" else 2,
            -g.count,
            -g.last_ns,
            g.level,
            g.service,
            g.template,
        )
    )
    ordered = {lv: (by_level[lv][0], by_level[lv][1]) for lv in reversed(LEVELS) if lv in by_level}
    res = LogGroups(
        flt,
        now,
        sum(v[0] for v in ordered.values()),
        sum(v[1] for v in ordered.values()),
        ordered,
        sorted(per_service, key=lambda s: (-per_service[s], s)),  # equal counts: by name, the same every run
        groups,
    )
    if res.total == 0 and (flt.since_ns or flt.until_ns is not None):
        w, p = flt.where(with_time=False)
        n, newest = store.query(f"SELECT count(*), max(time_ns) FROM logs WHERE {w}", p).rows[0]  # noqa: S608 - fixed SQL fragments; values are bound parameters
        res.total_outside, res.newest_outside_ns = int(n or 0), newest
    if res.total == 0:
        from legible.queries.source import missing_telemetry

        res.missing = missing_telemetry(store, "logs")
    return res


def _since_hint(newest_ns: int, now: int) -> str:
    age = (now - newest_ns) / 1e9
    for unit, secs in (("m", 60), ("h", 3600), ("d", 86400)):
        if age * 1.2 < secs * 60 or unit == "d":
            return f"--since {max(1, int(age * 1.2 / secs) + 1)}{unit}"
    return "--since all"


def render_groups(res: LogGroups, limit: int | None = None) -> list[str]:
    """Render the grouped view as text lines: summary, one line per group, and a cut line if cut.

    Args:
        res: the query result.
        limit: the ``--limit`` the user gave (to suggest a bigger one), default ``len(res.groups)``.

    Returns:
        At most ``3 + len(res.groups) + MAX_DETAIL_LINES`` lines, no trailing newlines.

    """
    flt, now = res.filter, res.now_ns
    if res.total == 0:
        out = [f"0 lines {flt.describe()}"]
        if res.newest_outside_ns is not None:
            out.append(
                f"{fmt_count(res.total_outside)} matching lines outside the window, newest "
                f"{fmt_ago(res.newest_outside_ns, now)}: try {_since_hint(res.newest_outside_ns, now)}"
            )
        if res.missing:
            out.append(res.missing)
        return out
    counts = [
        f"{res.by_level[lv][1]} {lv} group{'s' if res.by_level[lv][1] != 1 else ''}"
        for lv in ("fatal", "error", "warn")
        if lv in res.by_level
    ]
    services = ", ".join(res.services[:6]) + (f" +{len(res.services) - 6}" if len(res.services) > 6 else "")
    head = f"{fmt_count(res.total)} lines {flt.describe()} from {services}: "
    head += (", ".join(counts) + "; ") if counts else ""
    head += f"{len(res.groups)} of {fmt_count(res.total_groups)} groups shown, errors first"
    rows: list[list[str]] = []
    details = 0
    for g in res.groups:
        text, location = headline(g.example)
        seen = (
            fmt_ago(g.last_ns, now)
            if g.count == 1
            else f"{fmt_ago(g.first_ns, now).removesuffix(' ago')}..{fmt_ago(g.last_ns, now)}"
        )
        msg = one_line(text, 160)
        if g.trace_id:
            msg += f"  trace={g.trace_id}"
        rows.append([f"{g.count:,}", g.level, g.service, seen, msg])
        if location and details < MAX_DETAIL_LINES and g.level in ("error", "fatal", "warn"):
            rows.append(["", "", "", "", "  at " + compact_location(location)])
            details += 1
    out = [head, *align([["N", "LEVEL", "SERVICE", "SEEN", "MESSAGE"], *rows])]
    hidden = res.total_groups - len(res.groups)
    if hidden > 0:
        more = max(len(res.groups) * 2, 60)
        out.append(cut_line(hidden, "groups", f"--limit {more}, --level warn, --grep TEXT or --raw"))
    return out


# ------------------------------------------------------------------------------------------------- raw


@dataclass
class LogLines:
    """The raw view: the newest matching lines, oldest first.

    Attributes:
        filter: the filter used.
        fields: the field names, in order.
        rows: one dict per line (``{field: value}``; ``ts``/``time`` as ns), oldest first.
        total: lines matching (``len(rows)`` when nothing was cut).
        last_seq: the highest ``seq`` seen (to follow from), or ``-1``.

    """

    filter: LogFilter
    fields: list[str]
    rows: list[dict[str, Any]]
    total: int
    last_seq: int = -1

    def to_json(self) -> LogsRawDoc:
        """The ``legible.logs/v1`` document of the raw view."""
        return {
            "schema": "legible.logs/v1",
            "view": "raw",
            "filter": self.filter.to_json(),
            "total": self.total,
            "shown": len(self.rows),
            "fields": self.fields,
            "lines": [_json_row(r) for r in self.rows],
            "warnings": [],
        }


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso(v) if k in ("ts", "time") else v) for k, v in row.items() if k != "_seq"}


def parse_fields(text: str | None) -> list[str]:
    """Parse ``--fields ts,level,service,body`` (``attr.KEY`` for one attribute).

    Raises:
        UsageError: an unknown field name.

    """
    if not text:
        return list(DEFAULT_FIELDS)
    names = [f.strip() for f in text.split(",") if f.strip()]
    for name in names:
        if name not in FIELDS and not (name.startswith("attr.") and len(name) > 5):
            raise UsageError(f"--fields: unknown field {name!r}", hint=f"one of {', '.join(FIELDS)}, attr.KEY")
    return names or list(DEFAULT_FIELDS)


def _select_list(fields: Sequence[str]) -> tuple[list[str], list[Any]]:
    """Return the SQL expressions of ``fields`` (see :data:`FIELDS`) and their parameters, in order."""
    exprs, params = [], []
    for f in fields:
        if f.startswith("attr."):
            exprs.append("coalesce(json_extract_string(attributes, ?), json_extract_string(resource, ?))")
            path = '$."' + f[5:].replace('"', '\\"') + '"'
            params.extend([path, path])
        else:
            exprs.append(FIELDS[f])
    return exprs, params


def _select(fields: Sequence[str]) -> tuple[str, list[Any]]:
    exprs, params = _select_list(fields)
    return ", ".join(exprs), params


def log_lines(store: Store, flt: LogFilter, limit: int = 40, fields: Sequence[str] = DEFAULT_FIELDS) -> LogLines:
    """Return the newest ``limit`` matching lines (oldest first) and how many matched in all.

    Raises:
        UsageError: DuckDB rejected the filter.
        NotRunning: there is no store yet.

    """
    flt = flt.with_index(store)
    where, params = flt.where()
    exprs, sel_params = _select_list(fields)
    rows = store.query(_lines_sql(where, exprs, limit), [*params, *sel_params, *params]).rows
    total, last_seq = int(rows[0][-2]), rows[0][-1]
    lines = [r[:-2] for r in rows if r[0] is not None]
    dicts = [dict(zip(["_seq", *fields], r, strict=True)) for r in reversed(lines)]
    return LogLines(flt, list(fields), dicts, total, -1 if last_seq is None else int(last_seq))


def _lines_sql(where: str, exprs: Sequence[str], limit: int) -> str:
    """Return the statement of :func:`log_lines`; its parameters are ``[*where, *exprs, *where]``.

    One round trip: the count and highest ``seq`` of the matching lines (one row, always there), joined with
    the newest ``limit`` of them, newest first (none: one row of ``NULL`` lines). Each row ends with the count
    and the highest ``seq``.
    """
    sel = ", ".join(f"{e} AS _f{i}" for i, e in enumerate(exprs))
    out = ", ".join(f"l._f{i}" for i in range(len(exprs)))
    return f"""
WITH c AS (SELECT count(*) AS _n, max(seq) AS _mx FROM logs WHERE {where}),
l AS (SELECT seq AS _seq, {sel}, time_ns AS _t FROM logs WHERE {where}
      ORDER BY time_ns DESC, seq DESC LIMIT {int(max(limit, 0))})
SELECT l._seq, {out}, c._n, c._mx FROM c LEFT JOIN l ON TRUE ORDER BY l._t DESC, l._seq DESC
"""  # noqa: S608 - fixed SQL fragments; values are bound parameters


def format_line(row: dict[str, Any], fields: Sequence[str], body_lines: int = RAW_BODY_LINES) -> list[str]:
    """Render one log line (a row of :func:`log_lines`) as text; a multi-line body continues indented."""
    parts: list[str] = []
    body: list[str] = []
    for f in fields:
        v = row.get(f)
        if f == "ts":
            parts.append(fmt_clock(v, ms=True) if v is not None else "-")
        elif f == "time":
            parts.append(iso(v) or "-")
        elif f == "body":
            lines = str(v or "").rstrip().splitlines() or [""]
            parts.append(lines[0])
            body = lines[1:]
        else:
            parts.append("-" if v is None else str(v))
    out = [" ".join(parts)]
    if body:
        out.extend("  " + ln for ln in body[:body_lines])
        if len(body) > body_lines:
            out.append(f"  … {len(body) - body_lines} more lines of this record (--json shows all)")
    return out


def render_lines(res: LogLines, limit: int | None = None) -> list[str]:
    """Render the raw view: a summary line, the lines (newest last, multi-line bodies indented), a cut line.

    Whole records are dropped from the oldest end until the lines fit in ``limit`` (default: the number of
    records), so a few long tracebacks cannot flood the output.
    """
    budget = max(limit if limit is not None else len(res.rows), 1)
    blocks = [format_line(r, res.fields) for r in res.rows]
    kept: list[list[str]] = []
    used = 0
    for block in reversed(blocks):
        if kept and used + len(block) > budget:
            break
        kept.append(block)
        used += len(block)
    kept.reverse()
    shown = len(kept)
    head = f"{fmt_count(res.total)} lines {res.filter.describe()}; newest {shown} shown, newest last"
    out = [head, *(ln for block in kept for ln in block)]
    hidden = res.total - shown
    if hidden > 0:
        out.append(
            cut_line(
                hidden,
                "earlier lines",
                f"--limit {max(2 * budget, 100)}, narrow with --since/--grep/--level, or --json",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- follow


def follow(
    opener: Callable[[], Store],
    flt: LogFilter,
    after_seq: int,
    fields: Sequence[str] = DEFAULT_FIELDS,
    poll_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    batch: int = 1000,
) -> Iterator[list[dict[str, Any]]]:
    """Poll the store for lines after ``seq`` ``after_seq`` that match ``flt`` (time bounds ignored).

    The store is reopened on every poll (and its file connection closed), so the collector can take the
    file when the stack comes up, and the query moves to it; a poll that finds the file locked by a
    collector that does not answer yet yields nothing. Stop by closing the generator (or Ctrl-C).

    Args:
        opener: returns the store (see :func:`legible.queries.store_opener`).
        flt: the filter; ``since``/``until`` do not apply to new lines.
        after_seq: the last ``seq`` already shown.
        fields: as for :func:`log_lines`.
        poll_s: seconds between polls when nothing new arrived.
        sleep: the sleep function (a seam for tests).
        batch: most lines per poll.

    Yields:
        Lists of row dicts (as in :attr:`LogLines.rows`), oldest first; an empty list after a poll that
        found nothing, so the caller may stop.

    """
    where, params = flt.where(with_time=False)
    sel, sel_params = _select(fields)
    sql = f"SELECT seq, {sel} FROM logs WHERE seq > ? AND {where} ORDER BY seq LIMIT {int(batch)}"  # noqa: S608 - fixed SQL fragments; values are bound parameters
    last = after_seq
    while True:
        store = opener()
        try:
            rows = store.query(sql, [*sel_params, last, *params]).rows
        except NotRunning:
            rows = []  # the file is locked by a collector that is starting: ask again on the next poll
        finally:
            store.close()
        if rows:
            last = int(rows[-1][0])
        yield [dict(zip(["_seq", *fields], r, strict=True)) for r in rows]
        if len(rows) < batch:
            sleep(poll_s)


# ------------------------------------------------------------------------------------------------ view


def logs_view(
    flt: LogFilter,
    *,
    raw: bool = False,
    fields: str | None = None,
    limit: int | None = None,
    sql: str | None = None,
    opener: Callable[[], Store] | None = None,
) -> View:
    """What ``legible logs`` shows: groups of similar lines, ``raw`` lines, or the rows of one ``sql`` SELECT.

    Args:
        flt: the filter (:func:`make_filter`); not used with ``sql``.
        raw: plain lines, newest last, instead of groups.
        fields: raw columns, comma-separated (:func:`parse_fields`), or ``None`` for the default.
        limit: groups (default 30), raw lines (40) or SQL rows (40) shown.
        sql: one read-only SELECT over the store's tables, instead of the views above.
        opener: returns the store (default: :func:`legible.queries.store_opener` of the current directory).

    Returns:
        The ``legible.logs/v1`` (or ``legible.sql/v1``) document and the text lines.

    Raises:
        UsageError: a bad option value, or DuckDB rejected the query.
        NotRunning: there is no store yet.

    """
    from legible.queries.source import store_opener

    field_list = parse_fields(fields)
    n = parse_limit(limit, 30 if not (raw or sql) else 40)
    store = (opener or store_opener())()
    if sql:
        from legible.queries.sql import render_sql, run_sql, sql_json

        res = run_sql(store, sql)
        return View(sql_json(res, "legible.sql/v1"), render_sql(res, n))
    if raw:
        lines = log_lines(store, flt, n, field_list)
        return View(lines.to_json(), render_lines(lines, n))
    groups = log_groups(store, flt, n)
    return View(groups.to_json(), render_groups(groups, n))


def follow_lines(
    flt: LogFilter,
    *,
    fields: str | None = None,
    limit: int | None = None,
    opener: Callable[[], Store] | None = None,
    poll_s: float = 0.5,
) -> Iterator[list[str]]:
    """What ``legible logs --follow`` prints: a header and the last ``limit`` lines, then new lines as they come.

    Args:
        flt: the filter (time bounds apply to the first lines only).
        fields: raw columns, as for :func:`logs_view`.
        limit: lines shown first (default 10).
        opener: returns the store (default: the current directory's).
        poll_s: seconds between polls when nothing new arrived.

    Yields:
        Lists of text lines (empty after a poll that found nothing); stop by closing the generator.

    Raises:
        UsageError: a bad option value.
        NotRunning: there is no store yet.

    """
    from legible.queries.source import store_opener

    opener = opener or store_opener()
    field_list = parse_fields(fields)
    n = parse_limit(limit, 10)
    store = opener()
    first = log_lines(store, flt, n, field_list)
    store.close()
    yield [
        f"following {flt.describe(with_time=False)}; last {len(first.rows)} shown; Ctrl-C stops",
        *(ln for r in first.rows for ln in format_line(r, field_list)),
    ]
    for batch in follow(opener, flt, first.last_seq, field_list, poll_s=poll_s):
        yield [ln for r in batch for ln in format_line(r, field_list)]
