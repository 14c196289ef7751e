"""Top-N with ties answers the same on every run: the grouped logs view and the span check's slowest span;
and a log group's trace id is that of its newest line with one.

Both run over a real DuckDB database with the store's schema (legible.store.migrate) through a real
:class:`legible.store.Store` (its file path, a connection given), rows inserted so that several candidates tie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from legible.store import Store, migrate


def _span_check_context(tmp_path: Path, c: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]], now: int) -> Any:
    """Insert ``rows`` (seq, trace, span, service, name, kind, start, end, ms) as spans; a span check's context."""
    from legible.checks import CheckContext
    from legible.worktree import Worktree

    c.executemany(
        "INSERT INTO spans (seq, trace_id, span_id, service, name, kind, start_ns, end_ns, duration_ms, "
        "status_code, received_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'unset', 0)",
        rows,
    )
    return CheckContext(
        worktree=Worktree(root=tmp_path, key="t"),
        config=None,  # type: ignore[arg-type]  # the span check reads the store only
        state=None,
        now_ns=lambda: now,
        _store=Store(path=tmp_path / "unused.duckdb", _con=c),
    )


def test_groups_tied_on_count_and_time_come_in_level_service_template_order(tmp_path):
    """Top-N with ties: groups with equal rank, count and newest time are cut and shown in one fixed order."""
    from legible.queries.logs import log_groups, make_filter

    c = duckdb.connect()
    migrate(c)
    rows = []
    for i, tpl in enumerate(["zeta <n>", "mu <n>", "delta <n>", "alpha <n>", "omega <n>", "beta <n>"]):
        for j, t in enumerate((1_000, 2_000)):  # every group: 2 lines, the same first and newest time
            rows.append((i * 2 + j, t, t, "app", "info", 9, tpl.replace("<n>", str(j)), tpl, "stdout"))
    c.executemany(
        "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    store = Store(path=tmp_path / "unused.duckdb", _con=c)
    flt = make_filter(since="all", now=10_000)
    shown = [g.template for g in log_groups(store, flt, limit=3, now=10_000).groups]
    assert shown == ["alpha <n>", "beta <n>", "delta <n>"]
    every = [g.template for g in log_groups(store, flt, limit=30, now=10_000).groups]
    assert every == sorted(every) and len(every) == 6
    c.close()


def test_the_span_check_names_the_newest_of_equally_slow_spans(tmp_path: Path) -> None:
    from legible.checks import check_span
    from legible.config import SpanCheck

    c = duckdb.connect()
    migrate(c)
    now = 10**18
    rows: list[tuple[Any, ...]] = []
    for i in range(40):  # 40 spans of 500 ms (one an older twin of the newest), starts in shuffled order
        start = now - 10**9 * (1 + (i * 7 + 3) % 40)
        rows.append((i, f"{i:032x}", f"{i:016x}", "app", "GET /x", "server", start, start + 500 * 10**6, 500.0))
    newest = max(rows, key=lambda r: r[6])[1]
    ctx = _span_check_context(tmp_path, c, rows, now)
    for spec in (SpanCheck(max="1s"), SpanCheck(max="1s", percentile=99)):
        for _ in range(5):  # a heap top-N with two threads picked any of the 40 before
            res = check_span("slow", spec, ctx)
            assert res.details["trace_id"] == newest and res.details["spans"] == 40, res.details
    assert check_span("slow", SpanCheck(max="1s", percentile=50), ctx).measured == 500.0
    c.close()


def test_a_log_group_keeps_the_trace_id_of_its_newest_line_that_has_one(tmp_path: Path) -> None:
    from legible.queries.logs import log_groups, make_filter

    c = duckdb.connect()
    migrate(c)
    rows = [  # one group: the newest line has no trace, the one before has; an older one has another
        (0, 1_000, "a" * 32, "GET /x 200"),
        (1, 2_000, "b" * 32, "GET /x 200"),
        (2, 3_000, None, "GET /x 200"),
    ]
    c.executemany(
        "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, source, "
        "trace_id) VALUES (?, ?, ?, 'app', 'info', 9, ?, 'GET /x <n>', 'stdout', ?)",
        [(seq, t, t, body, tid) for seq, t, tid, body in rows],
    )
    c.execute(
        "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source) "
        "VALUES (3, 500, 500, 'app', 'info', 9, 'no template yet', 'stdout')"
    )
    store = Store(path=tmp_path / "unused.duckdb", _con=c)
    res = log_groups(store, make_filter(since="all", now=10_000), now=10_000)
    got = {g.template: (g.count, g.trace_id, g.example) for g in res.groups}
    assert got["GET /x <n>"] == (3, "b" * 32, "GET /x 200")
    assert got["no template yet"] == (1, None, "no template yet")  # computed from the body (pass 1 redone)
    c.close()


def test_the_span_check_answers_as_a_sort_of_every_matching_span(tmp_path: Path) -> None:
    """The slowest span, count and percentile against a top-N sort over the same spans; nothing matched: error."""
    import random

    from legible.checks import check_span
    from legible.config import SpanCheck

    rnd = random.Random(7)
    c = duckdb.connect()
    migrate(c)
    now = 10**18
    rows = []
    for i in range(3000):  # durations on a coarse grid, so several spans tie on the longest
        start = now - 10**9 * rnd.randrange(1, 600)
        dur = float(rnd.randrange(1, 40) * 25)
        rows.append((i, f"{i % 50:032x}", f"{i:016x}", rnd.choice(["app", "db"]), rnd.choice(["GET /a", "SELECT"]),
                     "server", start, start + int(dur * 1e6), dur))  # fmt: skip
    ctx = _span_check_context(tmp_path, c, rows, now)
    for spec, where, params in (
        (SpanCheck(max="1s", since="5m"), "start_ns >= ?", [now - 300 * 10**9]),
        (SpanCheck(max="1s", since="10m", percentile=90, service="db"), "start_ns >= ? AND service = ?",
         [now - 600 * 10**9, "db"]),
        (SpanCheck(max="1s", since="3m", name="SELECT", percentile=50), "start_ns >= ? AND name = ?",
         [now - 180 * 10**9, "SELECT"]),
    ):  # fmt: skip
        want = c.execute(
            f"SELECT trace_id, count(*) OVER (), duration_ms, quantile_cont(duration_ms, ?) OVER () FROM spans "  # noqa: S608
            f"WHERE {where} ORDER BY duration_ms DESC, start_ns DESC, seq DESC LIMIT 1",
            [(spec.percentile or 50) / 100, *params],
        ).fetchone()
        res = check_span("slow", spec, ctx)
        assert want is not None
        assert (res.details["trace_id"], res.details["spans"], res.details["max_ms"]) == want[:3], spec
        assert res.measured == (want[3] if spec.percentile is not None else want[2])
    assert check_span("none", SpanCheck(max="1s", name="no such span"), ctx).status == "error"
    c.close()
