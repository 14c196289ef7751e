r"""PromQL over the stack's VictoriaMetrics through prometheus-api-client, rendered compactly.

* :func:`query`: an instant query, or a range query (``range_s``, ``step_s``); returns a
  :class:`MetricsResult` with the labels common to every series split out.
* :func:`list_metrics`: metric names with their type (inferred from the suffix: VictoriaMetrics has no
  metadata API) and series count, from ``/api/v1/series`` (``PrometheusConnect.get_series``).
* :func:`render_metrics` / :func:`render_list`: bounded text; values to 4 significant digits with the unit
  of the metric name (``*_seconds`` as ms/s, ``*_bytes`` as KiB/MiB); a unicode sparkline per range series.

prometheus-api-client (and requests) are imported inside the functions: they are slow to import.
Server errors (bad PromQL) raise :class:`UsageError` with the server's message on one line.

Example ("is the p99 of the slow endpoint under 2 s?")::

    from legible.queries import metrics, metrics_url
    res = metrics.query(metrics_url(), 'histogram_quantile(0.99, sum by (vmrange) (rate('
                        'legible_span_duration_seconds_bucket{span_name="GET /slow"}[5m])))')
    print("\n".join(metrics.render_metrics(res)))
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legible._errors import NotRunning, UsageError
from legible.queries._fmt import (
    View,
    cut_line,
    fmt_count,
    format_seconds,
    iso,
    one_line,
    parse_duration,
    parse_limit,
    sig4,
)

if TYPE_CHECKING:
    from legible.contract import MetricsDoc, MetricsListDoc, SeriesDoc

__all__ = [
    "MetricInfo",
    "MetricList",
    "MetricsResult",
    "Series",
    "format_value",
    "list_metrics",
    "metric_type",
    "metrics_view",
    "parse_window",
    "query",
    "render_list",
    "render_metrics",
    "sparkline",
    "unit_of",
]

#: Series shown by default before the cut line.
MAX_SERIES = 20
#: Sparkline width in characters.
SPARK_WIDTH = 40
_BLOCKS = "▁▂▃▄▅▆▇█"
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
#: A query whose outermost function yields a count whatever it counts.
_COUNTING = re.compile(r"\s*(count|count_over_time|count_values|changes|resets|absent|absent_over_time)\b\s*\(")


#: Seconds added to "now" for instant queries. VictoriaMetrics 1.79 does not return a sample ingested
#: less than about a second before the query's ``time`` (measured: about 1.0 s even with
#: ``-search.latencyOffset=0s`` and ``/internal/force_flush``); evaluating a second ahead returns it at once,
#: and the lookback window makes the answer otherwise the same as at "now".
INSTANT_LOOKAHEAD_S = 1.0


@dataclass
class Series:
    """One series of a result.

    Attributes:
        labels: all its labels (``__name__`` included when the server kept it).
        value: the instant value (``None`` for a range series).
        values: ``[(unix_seconds, value)]`` for a range series, else ``[]``.

    """

    labels: dict[str, str]
    value: float | None = None
    values: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class MetricsResult:
    """The answer of :func:`query`.

    Attributes:
        query: the PromQL.
        kind: ``"instant"`` or ``"range"``.
        result_type: the server's ``resultType`` (``vector``, ``matrix``, ``scalar``).
        common: labels with the same value on every series.
        series: the series (all of them; rendering cuts).
        unit: ``"s"``, ``"ms"``, ``"bytes"`` or ``None`` (from the metric name).
        start: range start, unix seconds (``None`` for instant).
        end: evaluation time or range end, unix seconds.
        step_s: range step in seconds (``None`` for instant).

    """

    query: str
    kind: str
    result_type: str
    common: dict[str, str]
    series: list[Series]
    unit: str | None
    start: float | None
    end: float
    step_s: float | None

    def to_json(self) -> MetricsDoc:
        """The ``legible.metrics/v1`` document (times ISO 8601, values as numbers, NaN as ``null``)."""

        def num(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) else None

        def series(s: Series) -> SeriesDoc:
            doc: SeriesDoc = {"labels": s.labels, "value": num(s.value)}
            if s.values:
                doc["values"] = [(iso(int(t * 1e9)), num(v)) for t, v in s.values]
            return doc

        return {
            "schema": "legible.metrics/v1",
            "query": self.query,
            "kind": self.kind,
            "result_type": self.result_type,
            "unit": self.unit,
            "common_labels": self.common,
            "start": iso(int(self.start * 1e9)) if self.start is not None else None,
            "end": iso(int(self.end * 1e9)),
            "step_s": self.step_s,
            "series": [series(s) for s in self.series],
        }


def _client(url: str) -> Any:
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    from legible._loopback import requests_session

    # no retries: a stack that is down should fail fast, not after three backoffs; no proxy for loopback
    return PrometheusConnect(url, disable_ssl=True, retry=Retry(total=0), timeout=30, session=requests_session())


def _server_message(exc: Exception) -> str:
    """The server's ``error`` text from a ``PrometheusApiClientException`` (``HTTP Status Code N (b'...')``)."""
    text = str(exc)
    m = re.search(r"\((b['\"].*['\"])\)\s*$", text, re.S)
    if not m:
        return one_line(text, 400)
    try:
        body = ast.literal_eval(m.group(1)).decode("utf-8", "replace")
    except (ValueError, SyntaxError, AttributeError):
        return one_line(text, 400)
    try:
        doc = json.loads(body)
    except ValueError:
        return one_line(body, 400)
    return one_line(str(doc.get("error") or body) if isinstance(doc, dict) else body, 400)


def _call(url: str, fn: Any) -> Any:
    import requests
    from prometheus_api_client.exceptions import PrometheusApiClientException

    try:
        return fn()
    except PrometheusApiClientException as e:
        raise UsageError(f"PromQL: {_server_message(e)}", hint="see `legible metrics list` for names") from None
    except requests.RequestException as e:
        raise NotRunning(
            f"VictoriaMetrics at {url} does not answer: {one_line(str(e), 200)}",
            hint="check `legible status`; `legible up --wait` restarts the stack",
        ) from None


def unit_of(name: str | None, promql: str = "") -> str | None:
    """Infer the unit from the metric name, or the first metric-like name in ``promql``.

    The Prometheus naming convention (https://prometheus.io/docs/practices/naming/) puts the base unit in
    the name: ``*_seconds`` (and its ``_sum``/``_max``/``_min`` series, and ``_total`` of seconds) -> ``"s"``;
    ``*_milliseconds`` -> ``"ms"``; ``*_bytes`` -> ``"bytes"``. Counts have no unit: ``_count``, a
    ``_bucket`` series (cumulative observations per bucket), ``_created`` (a timestamp), a ``_total`` of a
    unitless name, and a query whose outermost function counts (``count``, ``count_over_time``, ...).
    Only ``histogram_quantile`` over ``*_seconds_bucket`` turns bucket counts back into seconds.
    """
    if _COUNTING.match(promql):
        return None
    quantile = "histogram_quantile" in promql
    candidates = [name] if name else _IDENT.findall(promql)
    for c in candidates:
        if c.endswith(("_count", "_created")) or (c.endswith("_bucket") and not quantile):
            continue
        base = re.sub(r"_(bucket|sum|max|min|total)$", "", c)
        if base.endswith("_seconds"):
            return "s"
        if base.endswith(("_milliseconds", "_ms")):
            return "ms"
        if base.endswith("_bytes"):
            return "bytes"
    return None


def format_value(v: float | None, unit: str | None) -> str:
    """A value to 4 significant digits with its unit: ``0.1234`` s -> ``123.4 ms``, ``2048`` bytes -> ``2 KiB``."""
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if unit == "ms":
        unit, v = "s", v / 1000
    if unit == "s":
        if v != 0 and abs(v) < 1:
            return f"{sig4(v * 1000)} ms"
        return f"{sig4(v)} s"
    if unit == "bytes":
        for suffix, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(v) >= scale:
                return f"{sig4(v / scale)} {suffix}"
        return f"{sig4(v)} B"
    return sig4(v)


def sparkline(values: Sequence[float | None], width: int = SPARK_WIDTH) -> str:
    """A one-line unicode sparkline (``▁▂▃▄▅▆▇█``), at most ``width`` characters (maximum per bucket).

    Missing or non-finite points are spaces; a flat series is all ``▄``.
    """
    if not values:
        return ""
    n = len(values)
    buckets: list[float | None] = []
    for i in range(min(width, n)):
        lo, hi = i * n // min(width, n), (i + 1) * n // min(width, n)
        chunk = [v for v in values[lo : max(hi, lo + 1)] if v is not None and math.isfinite(v)]
        buckets.append(max(chunk) if chunk else None)
    finite = [b for b in buckets if b is not None]
    if not finite:
        return " " * len(buckets)
    lo_v, hi_v = min(finite), max(finite)
    if hi_v == lo_v:
        return "".join("▄" if b is not None else " " for b in buckets)
    return "".join(" " if b is None else _BLOCKS[min(7, int((b - lo_v) / (hi_v - lo_v) * 7.999))] for b in buckets)


def _fnum(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def query(
    url: str, promql: str, range_s: float | None = None, step_s: float | None = None, now: float | None = None
) -> MetricsResult:
    """Run ``promql`` against VictoriaMetrics at ``url``: instant, or over the last ``range_s`` seconds.

    Args:
        url: VictoriaMetrics base URL (:func:`legible.queries.metrics_url`).
        promql: the query (PromQL / MetricsQL).
        range_s: range length in seconds for a range query, or ``None`` for an instant query.
        step_s: range step in seconds (default: ``range_s / 60``, at least 1 s).
        now: evaluation time / range end, unix seconds (default: the clock).

    Raises:
        UsageError: the server rejected the query (its message, one line), or an empty query.
        NotRunning: VictoriaMetrics does not answer.

    """
    import datetime as dt

    if not promql.strip():
        raise UsageError("empty PromQL query", hint="e.g. legible metrics 'up'")
    end = time.time() if now is None else now
    pc = _client(url)
    try:
        if range_s is None:
            at = end + (INSTANT_LOOKAHEAD_S if now is None else 0.0)
            raw = _call(url, lambda: pc.custom_query(promql, params={"time": f"{at:.3f}"}))
            start, step = None, None
        else:
            step = step_s or max(1.0, round(range_s / 60))
            start = end - range_s
            raw = _call(
                url,
                lambda: pc.custom_query_range(
                    promql, dt.datetime.fromtimestamp(start), dt.datetime.fromtimestamp(end), f"{step:g}s"
                ),
            )
    finally:
        pc.close()
    series: list[Series] = []
    result_type = "matrix" if range_s is not None else "vector"
    if isinstance(raw, list) and len(raw) == 2 and not isinstance(raw[0], dict):  # scalar / string
        result_type = "scalar"
        series.append(Series({}, _fnum(raw[1])))
    else:
        for item in raw or []:
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            if "values" in item:
                series.append(Series(labels, None, [(float(t), _fnum(v)) for t, v in item["values"]]))
            else:
                series.append(Series(labels, _fnum((item.get("value") or [0, "NaN"])[1])))
    common: dict[str, str] = {}
    if series:
        first = series[0].labels
        common = {k: v for k, v in first.items() if all(s.labels.get(k) == v for s in series[1:])}
    names = {s.labels.get("__name__") for s in series}
    name = names.pop() if len(names) == 1 else None
    return MetricsResult(
        promql,
        "instant" if range_s is None else "range",
        result_type,
        common,
        series,
        unit_of(name, promql),
        start,
        end,
        step,
    )


def _labels_text(labels: dict[str, str], skip: dict[str, str] | None = None) -> str:
    items = [(k, v) for k, v in sorted(labels.items()) if not (skip and k in skip)]
    name = labels.get("__name__") if not (skip and "__name__" in skip) else None
    body = ", ".join(f'{k}="{v}"' for k, v in items if k != "__name__")
    return f"{name or ''}{{{body}}}" if body or not name else name


def _sort_key(s: Series) -> float:
    v = s.value if s.value is not None else (s.values[-1][1] if s.values else math.nan)
    return -v if math.isfinite(v) else math.inf


def render_metrics(res: MetricsResult, limit: int = MAX_SERIES) -> list[str]:
    """Render a result: a header (series count, common labels, unit, window), one line per series, a cut line.

    Instant series are sorted by value, largest first; each range series gets a sparkline with min, max
    and last.
    """
    unit = f"; unit {res.unit} (from the name)" if res.unit else ""
    if res.kind == "range":
        when = f"last {format_seconds(res.end - (res.start or res.end))} every {format_seconds(res.step_s or 0)}"
    else:
        when = "now"
    if not res.series:
        return [
            f"0 series for {one_line(res.query, 200)} ({when}): no data; check names with "
            "`legible metrics list`, or widen the [range]"
        ]
    common = _labels_text(res.common) if res.common else ""
    n = len(res.series)
    head = f"{n} series ({when}){unit}" + (f"; common: {common}" if common and n > 1 else "")
    ordered = sorted(res.series, key=_sort_key)
    out = [head]
    for s in ordered[:limit]:
        lab = (
            _labels_text(s.labels, res.common if n > 1 else None)
            if s.labels
            else ("(scalar)" if res.result_type == "scalar" else "(no labels)")
        )
        if n > 1 and lab == "{}":
            lab = "(no distinguishing labels)"
        if res.kind == "instant":
            out.append(f"{lab}  {format_value(s.value, res.unit)}")
        else:
            vals = [v for _, v in s.values]
            finite = [v for v in vals if math.isfinite(v)]
            stats = (
                (
                    f"min {format_value(min(finite), res.unit)}  max {format_value(max(finite), res.unit)}  "
                    f"last {format_value(vals[-1], res.unit)}"
                )
                if finite
                else "no finite values"
            )
            out.append(f"{lab}  {sparkline(vals)}  {stats}")
    if n > limit:
        out.append(
            cut_line(
                n - limit,
                "series",
                f"--limit {max(2 * limit, 50)}, aggregate (sum by (label) (...)), add a label filter, or --json",
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ list


def metric_type(name: str, names: set[str]) -> str:
    """Infer a metric's type from its suffix: ``counter``, ``histogram``, ``summary`` or ``gauge``.

    ``*_created`` (the creation timestamp ``prometheus_client`` exposes beside a counter, histogram or
    summary) belongs to its family, as in OpenMetrics (https://prometheus.io/docs/specs/om/open_metrics_spec/):
    the type of ``<base>_total``, ``<base>_bucket`` or ``<base>_count`` when one of them exists in ``names``.
    """
    if name.endswith("_created"):
        base = name[: -len("_created")]
        for sibling, kind in (("_total", "counter"), ("_bucket", "histogram"), ("_count", "summary")):
            if f"{base}{sibling}" in names:
                return kind
    if name.endswith("_total"):
        return "counter"
    if name.endswith("_bucket"):
        return "histogram"
    for suffix in ("_count", "_sum"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            return "histogram" if f"{base}_bucket" in names else "summary"
    return "gauge"


@dataclass
class MetricInfo:
    """One metric name: its inferred type and how many series it has."""

    name: str
    type: str
    series: int


@dataclass
class MetricList:
    """The answer of :func:`list_metrics`: the matching metrics, by name, and the pattern used."""

    pattern: str | None
    metrics: list[MetricInfo]
    total_series: int

    def to_json(self) -> MetricsListDoc:
        """The ``legible.metrics-list/v1`` document."""
        return {
            "schema": "legible.metrics-list/v1",
            "pattern": self.pattern,
            "total_series": self.total_series,
            "metrics": [{"name": m.name, "type": m.type, "series": m.series} for m in self.metrics],
        }


def list_metrics(url: str, pattern: str | None = None, lookback_s: float = 86400) -> MetricList:
    """List metric names seen in the last ``lookback_s`` seconds with their type and series count.

    Args:
        url: VictoriaMetrics base URL.
        pattern: case-insensitive regular expression (or plain substring) searched in the names.
        lookback_s: how far back series count (default one day).

    Raises:
        NotRunning: VictoriaMetrics does not answer.
        UsageError: the server rejected the request.

    """
    import datetime as dt

    end = dt.datetime.now()
    pc = _client(url)
    try:
        raw = _call(
            url,
            lambda: pc.get_series(end - dt.timedelta(seconds=lookback_s), end, params={"match[]": '{__name__=~".+"}'}),
        )
    finally:
        pc.close()
    counts: dict[str, int] = {}
    for labels in raw or []:
        name = labels.get("__name__", "")
        counts[name] = counts.get(name, 0) + 1
    try:
        rx = re.compile(pattern, re.I) if pattern else None
    except re.error:
        rx = re.compile(re.escape(pattern or ""), re.I)
    names = set(counts)
    picked = sorted(n for n in names if rx is None or rx.search(n))
    return MetricList(
        pattern, [MetricInfo(n, metric_type(n, names), counts[n]) for n in picked], sum(counts[n] for n in picked)
    )


def render_list(res: MetricList, limit: int = 40) -> list[str]:
    """Render the metric list: a summary line, ``NAME TYPE SERIES`` rows, a cut line."""
    from legible.queries._fmt import align

    what = f" matching {res.pattern!r}" if res.pattern else ""
    if not res.metrics:
        return [f"0 metrics{what} (in the last day); the app's and the collector's metrics appear once sent"]
    out = [f"{len(res.metrics)} metrics{what}, {fmt_count(res.total_series)} series"]
    out.extend(align([["NAME", "TYPE", "SERIES"], *([m.name, m.type, str(m.series)] for m in res.metrics[:limit])]))
    if len(res.metrics) > limit:
        out.append(
            cut_line(
                len(res.metrics) - limit,
                "metrics",
                f"legible metrics list PATTERN, --limit {max(2 * limit, 100)} or --json",
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ view


def parse_window(range_: str | None, step: str | None) -> tuple[float | None, float | None]:
    """Check ``--range`` and ``--step`` and return them in seconds (``None`` when not given).

    Raises:
        UsageError: not a duration, not positive, or ``--step`` without ``--range``.

    """
    range_s = parse_duration(range_, what="--range") if range_ is not None else None
    step_s = parse_duration(step, what="--step") if step is not None else None
    if step_s is not None and range_s is None:
        raise UsageError("--step needs --range", hint="e.g. --range 10m --step 15s")
    if range_s is not None and range_s <= 0 or step_s is not None and step_s <= 0:
        raise UsageError("--range and --step must be positive", hint="e.g. --range 10m --step 15s")
    return range_s, step_s


def metrics_view(
    promql: str,
    pattern: str | None = None,
    *,
    range_: str | None = None,
    step: str | None = None,
    limit: int | None = None,
    url: str | None = None,
    end: float | None = None,
) -> View:
    """What ``legible metrics`` shows: one PromQL query (instant, or over ``range_``), or with ``list`` the names.

    Args:
        promql: the query, or ``"list"`` to list metric names.
        pattern: with ``list``: a regex or substring of the names; otherwise it must be ``None``.
        range_: a duration (``10m``): a range query over that much time back from now.
        step: the range step (a duration; default ``range_ / 60``, at least 1 s).
        limit: series shown (default 20) or metrics listed (default 40).
        url: VictoriaMetrics' base URL (default: the running stack's, :func:`legible.queries.metrics_url`).
        end: the range's end in Unix seconds (default: now), e.g. the end of an earlier deploy.

    Returns:
        The ``legible.metrics/v1`` (or ``legible.metrics.list/v1``) document and the text lines.

    Raises:
        UsageError: a bad option, a second argument without ``list``, or the server rejected the query.
        NotRunning: no stack runs, or VictoriaMetrics does not answer.

    """
    from legible.queries.source import metrics_url

    if promql == "list":
        n = parse_limit(limit, 40)
        listed = list_metrics(url or metrics_url(), pattern)
        return View(listed.to_json(), render_list(listed, n))
    if pattern is not None:
        raise UsageError(f"unexpected argument {pattern!r}", hint="quote the PromQL query as one argument")
    range_s, step_s = parse_window(range_, step)
    n = parse_limit(limit, 20)
    res = query(url or metrics_url(), promql, range_s, step_s, now=end)
    lines = render_metrics(res, n)
    if not res.series and url is None and (why := first_scrape_hint()):
        lines.append(why)
    return View(res.to_json(), lines)


#: Seconds after VictoriaMetrics became ready during which an empty answer may only mean "not scraped yet"
#: (three scrapes at the default ``[stack] scrape_interval`` of 5 s).
FIRST_SCRAPE_S = 15.0


def first_scrape_hint(cwd: Path | None = None, now: float | None = None) -> str:
    """One line when the running stack's VictoriaMetrics became ready less than :data:`FIRST_SCRAPE_S` ago, else ``""``.

    An agent that asks right after ``legible up`` gets "0 series" because nothing was scraped yet, not because
    the name is wrong; this line says so. Reads ``state.json`` (``services["victoria-metrics"]["ready_at"]``,
    seconds since the epoch). Never raises.
    """
    from legible._errors import LegibleError
    from legible.contract import read_state
    from legible.worktree import find_worktree

    try:
        state = read_state(find_worktree(cwd).state_file)
        if state is None or not state["alive"]:
            return ""
        vm: dict[str, Any] = dict(state["services"].get("victoria-metrics") or {})
        ready_at = float(vm.get("ready_at") or 0)
    except (LegibleError, OSError, TypeError, ValueError, KeyError, AttributeError):
        return ""
    age = (time.time() if now is None else now) - ready_at
    if not ready_at or not 0 <= age < FIRST_SCRAPE_S:
        return ""
    return (
        f"VictoriaMetrics became ready {age:.0f} s ago: its first scrapes may not be in yet "
        "(`[stack] scrape_interval`, 5 s by default); ask again in a few seconds"
    )
