"""`legible traces` and `legible trace ID` over a real store file (no stack running)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from legible.cli.main import app
from typer.testing import CliRunner

from tests._query_fixtures import S_ERR_CHARGE, T_ERR, T_SLOW, build_store, git_repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = git_repo(tmp_path_factory.mktemp("traces") / "wt")
    build_store(root)
    return root


def run(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.chdir(repo)
    return CliRunner().invoke(app, list(args))


def test_list_newest_first_bounded_with_cut_line(repo, monkeypatch):
    res = run(repo, monkeypatch, "traces")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "82 traces in last 1h, 1 with errors; 20 shown, newest first"
    assert lines[1].split() == ["TRACE", "START", "DURATION", "SPANS", "SERVICE", "ROOT"]
    assert lines[2].startswith(T_ERR[:16]) and "ERROR(2) ValueError: card declined for order 42" in lines[2]
    assert lines[3].startswith(T_SLOW[:16]) and "2.3 s" in lines[3] and " 42 " in lines[3]
    assert lines[-2].startswith("… 62 more traces: --limit 50")
    assert len(lines) <= 42


def test_slowest_errors_and_filters(repo, monkeypatch):
    out = run(repo, monkeypatch, "traces", "--slowest", "2").output.splitlines()
    assert out[0].endswith("2 shown, slowest first") and "GET /slow" in out[2]
    out = run(repo, monkeypatch, "traces", "--errors").output.splitlines()
    assert out[0].startswith("1 traces in last 1h, with errors") and "GET /error" in out[2]
    out = run(repo, monkeypatch, "traces", "--min-duration", "1s").output
    assert out.startswith("1 traces") and "GET /slow" in out
    out = run(repo, monkeypatch, "traces", "--name", "render").output
    assert out.startswith("1 traces") and "GET /slow" in out
    out = run(repo, monkeypatch, "traces", "--service", "nope").output
    assert out.startswith("0 traces")


def test_list_json(repo, monkeypatch):
    doc = json.loads(run(repo, monkeypatch, "traces", "--json", "--errors").output)
    assert doc["schema"] == "legible.traces/v1" and doc["total"] == 1
    t = doc["traces"][0]
    assert t["trace_id"] == T_ERR and t["errors"] == 2 and t["spans"] == 3 and t["start"].endswith("Z")
    assert t["duration_ms"] == pytest.approx(48.5)


def test_tree_with_exception_logs_and_attributes(repo, monkeypatch):
    res = run(repo, monkeypatch, "trace", T_ERR[:6])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"trace {T_ERR}: GET /error [app] 48 ms, 3 spans, 2 errors, 3 log lines")
    assert lines[1].startswith("GET /error  48 ms  +0  [app]  ERROR  http.method=GET http.route=/error")
    charge = next(i for i, ln in enumerate(lines) if ln.startswith("  charge"))
    assert "ERROR" in lines[charge] and "+4 ms" in lines[charge]
    # the exception with its top source frame (the innermost of exception.stacktrace), on one line
    assert lines[charge + 1] == "    ! ValueError: card declined for order 42  at /app/payments.py:12 in charge"
    assert "error ValueError: card declined for order 42  at /app/payments.py:12 in charge" in lines[charge + 2]
    assert any(ln.startswith("    | ") and "validating order 42" in ln for ln in lines)


def test_long_tree_folds_repeated_siblings(repo, monkeypatch):
    lines = run(repo, monkeypatch, "trace", T_SLOW).output.splitlines()
    assert sum(1 for ln in lines if ln.startswith("  SELECT")) == 3
    assert "  … 37 more `SELECT` spans (total 350 ms)" in lines
    assert lines[-1].startswith("  render  150 ms  +2.1 s")
    assert "db.statement=SELECT * FROM items WHERE id = 0" in lines[2]


def test_tree_cut_keeps_error_path(repo, monkeypatch):
    lines = run(repo, monkeypatch, "trace", T_ERR, "--limit", "3").output.splitlines()
    assert len(lines) == 5  # header, 3 kept lines (the error path first), cut line
    assert lines[1].startswith("GET /error") and "request failed" in lines[2] and lines[3].startswith("  charge")
    assert lines[-1].startswith("… ") and "--json" in lines[-1]


def test_tree_json_is_the_full_tree(repo, monkeypatch):
    doc = json.loads(run(repo, monkeypatch, "trace", T_ERR, "--json").output)
    assert doc["schema"] == "legible.trace/v1" and doc["spans"] == 3 and doc["logs"] == 3
    root = doc["roots"][0]
    charge = next(c for c in root["children"] if c["span_id"] == S_ERR_CHARGE)
    assert charge["events"][0]["attributes"]["exception.type"] == "ValueError"
    assert charge["logs"][0]["level"] == "error" and "Traceback" in charge["logs"][0]["body"]
    assert charge["offset_ms"] == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trace", "xyz123"], "error: trace id 'xyz123' must be 6 to 32 hex digits"),
        (["trace", "abc"], "error: trace id 'abc' must be 6 to 32 hex digits"),
        (["trace", "ffffff"], "error: no trace starts with ffffff"),
        (["trace", "5c0ffee1"], "error: 5c0ffee1 is ambiguous: 5c0ffee100000000"),
        (["traces", "--min-duration", "fast"], "error: --min-duration: 'fast' is not a duration"),
        (["traces", "--sql", "DROP TABLE spans"], "error: SQL: only SELECT/WITH/EXPLAIN are allowed"),
        (["traces", "--slowest", "x"], "error: legible traces: invalid value for '--slowest': 'x' is not a valid int"),
    ],
)
def test_bad_input_exits_2(repo, monkeypatch, args, message):
    res = run(repo, monkeypatch, *args)
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines()[0].startswith(message), res.stderr


def test_sql(repo, monkeypatch):
    sql = "SELECT name, count(*) AS n FROM spans GROUP BY ALL ORDER BY n DESC"
    res = run(repo, monkeypatch, "traces", "--sql", sql)
    assert res.exit_code == 0
    assert res.output.splitlines()[:2] == ["name             n", "SELECT           120"]


#: The one-pass statement :func:`legible.queries.traces.list_traces` ran before issue 12 (every aggregate for
#: every trace, then the top N): the reference the two-pass statement must answer as.
ONE_PASS = """
WITH t AS (
  SELECT trace_id,
         coalesce(arg_min(name, start_ns) FILTER (WHERE parent_span_id IS NULL), arg_min(name, start_ns)) AS root,
         coalesce(arg_min(service, start_ns) FILTER (WHERE parent_span_id IS NULL),
                  arg_min(service, start_ns)) AS service,
         min(start_ns) AS start_ns, (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms, count(*) AS spans,
         count(*) FILTER (WHERE status_code = 'error') AS errors,
         coalesce(arg_min(exception_type || ': ' || coalesce(exception_message, ''), start_ns)
                    FILTER (WHERE exception_type IS NOT NULL),
                  arg_min(name || coalesce(': ' || status_message, ''), start_ns)
                    FILTER (WHERE status_code = 'error')) AS error
  FROM spans WHERE {where} GROUP BY trace_id HAVING {having})
SELECT *, count(*) OVER () AS total, sum(CASE WHEN errors > 0 THEN 1 ELSE 0 END) OVER () AS total_errors
FROM t ORDER BY {order}, trace_id LIMIT {limit}
"""


def test_the_two_pass_trace_list_answers_as_one_pass(tmp_path: Path) -> None:
    """Roots missing or late, errors with and without exceptions, spans outside the window, every filter."""
    import random

    import duckdb

    from legible.queries.traces import list_traces, make_trace_filter
    from legible.store import Store, migrate

    rnd = random.Random(12)
    c = duckdb.connect()
    migrate(c)
    rows = []
    seq = 0
    for t in range(300):
        base = 10**12 + t * 10**9 + rnd.randrange(10**8)
        for s in range(rnd.randrange(1, 8)):
            start = base + rnd.randrange(-(10**8), 10**9)  # a child may start before the root, or in the window's edge
            status = "error" if rnd.random() < 0.08 else "unset"
            exc = rnd.choice([None, "ValueError", "KeyError"]) if status == "error" else None
            parent = None if s == 0 and rnd.random() < 0.9 else f"{t:08x}{0:08x}"
            rows.append(
                (seq, f"{t:032x}", f"{t:08x}{s:08x}", parent, rnd.choice(["app", "db", "worker"]),
                 rnd.choice(["GET /items", "SELECT", "charge card"]), "server", start,
                 start + rnd.randrange(10**5, 3 * 10**9), status, rnd.choice([None, "boom"]), exc,
                 None if exc is None else rnd.choice([None, "card declined"]))
            )  # fmt: skip
            seq += 1
    c.executemany(
        "INSERT INTO spans (seq, trace_id, span_id, parent_span_id, service, name, kind, start_ns, end_ns, "
        "duration_ms, status_code, status_message, exception_type, exception_message, received_ns) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, 0)",
        rows,
    )
    store = Store(path=tmp_path / "unused.duckdb", _con=c)
    now = 10**12 + 400 * 10**9
    filters = [
        {},
        {"since": "200s"},
        {"since": "250s", "until": "80s"},
        {"errors": True},
        {"service": ["worker"], "since": "300s"},
        {"name": "CHARGE"},
        {"min_duration": "2s"},
        {"errors": True, "min_duration": "1s", "service": ["db,app"]},
        {"name": "no such span"},
    ]
    compared = 0
    for kw in filters:
        flt = make_trace_filter(**{"since": "all", **kw}, now=now)
        where, wp, having, hp = flt.sql()
        for slowest, limit in ((False, 20), (True, 10), (False, 1000)):
            order = "duration_ms DESC" if slowest else "start_ns DESC"
            ref = c.execute(ONE_PASS.format(where=where, having=having, order=order, limit=limit), [*wp, *hp])
            want = ref.fetchall()
            got = list_traces(store, flt, limit, slowest=slowest, now=now)
            assert [t.to_json() for t in got.traces] == [
                {**_summary(r), "duration_ms": round(r[4], 3)} for r in want
            ], (kw, slowest)
            assert (got.total, got.total_errors) == ((want[0][8], want[0][9]) if want else (0, 0))
            compared += len(want)
    assert compared > 1000
    c.close()


def _summary(r: tuple) -> dict:
    from legible.queries._fmt import iso

    return {"trace_id": r[0], "root": r[1], "service": r[2], "start": iso(r[3]), "duration_ms": r[4], "spans": r[5],
            "errors": r[6], "error": r[7]}  # fmt: skip
