"""Checks: assertions over the stack's signals with a budget, each giving a verdict, a figure and evidence.

Checks are declared in ``legible.toml`` (``[checks.<name>]``, see :class:`legible.config.CheckConfig`) or
given ad hoc (:func:`parse_adhoc`). :func:`run_checks` evaluates them against the worktree's state,
store (logs, spans) and VictoriaMetrics, and returns the ``legible.check/v1`` document whose JSON Schema
ships as ``legible/schemas/check.v1.json``.

A check ends as ``pass``, ``fail`` (the figure broke its budget) or ``error`` (it could not be measured:
no stack, no data, a bad query). Both ``fail`` and ``error`` fail the run (exit 1): a check that
cannot see what it guards must not pass. Every result names the command that shows its evidence.

A check that reads the store (:data:`FROM_STORE`) cannot pass while the running stack's collector is not
ready (failed, restarting): the lines and spans it has not stored could break the budget. Such a pass becomes
``error`` and says why (:func:`legible.deploys.collector_note`); a ``fail`` stays a fail, as more rows can only
break a "no more than" budget further.
"""

from __future__ import annotations

import math
import operator
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Final, cast

from legible._config_file import CHECK_KINDS, LEVELS
from legible._duration import format_ms, parse_duration
from legible._errors import LegibleError, UsageError
from legible.worktree import Worktree

if TYPE_CHECKING:  # legible.config imports pydantic: only parse_adhoc's slow path and a config read pay for it
    from legible.config import CheckConfig, LegibleConfig, LogsCheck, PromqlCheck, SpanCheck, StartupCheck
    from legible.contract import CheckDoc, CheckResultDoc, StackState

CHECK_SCHEMA: Final = "legible.check/v1"
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
#: A journey's root span is named ``journey <name>`` (see legible.browser).
JOURNEY_SPAN_PREFIX = "journey "


@dataclass
class CheckResult:
    """The verdict of one check.

    Attributes:
        name: the check's name (``[checks.<name>]``, or ``<kind>-<n>`` for ad-hoc checks).
        kind: ``startup`` | ``span`` | ``promql`` | ``logs`` | ``journey`` | ``browser`` | ``db``.
        status: ``pass`` | ``fail`` | ``error``.
        measured: the figure measured (unit in ``unit``), or ``None`` when it could not be measured.
        budget: the figure it is held to, or ``None``.
        unit: ``ms``, ``lines`` or ``""`` (a PromQL value).
        summary: one line: what was measured against what.
        evidence: a command that shows the evidence (``legible trace <id>``), or ``""``.
        took_ms: how long evaluating it took, in ms.
        details: kind-specific extras (trace id, span name, series, ...).
    """

    name: str
    kind: str
    status: str
    measured: float | None
    budget: float | None
    unit: str
    summary: str
    evidence: str = ""
    took_ms: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when the status is ``pass``."""
        return self.status == "pass"


@dataclass
class CheckContext:
    """Where checks read from; built once per run by :func:`context_for`.

    Attributes:
        worktree: the worktree.
        config: its configuration.
        state: ``state.json`` with ``alive`` (see :func:`legible.contract.read_state`), or ``None``.
        run_journey: runs a journey by name and returns ``{"passed", "duration_ms", "failed_step", "trace_id",
            "error"}``; ``None`` when the browser is not available.
        check_pages: opens pages and returns ``{"console_errors": [...], "failed_requests": [...]}``, or ``None``.
        now_ns: the clock the ``since`` windows end at (nanoseconds since the epoch); a proof bundle's end
            time for ``legible check --from``.
        window: ``(since_ns, until_ns | None, label)`` replacing the ``since`` of span and logs checks
            (``legible check --since deploy``), or ``None``.
        browser_hooks: returns ``(run_journey, check_pages)``; called by :func:`run_checks` only when a
            journey or browser check is selected and both are ``None`` (so the other kinds never import
            :mod:`legible.browser`), or ``None``.
    """

    worktree: Worktree
    config: LegibleConfig
    state: StackState | None
    run_journey: Callable[[str], dict[str, Any]] | None = None
    check_pages: Callable[[list[str]], dict[str, Any]] | None = None
    now_ns: Callable[[], int] = time.time_ns
    window: tuple[int, int | None, str] | None = None
    browser_hooks: Callable[[], tuple[Any, Any]] | None = None
    _store: Any = None
    _flushed: bool = False

    @property
    def alive(self) -> bool:
        """True while the stack runs."""
        return bool(self.state and self.state["alive"])

    def unrecorded(self) -> tuple[str, str] | None:
        """Why the running stack's collector may be missing logs and spans (it is not ready), and what to run.

        See :func:`legible.deploys.collector_note`; ``None`` when the collector is ready, or when the stack is
        not running (the kept file is then all there is, and nothing is being missed).
        """
        if not self.alive or not self.state:
            return None
        from legible.deploys import collector_note

        return collector_note(self.state)

    def store(self) -> Any:
        """The worktree's :class:`legible.store.Store` (through the collector while it runs)."""
        if self._store is None:
            from legible.store import open_store

            url = self.state["endpoints"].get("otlp-http") if self.alive and self.state else None
            self._store = open_store(self.worktree.state_dir, collector_url=url)
        return self._store

    def vm_url(self) -> str:
        """VictoriaMetrics' URL.

        Raises:
            NotRunning: the stack is not running.
        """
        from legible._errors import NotRunning

        if not self.alive or not self.state:
            raise NotRunning("promql checks need a running stack", hint="run `legible up --wait` first")
        if not self._flushed and self.state["endpoints"].get("otlp-http"):
            from legible.queries.source import flush_collector
            from legible.store import read_token

            self._flushed = flush_collector(self.state["endpoints"]["otlp-http"], read_token(self.worktree.state_dir))
        return str(self.state["endpoints"]["victoria-metrics"])


def duration_ms(text: str) -> float:
    """``"800ms"`` -> ``800.0``; ``"2s"`` -> ``2000.0``; ``"1h30m"`` -> ``5400000.0`` (validated by the config)."""
    return parse_duration(text, bare=None) * 1000


def _fmt_num(x: float) -> str:
    return f"{x:.4g}"


# -- the kinds ----------------------------------------------------------------------------------------
def check_startup(name: str, spec: StartupCheck, ctx: CheckContext) -> CheckResult:
    """Compare the service's first time to ready (from ``state.json``) with ``spec.max``."""
    budget = duration_ms(spec.max)
    svc = ctx.state["services"].get(spec.service) if ctx.state else None
    if svc is None:
        why = "no stack has run here" if ctx.state is None else f"no service {spec.service!r} in the stack"
        return CheckResult(name, "startup", "error", None, budget, "ms", why, "legible up --wait")
    measured = svc["first_ready_ms"] or svc["ready_ms"]
    if measured is None:
        return CheckResult(
            name, "startup", "error", None, budget, "ms", f"{spec.service} was never ready", "legible status"
        )
    ok = measured <= budget
    cmp = "<=" if ok else ">"
    deploy: dict[str, Any] = (ctx.state.get("deploy") if ctx.state else None) or {}
    of = f" (deploy {deploy['number']})" if deploy.get("number") and spec.service in deploy.get("services", []) else ""
    return CheckResult(
        name,
        "startup",
        "pass" if ok else "fail",
        measured,
        budget,
        "ms",
        f"{spec.service} ready in {format_ms(measured)} {cmp} {format_ms(budget)}{of}",
        "legible status",
        details={"deploy": deploy.get("number")},
    )


def _journey_trace(ctx: CheckContext, journey: str) -> tuple[str, str] | None:
    res = ctx.store().query(
        "SELECT trace_id, service FROM spans WHERE name = ? AND parent_span_id IS NULL ORDER BY start_ns DESC LIMIT 1",
        [JOURNEY_SPAN_PREFIX + journey],
    )
    return (res.rows[0][0], res.rows[0][1]) if res.rows else None


def check_span(name: str, spec: SpanCheck, ctx: CheckContext) -> CheckResult:
    """No selected span over ``spec.max`` (or their ``percentile`` under it), from the store."""
    budget = duration_ms(spec.max)
    where: list[str] = []
    params: list[Any] = []
    scope: list[str] = []
    if spec.journey:
        found = _journey_trace(ctx, spec.journey)
        if found is None:
            return CheckResult(
                name,
                "span",
                "error",
                None,
                budget,
                "ms",
                f"journey {spec.journey} has not run yet",
                f"legible journey run {spec.journey}",
            )
        where += ["trace_id = ?", "service != ?"]
        params += [found[0], found[1]]
        scope.append(f"journey {spec.journey}")
    elif ctx.window is not None:
        where.append("start_ns >= ?")
        params.append(ctx.window[0])
        if ctx.window[1] is not None:
            where.append("start_ns < ?")
            params.append(ctx.window[1])
        scope.append(ctx.window[2])
    else:
        where.append("start_ns >= ?")
        params.append(ctx.now_ns() - int(duration_ms(spec.since) * 1e6))
        scope.append(f"last {spec.since}")
    if spec.name:
        where.append("name = ?")
        params.append(spec.name)
        scope.append(f"name {spec.name!r}")
    if spec.service:
        where.append("service = ?")
        params.append(spec.service)
        scope.append(f"service {spec.service}")
    cond = " AND ".join(where)
    store = ctx.store()
    # One statement, one round trip: one pass computes the count, the percentile and the longest duration of the
    # matching spans; a second reads the spans of that duration only (no top-N sort over all of them) for the
    # slowest span, of equally slow ones the newest, so every run names the same trace.
    pct = spec.percentile
    quantile = "quantile_cont(duration_ms, ?)" if pct is not None else "NULL"
    slowest = store.query(
        f"WITH s AS (SELECT count(*) AS n, {quantile} AS q, max(duration_ms) AS mx FROM spans WHERE {cond}) "  # noqa: S608
        f"SELECT trace_id, name, service, duration_ms, s.n, s.q FROM spans, s WHERE {cond} AND duration_ms = s.mx "
        "ORDER BY start_ns DESC, seq DESC LIMIT 1",
        [*([pct / 100] if pct is not None else []), *params, *params],
    )
    where_text = ", ".join(scope)
    if not slowest.rows:
        return CheckResult(
            name, "span", "error", None, budget, "ms", f"no span matched ({where_text})", "legible traces --since 1h"
        )
    trace_id, span_name, service, max_ms, count, percentile = slowest.rows[0]
    details = {"trace_id": trace_id, "span_name": span_name, "service": service, "spans": count, "max_ms": max_ms}
    evidence = f"legible trace {trace_id}"
    if spec.percentile is not None:
        measured = float(percentile)
        label = f"p{spec.percentile:g} of {count} spans"
    else:
        measured = float(max_ms)
        label = f"slowest of {count} spans: {span_name!r} [{service}]"
    ok = measured <= budget
    cmp = "<=" if ok else ">"
    return CheckResult(
        name,
        "span",
        "pass" if ok else "fail",
        measured,
        budget,
        "ms",
        f"{label} {format_ms(measured)} {cmp} {format_ms(budget)} ({where_text})",
        evidence,
        details=details,
    )


def check_promql(name: str, spec: PromqlCheck, ctx: CheckContext) -> CheckResult:
    """Every series of ``spec.query`` satisfies ``value <op> threshold`` (via :func:`legible.queries.metrics.query`)."""
    from legible.queries.metrics import query

    evidence = f"legible metrics '{spec.query}'"
    try:
        res = query(ctx.vm_url(), spec.query)
    except UsageError as exc:  # the server rejected the query: its message, one line
        return CheckResult(
            name, "promql", "error", None, spec.threshold, "", f"PromQL error: {exc.message[:200]}", evidence
        )
    values = [(float(s.value), s.labels) for s in res.series if s.value is not None]
    if not values:
        return CheckResult(name, "promql", "error", None, spec.threshold, "", "no data for the query", evidence)
    op = _OPS[spec.op]
    bad = [(v, m) for v, m in values if math.isnan(v) or not op(v, spec.threshold)]
    worst = bad[0] if bad else values[0]
    ok = not bad
    verdict = f"{spec.op} {_fmt_num(spec.threshold)}" if ok else f"breaks {spec.op} {_fmt_num(spec.threshold)}"
    summary = f"{len(values)} series, {'all' if ok else str(len(bad))} {verdict}; " + (
        f"e.g. {_fmt_num(worst[0])}" if ok else f"worst {_fmt_num(worst[0])} {worst[1] or ''}".rstrip()
    )
    return CheckResult(
        name,
        "promql",
        "pass" if ok else "fail",
        worst[0],
        spec.threshold,
        "",
        summary,
        evidence,
        details={"series": len(values), "violations": len(bad)},
    )


def check_logs(name: str, spec: LogsCheck, ctx: CheckContext) -> CheckResult:
    """At most ``spec.max_count`` lines at or above ``spec.level`` (matching ``pattern``) in ``since``."""
    if spec.pattern is not None:
        try:
            re.compile(spec.pattern)
        except re.error as exc:
            raise UsageError(f"check {name}: pattern is not a valid regex: {exc}") from exc
    levels = list(LEVELS[LEVELS.index(spec.level) :])
    since_ns = ctx.now_ns() - int(duration_ms(spec.since) * 1e6)
    span_text = f"the last {spec.since}"
    where = ["time_ns >= ?", f"level IN ({', '.join('?' for _ in levels)})"]
    params: list[Any] = [since_ns, *levels]
    if ctx.window is not None:
        params[0], span_text = ctx.window[0], ctx.window[2]
        if ctx.window[1] is not None:
            where.append("time_ns < ?")
            params.append(ctx.window[1])
    if spec.pattern:
        from legible.store import search_regex

        pattern_cond, pattern_params = search_regex(spec.pattern)
        where.append(pattern_cond)
        params.extend(pattern_params)
    if spec.service:
        where.append("service = ?")
        params.append(spec.service)
    cond = " AND ".join(where)
    res = ctx.store().query(
        f"SELECT count(*), arg_max(template, time_ns), arg_max(trace_id, time_ns) FROM logs WHERE {cond}",  # noqa: S608
        params,
    )
    count, example, trace_id = res.rows[0]
    ok = count <= spec.max_count
    match = f" matching /{spec.pattern}/" if spec.pattern else ""
    svc = f" from {spec.service}" if spec.service else ""
    summary = f"{count} lines at {spec.level} or above{match}{svc} in {span_text} (at most {spec.max_count})"
    if not ok and example:
        summary += f"; latest: {str(example)[:100]}"
    evidence = f"legible logs --level {spec.level} --since {spec.since}" + (
        f" --service {spec.service}" if spec.service else ""
    )
    return CheckResult(
        name,
        "logs",
        "pass" if ok else "fail",
        float(count),
        float(spec.max_count),
        "lines",
        summary,
        evidence,
        details={"trace_id": trace_id},
    )


def check_journey(name: str, spec: Any, ctx: CheckContext) -> CheckResult:
    """Run the journey; it must pass (and take at most ``spec.max``)."""
    budget = duration_ms(spec.max) if spec.max else None
    if ctx.run_journey is None:
        return CheckResult(
            name, "journey", "error", None, budget, "ms", "the browser is not available", "legible up --wait --browser"
        )
    out = ctx.run_journey(spec.name)
    took = out.get("duration_ms")
    evidence = f"legible journey run {spec.name}"
    if not out.get("passed"):
        why = out.get("error") or f"step {out.get('failed_step')} failed"
        return CheckResult(
            name, "journey", "fail", took, budget, "ms", f"journey {spec.name} failed: {why}", evidence, details=out
        )
    if budget is not None and took is not None and took > budget:
        return CheckResult(
            name,
            "journey",
            "fail",
            took,
            budget,
            "ms",
            f"journey {spec.name} passed in {format_ms(took)} > {format_ms(budget)}",
            evidence,
            details=out,
        )
    within = f" <= {format_ms(budget)}" if budget is not None else ""
    return CheckResult(
        name,
        "journey",
        "pass",
        took,
        budget,
        "ms",
        f"journey {spec.name} passed in {format_ms(took or 0)}{within}",
        evidence,
        details=out,
    )


def check_browser(name: str, spec: Any, ctx: CheckContext) -> CheckResult:
    """Open each page; count console errors and failed requests against the budgets."""
    if ctx.check_pages is None:
        return CheckResult(
            name, "browser", "error", None, None, "", "the browser is not available", "legible up --wait --browser"
        )
    out = ctx.check_pages(list(spec.pages))
    errors, failed = out.get("console_errors", []), out.get("failed_requests", [])
    ok = len(errors) <= spec.console_errors and len(failed) <= spec.failed_requests
    summary = (
        f"{len(errors)} console errors (at most {spec.console_errors}), {len(failed)} failed requests "
        f"(at most {spec.failed_requests}) on {', '.join(spec.pages)}"
    )
    if not ok:
        first = (errors or failed)[0]
        summary += f"; first: {str(first)[:100]}"
    return CheckResult(
        name,
        "browser",
        "pass" if ok else "fail",
        float(len(errors) + len(failed)),
        None,
        "",
        summary,
        "legible browser console",
        details=out,
    )


def check_db(name: str, spec: Any, ctx: CheckContext) -> CheckResult:
    """The slowest SQL statement (client span or Postgres slow-statement line) in ``since`` is within budget."""
    budget = duration_ms(spec.max_statement)
    since_ns = ctx.now_ns() - int(duration_ms(spec.since) * 1e6)
    span_text = f"the last {spec.since}"
    until_ns: int | None = None
    if ctx.window is not None:
        since_ns, until_ns, span_text = ctx.window
    svc = " AND service = ?" if spec.service else ""
    extra = [spec.service] if spec.service else []
    spans_until = " AND start_ns < ?" if until_ns is not None else ""
    logs_until = " AND time_ns < ?" if until_ns is not None else ""
    until = [until_ns] if until_ns is not None else []
    sql = (
        "SELECT ms, statement, trace_id, source FROM ("  # noqa: S608 - only placeholders and fixed clauses are pasted
        " SELECT duration_ms AS ms, attributes->>'db.statement' AS statement, trace_id, 'span' AS source FROM spans"
        f" WHERE start_ns >= ? AND attributes->>'db.statement' IS NOT NULL{spans_until}{svc}"
        " UNION ALL"
        " SELECT CAST(attributes->>'db.duration_ms' AS DOUBLE), attributes->>'db.statement', trace_id, 'log' FROM logs"
        f" WHERE time_ns >= ? AND attributes->>'db.duration_ms' IS NOT NULL{logs_until}{svc}"
        ") ORDER BY ms DESC LIMIT 1"
    )
    params: list[Any] = [since_ns, *until, *extra, since_ns, *until, *extra]
    rows = ctx.store().query(sql, params).rows
    if not rows:
        summary = f"no SQL statements in {span_text}"
        return CheckResult(name, "db", "pass", None, budget, "ms", summary, "", details={})
    ms, statement, trace_id, source = rows[0]
    ok = float(ms) <= budget
    summary = (
        f"slowest statement {_fmt_num(float(ms))} ms (at most {_fmt_num(budget)} ms) in {span_text}:"
        f" {str(statement)[:100]}"
    )
    evidence = f"legible trace {trace_id}" if trace_id else "legible logs --level warn --grep duration:"
    return CheckResult(
        name,
        "db",
        "pass" if ok else "fail",
        float(ms),
        budget,
        "ms",
        summary,
        evidence,
        details={"statement": statement, "trace_id": trace_id, "source": source},
    )


#: Check kinds measured on the store's logs and spans, which the collector writes.
FROM_STORE: Final = frozenset({"span", "logs", "db"})

_KINDS: dict[str, Callable[[str, Any, CheckContext], CheckResult]] = {
    "startup": check_startup,
    "span": check_span,
    "promql": check_promql,
    "logs": check_logs,
    "journey": check_journey,
    "browser": check_browser,
    "db": check_db,
}


# -- ad hoc checks ------------------------------------------------------------------------------------
_PROMQL_RE = re.compile(r"^(?P<query>.+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<threshold>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class AdhocCheck:
    """An ad-hoc check read without pydantic: what :class:`legible.config.CheckConfig` gives, for its ``kind``.

    Attributes:
        kind: ``startup``, ``span``, ``logs`` or ``db`` (the kinds of :data:`PLAIN_FIELDS`).
        spec: every field of the kind's model (``SpanCheck``...) as an attribute, defaults filled in.
    """

    kind: str
    spec: Any


#: The ad-hoc kinds :func:`parse_adhoc` builds without pydantic (importing it and building the models' schemas
#: is ~130 ms of a ~200 ms ``legible check --logs ... --span ...`` on a stopped stack's store): every field of
#: the kind's model in :mod:`legible.config` with its default (``...``: required). A value is read here only
#: when the model would accept it as it is (strict mode: same types, same bounds); any other value, and every
#: other kind, is validated by the model, so an error is always the model's (``tests/test_config_lazy.py`` compares
#: both ways field by field).
PLAIN_FIELDS: Final[dict[str, dict[str, Any]]] = {
    "startup": {"max": ..., "service": "app"},
    "span": {"max": ..., "name": None, "service": None, "journey": None, "percentile": None, "since": "15m"},
    "logs": {"level": "error", "pattern": None, "service": None, "max_count": 0, "since": "15m"},
    "db": {"max_statement": ..., "service": None, "since": "15m"},
}
_DURATION_FIELDS = frozenset({"max", "since", "max_statement"})


def _plain_value(key: str, value: Any) -> bool:
    """Whether the model of :data:`PLAIN_FIELDS` takes ``value`` for field ``key`` unchanged."""
    if key in _DURATION_FIELDS:  # legible.config.Duration: a str parse_duration reads, a unit required
        if not isinstance(value, str):
            return False
        try:
            parse_duration(value, what="", bare=None)
        except UsageError:
            return False
        return True
    if key == "percentile":  # float | None, 0 < p < 100
        return value is None or (type(value) is float and 0 < value < 100)
    if key == "max_count":  # int >= 0
        return type(value) is int and value >= 0
    if key == "level":  # Literal of LEVELS
        return value in LEVELS
    return value is None or type(value) is str  # str | None (name, service, journey, pattern)


def _plain_adhoc(kind: str, spec: dict[str, Any]) -> AdhocCheck | None:
    """``spec`` of ``kind`` as an :class:`AdhocCheck`, or ``None`` when the model must validate it."""
    fields = PLAIN_FIELDS.get(kind)
    if fields is None or not set(spec) <= set(fields):
        return None
    values = {key: spec.get(key, default) for key, default in fields.items()}
    if any(value is ... or not _plain_value(key, value) for key, value in values.items()):
        return None
    return AdhocCheck(kind, SimpleNamespace(**values))


def parse_adhoc(kind: str, text: str) -> CheckConfig | AdhocCheck:
    """Build a check from a command-line value.

    Forms: ``startup``: ``800ms`` (or ``max=800ms,service=app``); ``span``/``logs``/``journey``/``browser``:
    ``key=value`` pairs separated by commas (``name=GET /slow,max=2s``; ``pages`` takes ``|``-separated
    paths); ``journey`` also takes a bare name; ``promql``: ``EXPR OP NUMBER`` (``sum(up) >= 1``).

    Returns:
        The check's ``kind`` and ``spec``: an :class:`AdhocCheck` when the value is one of
        :data:`PLAIN_FIELDS` read as is (no pydantic), else the :class:`legible.config.CheckConfig`.

    Raises:
        UsageError: an unknown kind, a malformed value, or settings the kind does not accept.
    """
    if kind not in CHECK_KINDS:
        raise UsageError(f"unknown check kind {kind!r}", hint=f"use one of {', '.join(CHECK_KINDS)}")
    text = text.strip()
    spec: dict[str, Any]
    if kind == "promql":
        m = _PROMQL_RE.match(text)
        if not m:
            raise UsageError(f"--promql {text!r}: expected 'EXPR OP NUMBER'", hint="e.g. --promql 'sum(up) >= 1'")
        spec = {"query": m["query"], "op": m["op"], "threshold": float(m["threshold"])}
    elif "=" not in text and kind in ("startup", "journey"):
        spec = {"max": text} if kind == "startup" else {"name": text}
    else:
        spec = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise UsageError(f"--{kind} {text!r}: {part!r} is not key=value", hint=f"e.g. --{kind} 'max=2s'")
            key = key.strip().replace("-", "_")
            spec[key] = value.strip()
        for key in ("max_count", "console_errors", "failed_requests"):
            if key in spec and str(spec[key]).isascii() and str(spec[key]).isdigit():  # not "²": int() rejects it
                spec[key] = int(spec[key])
        if "percentile" in spec:
            try:
                spec["percentile"] = float(spec["percentile"])
            except ValueError:
                raise UsageError(f"--{kind}: percentile must be a number") from None
        if "pages" in spec:
            spec["pages"] = [p for p in str(spec["pages"]).split("|") if p]
    plain = _plain_adhoc(kind, spec)
    if plain is not None:
        return plain
    from pydantic import ValidationError

    from legible.config import CheckConfig

    try:
        return CheckConfig.model_validate({kind: spec})
    except ValidationError as exc:
        from legible.config import describe_validation_error

        loc, msg, _ = describe_validation_error(exc, skip=1)
        msg = "unknown setting" if msg == "unknown key" else msg
        raise UsageError(f"--{kind} {text!r}: {loc or kind}: {msg}", hint="see `legible check --help`") from None


# -- running ------------------------------------------------------------------------------------------
def context_for(start: Path | None = None, *, browser: bool = True) -> CheckContext:
    """Build the :class:`CheckContext` of the worktree containing ``start`` (config, state, browser hooks).

    The configuration is validated (a broken one raises here, whatever checks run), but through
    :func:`legible._config_file.load_config_lazily`: once a file validated, later runs read its values
    (importing pydantic) only when a configured check is asked for. The browser hooks are resolved by
    :func:`run_checks` when a journey or browser check runs.

    Raises:
        UsageError: not in a git worktree.
        ConfigError: the configuration is invalid.
    """
    from legible._config_file import load_config_lazily
    from legible.contract import read_state  # what legible.stack.read_state returns, without importing the stack
    from legible.worktree import find_worktree

    wt = find_worktree(start)
    cfg = load_config_lazily(wt.root, wt.state_dir)
    state = read_state(wt.state_file, stopped_is_final=True)  # stopped: no collector to ask, no psutil to import
    ctx = CheckContext(worktree=wt, config=cfg, state=state)
    if browser:
        ctx.browser_hooks = lambda: _browser_hooks(wt, cfg)
    return ctx


def _browser_hooks(wt: Worktree, cfg: LegibleConfig) -> tuple[Any, Any]:
    """The journey runner and page checker of :mod:`legible.browser`, when that package provides them."""
    import importlib

    try:
        browser_checks = importlib.import_module("legible.browser.checks")
    except ImportError:
        return None, None
    run = getattr(browser_checks, "run_journey_for_check", None)
    pages = getattr(browser_checks, "check_pages", None)
    return (
        (lambda n: run(wt, cfg, n)) if run else None,
        (lambda ps: pages(wt, ps)) if pages else None,
    )


def run_checks(
    ctx: CheckContext,
    names: list[str] | None = None,
    adhoc: list[tuple[str, CheckConfig | AdhocCheck]] | None = None,
) -> CheckDoc:
    """Evaluate the configured checks named in ``names`` (all when empty and no ad-hoc checks) plus ``adhoc``.

    Returns:
        ``legible.check/v1``: ``{"schema", "key", "worktree", "passed", "counts": {"pass", "fail", "error"},
        "checks": [CheckResult as dict...], "took_ms"}`` (JSON Schema: ``legible/schemas/check.v1.json``).

    Raises:
        UsageError: a name that is not a configured check.
    """
    t0 = time.monotonic()
    selected: list[tuple[str, CheckConfig | AdhocCheck]] = []
    unknown = [n for n in names or [] if n not in ctx.config.checks]
    if unknown:
        known = ", ".join(sorted(ctx.config.checks)) or "none configured"
        raise UsageError(f"unknown check {unknown[0]!r}", hint=f"configured checks: {known}")
    if names:
        selected = [(n, ctx.config.checks[n]) for n in names]
    elif not adhoc:
        selected = list(ctx.config.checks.items())
    selected += adhoc or []
    needs_browser = any(check.kind in ("journey", "browser") for _, check in selected)
    if needs_browser and ctx.browser_hooks is not None and ctx.run_journey is None and ctx.check_pages is None:
        ctx.run_journey, ctx.check_pages = ctx.browser_hooks()
    if not selected:
        raise UsageError(
            f"no checks configured in {Path(ctx.config.source).name or 'legible.toml'}",
            hint="add [checks.<name>] (see legible/config.py), or pass one: legible check --startup 800ms",
        )
    results = []
    for name, check in selected:
        t1 = time.monotonic()
        try:
            result = _KINDS[check.kind](name, check.spec, ctx)
        except LegibleError as err:
            result = CheckResult(name, check.kind, "error", None, None, "", err.message, err.hint)
        if result.status == "pass" and check.kind in FROM_STORE and (why := ctx.unrecorded()):
            result.status, result.evidence = "error", why[1]
            result.summary = f"not measured: {why[0]} (stored so far: {result.summary})"
        result.took_ms = round((time.monotonic() - t1) * 1000, 1)
        results.append(result)
    n = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "error")}
    return {
        "schema": CHECK_SCHEMA,
        "key": ctx.worktree.key,
        "worktree": str(ctx.worktree.root),
        "passed": bool(results) and n["pass"] == len(results),
        "counts": {"pass": n["pass"], "fail": n["fail"], "error": n["error"]},
        "checks": [cast("CheckResultDoc", asdict(r)) for r in results],
        "took_ms": round((time.monotonic() - t0) * 1000, 1),
    }
