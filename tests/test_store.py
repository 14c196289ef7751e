"""The store's schema, migrations and read-only query API (file path; the collector path is in test_collector)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from legible._errors import NotRunning, UsageError
from legible.store import (
    MAX_ROWS,
    MIGRATIONS,
    SEARCH_TEXT,
    Store,
    WordPlan,
    check_read_only,
    connect_file,
    migrate,
    open_store,
    search_contains,
    store_path,
    template_sql,
    word_runs,
)


def _state(tmp_path: Path) -> Path:
    state = tmp_path / ".legible"
    path = store_path(state)
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    assert migrate(con) == [name for name, _ in MIGRATIONS]
    assert migrate(con) == []
    con.execute(
        "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source, attributes) "
        "SELECT i, 1714557600000000000 + i, 1714557600000000000 + i, 'app', 'info', 9, 'line ' || i, 'stdout', "
        "'{\"i\": 1}' FROM range(12000) t(i)"
    ).fetchall()
    con.close()
    return state


def test_migrations_are_recorded(tmp_path: Path) -> None:
    state = _state(tmp_path)
    with open_store(state) as store:
        assert store.query("SELECT name FROM _migrations ORDER BY name").rows == [(n,) for n, _ in MIGRATIONS]
        cols = store.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'spans'").rows
        assert {"trace_id", "duration_ms", "events", "links", "status_code", "start_ts"} <= {c for (c,) in cols}


def test_file_queries_are_capped_typed_and_parameterised(tmp_path: Path) -> None:
    state = _state(tmp_path)
    store = open_store(state, collector_url=None)
    res = store.query("SELECT seq FROM logs ORDER BY seq")
    assert res.source == "file" and res.truncated and len(res.rows) == MAX_ROWS
    cols, rows = store.query("SELECT ts, attributes, body FROM logs WHERE seq = ?", [3])
    assert cols == ["ts", "attributes", "body"]
    assert rows == [("2024-05-01T10:00:00", '{"i": 1}', "line 3")]
    assert store.query("SELECT count(*) FROM logs WHERE body = $b", {"b": "line 7"}).rows == [(1,)]
    assert store.query("SELECT 1", max_rows=0).truncated
    store.close()


def test_unreachable_collector_falls_back_to_the_file(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_store(_state(tmp_path), collector_url=f"http://127.0.0.1:{port}")
    assert store.query("SELECT count(*) FROM logs").rows == [(12000,)]


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    """A process that opens ``path`` for writing (DuckDB's lock) for ``seconds``, as a collector does between
    opening the store and answering ``/query``; returns once the lock is taken. It writes ``<path>.released``
    just before it lets go, so whoever got the lock after it finds that file."""
    code = (
        f"import duckdb, pathlib, time\ncon = duckdb.connect({str(path)!r})\nprint('held', flush=True)\n"
        f"time.sleep({seconds})\npathlib.Path({str(path) + '.released'!r}).touch()\ncon.close()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.stdout.close()
    return holder


def test_a_file_held_by_a_collector_that_does_not_answer_yet_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector is starting (it holds the file, its port does not answer): the query waits for one of them
    instead of failing at once; past HELD_WAIT_S it fails with the one-line NotRunning."""
    import legible.store

    state = _state(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    holder = _holder(store_path(state), 1.0)
    res = open_store(state, collector_url=f"http://127.0.0.1:{port}").query("SELECT count(*) FROM logs")
    assert Path(f"{store_path(state)}.released").exists()  # the answer came after the holder let go
    holder.wait()
    assert res.source == "file" and res.rows == [(12000,)]
    holder = _holder(store_path(state), 60)
    try:
        monkeypatch.setattr(legible.store, "HELD_WAIT_S", 0.3)
        with pytest.raises(NotRunning, match="held by a running collector that did not answer"):
            open_store(state, collector_url=f"http://127.0.0.1:{port}").query("SELECT 1")
        with pytest.raises(NotRunning, match="held by"):  # without a collector to ask: at once, as before
            open_store(state).query("SELECT 1")
    finally:
        holder.kill()
        holder.wait()


def _killed_after(path: Path, code: str) -> None:
    """Run ``code`` in a child Python with ``con`` open on ``path`` (no automatic checkpoint), then SIGKILL it."""
    child = (
        "import os, signal, duckdb\n"
        "from legible.store import MIGRATIONS, migrate\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "con.execute(\"SET checkpoint_threshold = '1GB'\")\n"
        f"{code}\n"
        'con.execute("INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source) '
        "VALUES (1, 1, 1, 'app', 'info', 9, 'kept', 'stdout')\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    res = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert res.returncode == -9, res.stderr
    assert path.with_name(path.name + ".wal").exists()  # the migration and the row are in the WAL only


def test_a_store_killed_right_after_migrating_opens_again(tmp_path: Path) -> None:
    """migrate() checkpoints what it applied: DuckDB 2.0.1 cannot replay an ALTER TABLE of ``logs`` (duckdb#18259)."""
    path = tmp_path / "signals.duckdb"
    _killed_after(path, "migrate(con)")
    con = duckdb.connect(str(path))  # plain DuckDB, no recovery: the WAL holds the row only
    assert con.execute("SELECT body FROM logs").fetchall() == [("kept",)]
    con.close()


def test_a_wal_holding_a_migration_is_recovered_at_open_with_its_rows(tmp_path: Path) -> None:
    """A kill between a migration's COMMIT and its checkpoint: connect_file replays the WAL elsewhere, keeps all."""
    path = tmp_path / "signals.duckdb"
    _killed_after(path, "for _name, fn in MIGRATIONS:\n    fn(con)")  # every migration, none checkpointed
    lines: list[str] = []
    con = connect_file(path, read_only=True, log=lines.append)
    assert con.execute("SELECT body, has_exception FROM logs").fetchall() == [("kept", None)]
    con.close()
    assert len(lines) == 1 and "write-ahead log" in lines[0]
    assert not path.with_name(path.name + ".wal").exists()  # folded into the file: a plain open works now
    duckdb.connect(str(path)).close()
    with pytest.raises(duckdb.Error):  # anything else DuckDB cannot open is still an error, not a recovery
        connect_file(tmp_path / "missing" / "x.duckdb", read_only=True)


def test_a_store_of_the_first_schema_is_upgraded_in_place_and_greps_the_same(tmp_path: Path) -> None:
    """m002 adds and fills ``logs.has_exception``, m003 ``logs.group_id``; ``logs --grep`` answers as before."""
    from legible.queries.logs import log_groups, make_filter

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    MIGRATIONS[0][1](con)  # the file as the collector of the first schema left it
    con.execute("INSERT INTO _migrations VALUES ('m001_initial', now()::TIMESTAMP)")
    attrs = [
        '{"exception.type": "ValueError", "exception.message": "card DECLINED"}',
        '{"http.route": "/pay"}',
        None,
        '{"exception.stacktrace": "Traceback ...\\nKeyError: sku"}',
    ]
    con.execute(
        "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, source, "
        "attributes) SELECT i, i, i, 'app', 'error', 17, 'payment ' || i, 'payment <n>', 'otlp', "
        "(?::VARCHAR[])[i % 4 + 1] FROM range(2000) t(i)",
        [attrs],
    )
    needles = ["declined", "keyerror: sku", "payment 17", "route", "PAY"]
    joined = f"SELECT seq FROM logs WHERE contains(lower({SEARCH_TEXT}), lower(?)) ORDER BY seq"  # noqa: S608
    before = {n: con.execute(joined, [n]).fetchall() for n in needles}
    con.close()

    con = duckdb.connect(str(path))  # reopened, as a new collector opens the file
    assert migrate(con) == ["m002_logs_has_exception", "m003_log_groups", "m004_log_words"]
    assert con.execute("SELECT has_exception, count(*) FROM logs GROUP BY ALL ORDER BY 1").fetchall() == [
        (False, 1000),
        (True, 1000),
    ]
    # m003: the one (level, service, template) key in the dictionary, every row pointing at it
    assert con.execute("SELECT id, level, service, template FROM log_groups").fetchall() == [
        (1, "error", "app", "payment <n>")
    ]
    assert con.execute("SELECT group_id, count(*) FROM logs GROUP BY ALL").fetchall() == [(1, 2000)]
    # m004: the rows without exception attributes are covered by their template's words, the others listed
    assert con.execute("SELECT indexed, count(*) FROM logs GROUP BY ALL ORDER BY 1").fetchall() == [
        (False, 1000),
        (True, 1000),
    ]
    store = Store(path=path, _con=con)
    for n in needles:
        cond, params = search_contains(n)
        assert con.execute(f"SELECT seq FROM logs WHERE {cond} ORDER BY seq", params).fetchall() == before[n], n  # noqa: S608
        groups = log_groups(store, make_filter(since="all", grep=n, now=10**6), now=10**6)
        assert groups.total == len(before[n]), n
        for word in word_runs(n):  # through the word index the migration built, whichever run narrows it
            cond, params = search_contains(n, WordPlan(*word))
            assert con.execute(f"SELECT seq FROM logs WHERE {cond} ORDER BY seq", params).fetchall() == before[n], n  # noqa: S608
    assert [len(before[n]) for n in needles] == [500, 500, 111, 0, 2000]  # 17, 170-179, 1700-1799
    con.close()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM logs",
        "DROP TABLE logs",
        "INSERT INTO logs SELECT * FROM logs",
        "SELECT 1; SELECT 2",
        "ATTACH 'x.db'",
        "COPY logs TO 'x.csv'",
        "PRAGMA version",
        "CREATE TABLE x (a INT)",
        "SET threads = 1",
        "selec 1",
    ],
)
def test_only_read_only_statements(tmp_path: Path, sql: str) -> None:
    with pytest.raises(UsageError):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "EXPLAIN SELECT 1",
        "DESCRIBE logs",
        "SHOW TABLES",
        "SUMMARIZE logs",
    ],
)
def test_read_statements_pass(sql: str) -> None:
    check_read_only(sql)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(NotRunning):
        open_store(tmp_path / ".legible").query("SELECT 1")
    store = open_store(_state(tmp_path))
    with pytest.raises(UsageError, match="nosuch"):
        store.query("SELECT * FROM nosuch")
    assert store.query("SELECT 1").rows == [(1,)]  # the connection survives an error


@pytest.mark.parametrize(
    ("body", "template"),
    [
        ("GET /items/123 took 12.5ms", "GET /items/<n> took <n>ms"),
        ("user 550e8400-e29b-41d4-a716-446655440000 trace=4bf92f3577b34da6a3ce929d0e0e4736", "user <uuid> trace=<hex>"),
        ('Traceback (most recent call last):\n  File "a.py", line 3\nValueError: order 42\n', "ValueError: order <n>"),
        ("first line 1\nsecond line", "first line <n>"),
    ],
)
def test_template(body: str, template: str) -> None:
    con = duckdb.connect()
    assert con.execute(f"SELECT {template_sql()} FROM (SELECT $b AS body)", {"b": body}).fetchall() == [(template,)]
