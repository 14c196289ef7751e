"""The grouped `legible logs` view on ``logs.group_id`` answers exactly as the grouping on the strings did.

Random log lines go through the collector's real :class:`legible.collector._writer.Writer` (its flushes fill
``logs.group_id`` and the ``log_groups`` dictionary), in several flushes so that later ones meet both known and
new keys. A copy of the same rows without ``group_id`` (as another writer, an old file or a proof bundle stores
them) is answered by the string grouping; both answers, text and ``--json``, must be equal for every filter.
Times are drawn from a small range so that groups tie on count and newest time (the tie order is part of the
answer); within one group they are distinct, so that "the newest line" of a group is one line.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from legible.collector._writer import Writer
from legible.queries.logs import (
    LogFilter,
    _groups_by_id_sql,
    _groups_sql,
    log_groups,
    make_filter,
    render_groups,
)
from legible.store import Store, migrate

NOW = 10**12
LEVELS = ("debug", "info", "info", "info", "warn", "error", "fatal")
SERVICES = ("app", "worker", "db")
VERBS = ("GET item", "cache miss for key", "slow query on table", "card declined for order", "retry job")


def _rows(rnd: random.Random, n: int, seen: set[tuple[str, str, str, int]]) -> list[tuple[Any, ...]]:
    """``n`` rows in the writer's ``LOG_COLUMNS`` order; times distinct within a (level, service, verb) group."""
    rows = []
    while len(rows) < n:
        level, service, verb = rnd.choice(LEVELS), rnd.choice(SERVICES), rnd.choice(VERBS)
        t = NOW - rnd.randrange(1, 400) * 10**9
        if (level, service, verb, t) in seen:
            continue
        seen.add((level, service, verb, t))
        body = f"{verb} {rnd.randrange(10_000)}"
        if level in ("error", "fatal") and rnd.random() < 0.3:
            body = f'Traceback (most recent call last):\n  File "/app/x.py", line 3, in f\nValueError: {body}'
        trace = f"{rnd.getrandbits(128):032x}" if rnd.random() < 0.3 else None
        attrs = '{"exception.type": "KeyError"}' if rnd.random() < 0.05 else '{"http.route": "/x"}'
        rows.append((t, t, service, level, 9, None, body, attrs, "{}", None, trace, None, "stdout"))
    return rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store]]:
    """``(with_ids, without_ids)``: the same rows, written by the collector's writer, and copied without ids."""
    rnd = random.Random(12)
    writer = Writer(Path(tmp_path_factory.mktemp("group_id")) / "s.duckdb")
    seen: set[tuple[str, str, str, int]] = set()
    for size in (300, 1, 700, 50, 1500):  # several flushes: new keys and known keys in each
        assert writer.add("logs", _rows(rnd, size, seen))
        writer.flush()
    con = writer.con
    assert con.execute("SELECT count(*), count(group_id) FROM logs").fetchall() == [(2551, 2551)]
    arrow = con.sql("SELECT * EXCLUDE (ts, group_id, indexed) FROM logs").to_arrow_table()  # the writer's columns
    plain = duckdb.connect()
    migrate(plain)
    plain.register("_rows", arrow)
    plain.execute("INSERT INTO logs BY NAME SELECT * FROM _rows")
    assert plain.execute("SELECT count(*), count(group_id) FROM logs").fetchall() == [(2551, 0)]
    yield Store(path=Path("unused"), _con=con), Store(path=Path("unused"), _con=plain)
    plain.close()
    writer.close()


FILTERS: list[dict[str, Any]] = [
    {},
    {"since": "5m"},
    {"since": "200s", "until": "100s"},  # a deploy window
    {"level": "warn"},
    {"level": "error"},
    {"service": ["worker"]},
    {"service": ["app,db"], "level": "info"},
    {"grep": "declined"},
    {"grep": "KEYERROR"},
    {"regex": "key [0-9]{2}$"},
    {"since": "3m", "service": ["db"], "grep": "order"},
    {"since": "1s"},  # nothing matches: the "outside the window" answer
]


@pytest.mark.parametrize("limit", [1, 3, 30, 1000])
@pytest.mark.parametrize("opts", FILTERS, ids=[str(f) for f in FILTERS])
def test_grouping_on_group_id_answers_as_the_grouping_on_the_strings(
    stores: tuple[Store, Store], opts: dict[str, Any], limit: int
) -> None:
    with_ids, without_ids = stores
    flt = make_filter(since=opts.get("since", "all"), now=NOW, **{k: v for k, v in opts.items() if k != "since"})
    fast = log_groups(with_ids, flt, limit, now=NOW)
    slow = log_groups(without_ids, flt, limit, now=NOW)
    assert fast.to_json() == slow.to_json()
    assert render_groups(fast, limit) == render_groups(slow, limit)
    # the answer above came from the id statement (no matching line lacks an id), and its rows are the string one's
    where, params = flt.where()
    by_id = with_ids.query(_groups_by_id_sql(where, limit), params).rows
    by_strings = with_ids.query(_groups_sql("template", where, limit), params).rows
    assert [r for r in by_id if r[0] == "n"] == [("n", None, None, None, 0, None, None, None, None, None, None)]
    assert sorted(by_id, key=repr) == sorted(by_strings, key=repr)


def test_the_comparison_sees_a_wrong_grouping(stores: tuple[Store, Store]) -> None:
    """Two keys' ids swapped in the dictionary: the id statement answers differently, and the test above would say."""
    with_ids, _ = stores
    flt: LogFilter = make_filter(since="all", now=NOW)
    where, params = flt.where()
    con = with_ids._con
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        a, b = (r[0] for r in con.execute("SELECT id FROM log_groups ORDER BY id LIMIT 2").fetchall())
        for old, new in ((a, -1), (b, a), (-1, b)):
            con.execute("UPDATE log_groups SET id = ? WHERE id = ?", [new, old]).fetchall()
        wrong = with_ids.query(_groups_by_id_sql(where, 1000), params).rows
        right = with_ids.query(_groups_sql("template", where, 1000), params).rows
        assert sorted(wrong, key=repr) != sorted(right, key=repr)
    finally:
        con.execute("ROLLBACK")


def test_lines_without_a_group_id_are_grouped_on_the_strings(stores: tuple[Store, Store]) -> None:
    """Rows another writer stored without ``group_id`` (and one without a template) next to the collector's."""
    with_ids, without_ids = stores
    flt = make_filter(since="all", now=NOW)
    before = log_groups(with_ids, flt, 1000, now=NOW)
    con = with_ids._con
    con.execute("BEGIN TRANSACTION")
    try:
        for c in (con, without_ids._con):
            c.execute(
                "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, source) "
                "VALUES (100000, ?, ?, 'app', 'info', 9, 'GET item 7', 'GET item <n>', 'stdout'), "
                "(100001, ?, ?, 'app', 'info', 9, 'no template 5', NULL, 'stdout')",
                [NOW - 1, NOW - 1, NOW - 2, NOW - 2],
            )
        mixed = log_groups(with_ids, flt, 1000, now=NOW)
        assert mixed.to_json() == log_groups(without_ids, flt, 1000, now=NOW).to_json()
        assert mixed.total == before.total + 2
        assert any(g.template == "no template <n>" for g in mixed.groups)
    finally:
        con.execute("ROLLBACK")
        without_ids._con.execute("DELETE FROM logs WHERE seq >= 100000")


def test_assign_groups_reuses_known_keys_and_adds_new_ones_once() -> None:
    """Rows another writer inserted: a known key gets its id, a new key one new id, a row without template none."""
    from legible.store import assign_groups

    con = duckdb.connect()
    migrate(con)
    insert = (
        "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, source) "
        "VALUES (?, 0, 0, ?, 'info', 9, 'x', ?, 'stdout')"
    )
    con.executemany(insert, [(0, "app", "a <n>"), (1, "db", "a <n>")])
    assign_groups(con)
    assert con.execute("SELECT id, service FROM log_groups ORDER BY id").fetchall() == [(1, "app"), (2, "db")]
    con.executemany(insert, [(2, "db", "a <n>"), (3, "app", "b <n>"), (4, "app", "b <n>"), (5, "app", None)])
    assign_groups(con, from_seq=2)
    assert con.execute("SELECT seq, group_id FROM logs ORDER BY seq").fetchall() == [
        (0, 1),
        (1, 2),
        (2, 2),
        (3, 3),
        (4, 3),
        (5, None),
    ]
    assert con.execute("SELECT count(*), count(DISTINCT (level, service, template)) FROM log_groups").fetchall() == [
        (3, 3)
    ]
    con.close()
