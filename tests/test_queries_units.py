"""Pure helpers of legible.queries: parsing, formatting, sparklines, units, headlines."""

from __future__ import annotations

import pytest

from legible._errors import UsageError
from legible.queries import _fmt
from legible.queries.logs import compact_location, headline, make_filter
from legible.queries.metrics import format_value, metric_type, sparkline, unit_of
from legible.queries.traces import top_frame
from tests._query_fixtures import TRACEBACK


def test_parse_time_forms():
    now = 1_800_000_000 * 10**9
    assert _fmt.parse_time("5m", now) == now - 300 * 10**9
    assert _fmt.parse_time("all", now) == 0
    assert _fmt.parse_time("2027-01-15T08:00:00+00:00", now) == _fmt.parse_time("2027-01-15T08:00:00Z", now)
    assert 0 <= now - _fmt.parse_time("00:00", now) <= 86400 * 10**9
    with pytest.raises(UsageError):
        _fmt.parse_time("2027-13-45T99", now)


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.00123456, "0.001235"),
        (12.3456, "12.35"),
        (2.0, "2"),
        (123456.0, "123500"),
        (1.23456e9, "1.235e+09"),
        (0, "0"),
    ],
)
def test_sig4(x, text):
    assert _fmt.sig4(x) == text


def test_fmt_ago():
    now = 10**18
    assert _fmt.fmt_ago(now - 3 * 10**9, now) == "3 s ago"
    assert _fmt.fmt_ago(now - 90 * 10**9, now) == "1m30s ago"
    assert _fmt.fmt_ago(now - 7200 * 10**9, now) == "2h ago"


def test_sparkline():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▄▄▄"
    assert sparkline([1, None, 3]) == "▁ █"
    assert len(sparkline(list(range(1000)))) == 40


def test_units_and_values():
    assert unit_of("legible_span_duration_seconds_bucket") is None  # a bucket holds a count of observations
    assert unit_of(None, 'sum(legible_span_duration_seconds_bucket{le="+Inf"})') is None
    assert unit_of(None, "sum(rate(x_seconds_sum[5m])) / sum(rate(x_seconds_count[5m]))") == "s"
    assert unit_of(None, "count(x_seconds_sum)") is None
    assert unit_of("legible_spans_total") is None and unit_of("process_cpu_seconds_total") == "s"
    assert unit_of("legible_service_restarts_created") is None
    assert unit_of(None, "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m])))") == "s"
    assert unit_of(None, "rate(x_seconds_count[5m])") is None
    assert unit_of("process_resident_memory_bytes") == "bytes"
    assert format_value(0.1234, "s") == "123.4 ms"
    assert format_value(2.5, "s") == "2.5 s"
    assert format_value(3 * 2**20, "bytes") == "3 MiB"
    assert format_value(12.34567, None) == "12.35"


def test_created_series_belong_to_their_family():
    names = {"r_total", "r_created", "h_bucket", "h_count", "h_created", "s_count", "s_created", "g_created"}
    assert metric_type("r_created", names) == "counter"
    assert metric_type("h_created", names) == "histogram"
    assert metric_type("s_created", names) == "summary"
    assert metric_type("g_created", names) == "gauge"  # no family beside it: a gauge that happens to say created


def test_metric_types():
    names = {"a_bucket", "a_count", "a_sum", "b_count", "c_total", "d"}
    assert [metric_type(n, names) for n in ["a_bucket", "a_count", "b_count", "c_total", "d"]] == [
        "histogram",
        "histogram",
        "summary",
        "counter",
        "gauge",
    ]


def test_headline_of_a_traceback_is_its_exception():
    head, loc = headline(TRACEBACK)
    assert head == "ValueError: card declined for order 42"
    assert compact_location(loc) == "/app/payments.py:12 in charge"
    assert headline("one line\nand more") == ("one line", None)


def test_filter_sql_is_parameterised():
    flt = make_filter(
        since="5m", service=["app,worker"], level="warn", grep="Boom", attr=["k=v"], trace_id="ABCDEF", now=10**18
    )
    where, params = flt.where()
    # the needle is bound as given and lower-cased by DuckDB (ILIKE / lower), never pasted into the SQL
    assert "?" in where and "Boom" not in where and "%Boom%" in params
    assert params[:3] == [10**18 - 300 * 10**9, "app", "worker"] and "warn" in params and "abcdef" in params
    assert flt.describe() == "in last 5m, level>=warn, service=app,worker, grep 'Boom', k=v, trace abcdef"


def test_top_frame_of_a_stacktrace_per_language():
    py = (
        "Traceback (most recent call last):\n"
        '  File "/app/server.py", line 88, in handle\n    charge(order)\n'
        '  File "/app/payments.py", line 12, in charge\n    raise ValueError("no")\nValueError: no'
    )
    assert top_frame(py) == "/app/payments.py:12 in charge"  # the innermost frame: where it was raised
    java = (
        "java.lang.IllegalStateException: no\n"
        "\tat com.shop.Payments.charge(Payments.java:42)\n\tat com.shop.Server.handle(Server.java:7)"
    )
    assert top_frame(java) == "Payments.java:42 in Payments.charge"
    js = "Error: no\n    at charge (/app/pay.js:12:9)\n    at handle (/app/server.js:3:1)"
    assert top_frame(js) == "/app/pay.js:12 in charge"
    assert top_frame("ValueError: no frames") is None and top_frame("") is None
