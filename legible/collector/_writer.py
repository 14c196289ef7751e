"""The store's only writer: batches rows in memory and appends them to DuckDB from one thread.

Rows are buffered per table and flushed at most :data:`FLUSH_EVERY_S` seconds after they arrive, or as soon
as :data:`FLUSH_ROWS` are waiting (:meth:`Writer._due` is the timer), as Arrow tables inserted with one
``INSERT ... SELECT`` each (the ``logs.template``, ``logs.has_exception`` and ``logs.group_id`` columns are
computed there by DuckDB, see
:func:`legible.store.template_select`, :data:`legible.store.HAS_EXCEPTION_SQL` and
:func:`legible.store.assign_groups`; the template of a batch of at most :data:`PY_TEMPLATE_ROWS` rows comes
from :func:`legible.store.template_of` instead, and its group ids from the ids the writer's earlier flushes
found when it knows every key of the batch), in one
transaction with the tail offsets the rows came from. At most :data:`MAX_PENDING` rows wait; beyond that
:meth:`Writer.add` refuses (OTLP answers 429 so the sender retries) or blocks (the file tailer). A row
:meth:`Writer.add` accepted is written before :meth:`Writer.close` returns: the last flushes run until the
queue is empty (or the store has failed, which is then printed with the count of rows lost).

Health: a flush that fails for a reason other than an unstorable row (DuckDB out of memory, a failed
checkpoint that invalidates the database, a full disk) sets :attr:`Writer.error`; the writer reopens the
file and retries, and clears the error after the next commit. While :attr:`Writer.error` is set the
collector answers ``/health`` with 503 and refuses new rows (see :mod:`legible.collector._server`).

DuckDB settings (https://duckdb.org/docs/stable/configuration/overview): ``memory_limit``
:data:`MEMORY_LIMIT` and ``threads`` :data:`THREADS` bound the buffer pool, with ``temp_directory``
``<store dir>/tmp`` so checkpoints and large queries spill instead of failing, and
``allocator_background_threads=true`` so memory a query freed goes back to the system; then
``enable_external_access=false`` (no file, URL, ``ATTACH``, ``COPY`` or extension access from SQL),
``autoinstall_known_extensions=false``, ``autoload_known_extensions=false`` and
``lock_configuration=true``, so ``/query`` reads the store's tables and nothing else
(:func:`legible.store.lock_down`).

Start-up (issue 12): the file is opened, migrated and locked with DuckDB's engine module alone
(:mod:`legible._dbengine`), and a flush binds its columns as list parameters of its ``INSERT``, which the
engine alone can do (``Writer._run_insert``). pyarrow and the ``duckdb`` package, with which a flush scans an
Arrow table instead (about 5 us a row less), are imported by the first flush of more than :data:`ARROW_ROWS` rows
or once :data:`ARROW_AFTER_ROWS` rows went without them. So the collector is ready about 170 ms of CPU sooner,
its first flushes wait for no import, and a stack that logs little never loads them (80 MB of RSS).

Size cap: every :data:`PRUNE_EVERY_S` seconds, when the used size of the file (``pragma_database_size``:
used blocks times block size, plus the WAL) exceeds ``max_bytes``, the oldest 20 % of each table
(lowest ``seq``) are deleted and the database is checkpointed, until it fits.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from legible._dbengine import engine
from legible._errors import UsageError
from legible._template import HEADLINE_MAX
from legible.store import (
    HAS_EXCEPTION_SQL,
    INDEXED_TEXT,
    MISSING_GROUP_WORDS_SQL,
    assign_groups,
    connect_file,
    covered_sql,
    held_by_another,
    insert_words_sql,
    lock_down,
    migrate,
    retry_while_held,
    run_query,
    template_of,
    template_select,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

#: DuckDB's engine module (``_duckdb``, or ``duckdb`` once imported): enough to open, migrate and lock the store
#: before ``/health`` says ready; its ``Error`` and ``FatalException`` are the very classes ``duckdb`` re-exports
#: (:mod:`legible._dbengine`).
_db = engine()
#: What :func:`arrow_layer` imports (numpy with pyarrow; together about 170 ms of CPU here, and 80 MB of the
#: collector's RSS): what the Arrow flushes need and ``/health`` does not (issue 12).
ARROW_IMPORTS = ("numpy", "pyarrow", "duckdb")
#: A flush of more rows than this imports the Arrow layer (:func:`arrow_layer`) if it is not yet, and so does the
#: flush that brings the rows flushed without it past :data:`ARROW_AFTER_ROWS`. Measured here, a flush of 10 / 100
#: / 500 / 1,000 log rows costs 4.2 / 4.8 / 9.1 / 15.0 ms of CPU with bound lists against 4.1 / 4.8 / 7.5 / 10.1
#: with Arrow: the same for a few rows, about 5 us a row more beyond 100, so the import (about 170 ms) pays for
#: itself after some 35,000 rows.
ARROW_ROWS = 500
ARROW_AFTER_ROWS = 35_000
#: Seconds the collector waits for a store file another process holds (a CLI command reading it while the
#: collector was down: a few hundred ms at most), and between two tries (:meth:`Writer._connect`).
LOCK_WAIT_S = 10.0
LOCK_RETRY_S = 0.05
_arrow_module: ModuleType | None = None


def arrow_layer() -> ModuleType:
    """Import and return ``pyarrow``, with the ``duckdb`` package that lets a connection scan its tables.

    The store is opened with the engine alone (:mod:`legible._dbengine`), which cannot scan Python objects:
    ``con.register`` of an Arrow table raises "the duckdb package did not set up duckdb._sources" until
    ``duckdb`` is imported, after which the same connection registers tables as usual (checked by
    ``tests/test_collector_start.py``). Thread-safe (Python's import locks).

    Raises:
        ImportError: pyarrow or duckdb is not installed.

    """
    global _arrow_module
    if _arrow_module is None:
        import duckdb
        import pyarrow

        del duckdb
        _arrow_module = pyarrow
    return _arrow_module


@functools.cache
def _pa_type(name: str) -> pa.DataType:
    """The Arrow type ``pyarrow.<name>()`` of a column of :data:`LOG_COLUMNS` or :data:`SPAN_COLUMNS`."""
    t: pa.DataType = getattr(arrow_layer(), name)()
    return t


#: The flush deadline: a row is committed at most this many seconds after :meth:`Writer.add` took it (plus the
#: flush's own time); ``legible logs`` relies on it. Under load the writer flushes at this cadence.
FLUSH_EVERY_S = 0.2
#: After a quiet period, the first rows wait this long for company before their flush (a trickle such as a
#: periodic job's stdout line and its OTLP span and log, 0-100 ms apart, then makes one flush instead of two or
#: three, each about 10 ms of CPU: DuckDB plans and commits). An idle writer sleeps until rows arrive
#: (issue 12: before, it woke every FLUSH_EVERY_S).
GATHER_S = 0.1
#: Seconds new tail offsets without rows (lines that were all copies of OTLP records already stored, see
#: :meth:`Writer._dedupe`) may wait for the next flush: they change nothing a query sees, and a crash before
#: their commit re-reads those lines (stored again as copies, never lost).
OFFSETS_LAG_S = 5.0
FLUSH_ROWS = 5000
#: Rows (logs + spans) queued at most; a queued span row takes about 1-2 KB of Python objects.
MAX_PENDING = 20_000
PRUNE_EVERY_S = 5.0
#: DuckDB's buffer pool; larger work spills to ``temp_directory``.
MEMORY_LIMIT = "128MB"
#: DuckDB worker threads (the machine may have 2 cores shared by several stacks).
THREADS = 2
#: Failed flushes in a row after which the writer counts as failed even without a fatal error.
FAILURES_UNHEALTHY = 3
#: Queries ``/query`` runs at once, and seconds after which one is interrupted.
QUERY_SLOTS = 2
QUERY_TIMEOUT_S = 30.0
#: How many recent (service, trace id, message) keys the cross-source dedupe remembers.
DEDUPE_KEYS = 50_000
#: A log batch of at most this many rows gets its ``template`` column from Python (:func:`legible.store.template_of`)
#: rather than from DuckDB: binding the SQL folding (six RE2 regexes, nested stages) costs DuckDB about 2.5 ms of
#: CPU per flush whatever the row count, which a stack logging a few lines per flush paid every 0.2 s (issue 12);
#: Python's regexes cost more per row, so a large batch (a burst of stdout) keeps the SQL.
PY_TEMPLATE_ROWS = 1000
#: How many ``(level, service, template) -> log_groups.id`` the writer remembers, so that a small batch whose keys
#: are all known is inserted without the join to ``log_groups`` (about 0.9 ms of CPU less a flush).
GROUP_IDS_KEPT = 10_000

LOG_COLUMNS = (
    ("time_ns", "int64"),
    ("observed_ns", "int64"),
    ("service", "string"),
    ("level", "string"),
    ("severity_number", "int16"),
    ("severity_text", "string"),
    ("body", "string"),
    ("attributes", "string"),
    ("resource", "string"),
    ("scope", "string"),
    ("trace_id", "string"),
    ("span_id", "string"),
    ("source", "string"),
)
SPAN_COLUMNS = (
    ("trace_id", "string"),
    ("span_id", "string"),
    ("parent_span_id", "string"),
    ("trace_state", "string"),
    ("service", "string"),
    ("name", "string"),
    ("kind", "string"),
    ("start_ns", "int64"),
    ("end_ns", "int64"),
    ("duration_ms", "float64"),
    ("status_code", "string"),
    ("status_message", "string"),
    ("attributes", "string"),
    ("resource", "string"),
    ("scope", "string"),
    ("events", "string"),
    ("links", "string"),
    ("exception_type", "string"),
    ("exception_message", "string"),
    ("received_ns", "int64"),
)
_JSON_COLS = {"attributes", "resource", "events", "links"}
#: A ``logs`` row's trace id.
_TRACE_ID = itemgetter(10)


#: Give a kept log record the span id its dropped copy had (see ``Writer._dedupe``); ``seq >=`` lets DuckDB's
#: zone maps skip the older row groups. The first line is trimmed of the ASCII whitespace ``str.strip`` removes.
_FILL_SPAN_SQL = (
    "UPDATE logs SET span_id = ? WHERE seq >= ? AND span_id IS NULL AND service = ? AND trace_id = ?"
    " AND trim(split_part(body, chr(10), 1), ' ' || chr(9) || chr(13) || chr(11) || chr(12)) = ?"
)


def _insert_sql(
    table: str, columns: Sequence[tuple[str, Any]], *, template_given: bool = False, group_given: bool = False
) -> str:
    """Return the ``INSERT`` of a batch of ``table`` rows from the Arrow table named ``_batch_<table>``.

    It returns one row ``(group_id IS NULL, indexed)`` per ``logs`` row. ``template_given`` (``logs`` only): the
    batch carries a ``template`` column (see :data:`PY_TEMPLATE_ROWS`), so the statement does not compute it, and
    returns ``(level, service, template, group_id, indexed)``; ``group_given`` too: the batch carries ``group_id``
    (every key known, see ``Writer._group_ids``), so the statement does not look it up and returns ``(indexed,)``.
    The stored rows are the same; ``indexed`` (last) tells whether a row needs postings of its own.
    """
    names = ["seq", *(c for c, _ in columns)]
    sel = [f"{c}::JSON" if c in _JSON_COLS else c for c in names]
    if table == "logs":  # + the columns DuckDB computes: has_exception (from the JSON text), template, indexed,
        # group_id; indexed: true when the flush adds the row's own words to log_words, false when its template's
        # words (log_group_words) hold them all (legible.store.covered_sql)
        names += ["has_exception", "template", "indexed", "group_id"]
        sel.append(f"{HAS_EXCEPTION_SQL} AS has_exception")
        # a batch with its templates brings _covered, the body and template half of covered_sql (_covered_py)
        indexed = "NOT (_covered AND NOT has_exception) AS indexed"
        if group_given:
            return (
                f"INSERT INTO logs ({', '.join(names)}) SELECT {', '.join(sel)}, template, {indexed}, group_id"  # noqa: S608
                " FROM _batch_logs RETURNING indexed"
            )
        if template_given:
            rows = f"SELECT {', '.join(sel)}, template, {indexed} FROM _batch_logs"  # noqa: S608
        else:
            rows = template_select("_batch_logs", sel)
        # group_id: the id of the row's (level, service, template) in log_groups, NULL for a key not there yet
        # (the flush then adds it: legible.store.assign_groups); RETURNING tells whether any row got NULL
        return (
            f"INSERT INTO logs ({', '.join(names)}) SELECT b.*,"  # noqa: S608
            f"{'' if template_given else ' NOT ' + covered_sql('b.has_exception', 'b.') + ','} d.id"
            f" FROM ({rows}) AS b"
            " LEFT JOIN log_groups AS d ON d.level = b.level AND d.service = b.service AND d.template = b.template"
            f" RETURNING {'level, service, template, group_id' if template_given else 'group_id IS NULL'}, indexed"
        )
    return f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(sel)} FROM _batch_{table}"  # noqa: S608


def _covered_py(body: str, template: str) -> bool:
    """The half of :func:`legible.store.covered_sql` over ``body`` and ``template``, in Python.

    For a batch that brings its templates: DuckDB binding the whole expression cost a small flush about 0.5 ms.
    ``str.isascii`` is ``strlen(body) = length(body)``, ``len`` counts code points as ``length`` does; the rest
    are the same substring tests. The ``has_exception`` half stays in SQL (it reads the JSON as stored).
    """
    return (
        body.isascii()
        and len(body) <= HEADLINE_MAX
        and "\n" not in body
        and "<uuid>" not in template
        and '"<s>"' not in template
        and ("<hex>" not in template or not ("0x" in body or "0X" in body))
    )


def _array(col: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """Return ``pa.array(col, typ)``; a string column of one repeated str (or all ``None``) is built in C.

    A log batch's ``resource``, ``source`` and usually ``service`` hold one value: ``pa.repeat`` makes the
    same array without converting each element (about 30 ns a row a column).
    """
    pa = arrow_layer()
    if typ == _pa_type("string") and col:
        first = col[0]
        n = len(col)
        if (
            (first is None or type(first) is str)
            and col[-1] == first
            and col[n // 2] == first
            and col.count(first) == n
        ):
            return pa.nulls(n, typ) if first is None else pa.repeat(pa.scalar(first, typ), n)
    return pa.array(col, typ)


#: A batch of rows by column: ``[(column, Arrow type name, values)]``, ``seq`` first (:func:`_columns`).
Batch = list[tuple[str, str, Sequence[Any]]]


def _columns(columns: Sequence[tuple[str, str]], rows: list[tuple[Any, ...]], first_seq: int) -> Batch:
    """``rows`` (tuples in the order of ``columns``) by column, with ``seq`` from ``first_seq`` first."""
    batch: Batch = [("seq", "int64", range(first_seq, first_seq + len(rows)))]
    batch += [(name, typ, col) for (name, typ), col in zip(columns, zip(*rows, strict=True), strict=True)]
    return batch


def _table(batch: Batch) -> pa.Table:
    """``batch`` as an Arrow table (imports the Arrow layer). Raises what pyarrow raises for a value of a wrong type."""
    pa = arrow_layer()
    return pa.Table.from_arrays([_array(v, _pa_type(t)) for _, t, v in batch], names=[c for c, _, _ in batch])


def _arrow(columns: Sequence[tuple[str, str]], rows: list[tuple[Any, ...]], first_seq: int) -> pa.Table:
    """``rows`` as the Arrow table a flush scans (see :func:`_columns`, :func:`_table`)."""
    return _table(_columns(columns, rows, first_seq))


#: The DuckDB type of each Arrow type name the writer's columns use.
_SQL_TYPES = {
    "int64": "BIGINT",
    "int32": "INTEGER",
    "int16": "SMALLINT",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool_": "BOOLEAN",
}


def _from_lists(sql: str, name: str, batch: Batch) -> str:
    """Return ``sql`` reading ``batch`` from one list parameter per column instead of the relation ``name``.

    ``FROM <name>`` (once in every statement of :func:`_insert_sql`) becomes ``FROM (SELECT unnest($1::T1[]) AS c1,
    ...) AS <name>``: DuckDB's ``unnest`` of several lists in one ``SELECT`` zips them (all are as long as the batch),
    and each list is cast to its column's type, so a value out of range fails the statement as Arrow's conversion
    would. One statement: no temporary table to create and drop (about 0.9 ms of CPU a flush).

    Raises:
        ValueError: ``sql`` does not read ``name`` exactly once.

    """
    cols = ", ".join(f"unnest(${i}::{_SQL_TYPES[t]}[]) AS {c}" for i, (c, t, _) in enumerate(batch, 1))
    source = f"FROM {name}"
    if sql.count(source) != 1:
        raise ValueError(f"the statement does not read {name} once: {sql[:200]}")
    return sql.replace(source, f"FROM (SELECT {cols}) AS {name}")


def _sift(columns: Sequence[tuple[str, Any]], rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int]:
    """Split ``rows`` into those that convert to Arrow and the count of those that do not (by bisection)."""
    if not rows:
        return rows, 0
    arrow_layer()  # ImportError propagates: without Arrow no row can be told unstorable (none is dropped)
    try:
        _arrow(columns, rows, 0)
        return rows, 0
    except Exception:
        if len(rows) == 1:
            return [], 1
    mid = len(rows) // 2
    a, x = _sift(columns, rows[:mid])
    b, y = _sift(columns, rows[mid:])
    return a + b, x + y


#: Set the tail offset of a file the table holds (the columns a path's ``INSERT OR REPLACE`` would set); an
#: ``UPDATE`` of one row binds in about a quarter of the time of an upsert on the primary key (issue 12).
_UPDATE_OFFSET_SQL = 'UPDATE tail_offsets SET inode = ?, "offset" = ?, updated_ns = ? WHERE path = ? RETURNING path'


def _save_offsets(con: duckdb.DuckDBPyConnection, offsets: dict[str, tuple[int, int]], now_ns: int) -> None:
    """Store ``{path: (inode, offset)}`` in ``tail_offsets`` in the caller's transaction, as an upsert would.

    Each path is updated; the paths no row was found for (a file seen for the first time) are inserted.
    """
    new = []
    for path, (inode, offset) in offsets.items():
        if not con.execute(_UPDATE_OFFSET_SQL, (inode, offset, now_ns, path)).fetchall():
            new.append((path, inode, offset, now_ns))
    if new:
        con.executemany("INSERT INTO tail_offsets VALUES (?,?,?,?)", new)


class Writer:
    """Own the DuckDB file: migrate it, batch rows into it, prune it, and answer read-only queries.

    Args:
        path: the DuckDB file (created with its directory).
        max_bytes: size cap of the store in bytes (0: none).
        on_logs: called with each committed batch of log rows (for derived metrics).
        on_spans: called with each committed batch of span rows.
        on_written: called with ``(table, n)`` after each commit.
        on_pruned: called with ``(table, n)`` after the size cap deleted rows.
        on_dropped: called with ``(table, n)`` when rows that cannot be stored (a value out of range for
            its column) were dropped; the other rows of the batch are kept.
        on_deduplicated: called with the count of log records dropped as copies (see :meth:`_dedupe`).
        memory_limit: DuckDB's ``memory_limit`` (``"128MB"``; default :data:`MEMORY_LIMIT`).

    Raises:
        duckdb.Error: the file cannot be opened (e.g. another process holds it).

    """

    def __init__(
        self,
        path: Path,
        max_bytes: int = 0,
        on_logs: Callable[[list[tuple[Any, ...]]], None] | None = None,
        on_spans: Callable[[list[tuple[Any, ...]]], None] | None = None,
        on_written: Callable[[str, int], None] | None = None,
        on_pruned: Callable[[str, int], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
        on_deduplicated: Callable[[int], None] | None = None,
        memory_limit: str = MEMORY_LIMIT,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.memory_limit = memory_limit
        self.max_bytes = max_bytes
        self.temp_dir = path.parent / "tmp"
        self.con = self._connect()
        self._on_logs = on_logs
        self._on_spans = on_spans
        self._on_written = on_written
        self._on_pruned = on_pruned
        self._on_dropped = on_dropped
        self._on_deduplicated = on_deduplicated
        # (service, trace id, message's first line) -> (source, span id) of the log records seen lately; see _dedupe
        # (source, span id, lowest seq the record can have) per key
        self._recent: OrderedDict[tuple[str, str, str], tuple[str, str | None, int]] = OrderedDict()
        # (service, trace id, first line, span id, lowest seq): span ids learnt from a dropped copy; see _dedupe
        self._span_fills: list[tuple[str, str, str, str, int]] = []
        self._cv = threading.Condition()
        self._slots = threading.BoundedSemaphore(QUERY_SLOTS)
        self._inflight = 0  # rows of the flush under way
        self._logs: list[tuple[Any, ...]] = []
        self._spans: list[tuple[Any, ...]] = []
        self._offsets: dict[str, tuple[int, int]] = {}
        self._first_at: float | None = None  # monotonic time the oldest queued row arrived (None: none queued)
        self._offsets_at: float | None = None  # the same for tail offsets queued without rows
        self._last_flush = 0.0  # monotonic time the last flush took its rows
        self._stop = False
        self._seq = {
            t: int(self.con.execute(f"SELECT coalesce(max(seq), -1) + 1 FROM {t}").fetchone()[0])  # type: ignore[index]  # noqa: S608
            for t in ("logs", "spans")
        }
        self._insert = {"logs": _insert_sql("logs", LOG_COLUMNS), "spans": _insert_sql("spans", SPAN_COLUMNS)}
        self._insert_templated = _insert_sql("logs", LOG_COLUMNS, template_given=True)
        self._insert_grouped = _insert_sql("logs", LOG_COLUMNS, template_given=True, group_given=True)
        # the words of the rows just inserted (read back: has_exception tells which need their attributes)
        self._insert_words = insert_words_sql(
            f"(SELECT seq, {INDEXED_TEXT} AS text FROM logs WHERE seq >= $1 AND indexed)"  # noqa: S608
        )
        #: (level, service, template) -> its committed ``log_groups.id``; emptied when ids can change (prune,
        #: reopen). ``_learned``: the pairs a flush under way found, kept once it commits.
        self._group_ids: dict[tuple[str, str, str], int] = {}
        self._learned: list[tuple[tuple[str, str, str], int]] = []
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._last_prune = time.monotonic()
        self.used_bytes = self._used_bytes()
        self.flush_error = ""
        #: Why the store cannot be written now (``""``: healthy). One line.
        self.error = ""
        self._failures = 0
        self._plain_rows = 0  # rows flushed without the Arrow layer (see ARROW_AFTER_ROWS)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the store (:meth:`_connect_once`), waiting up to :data:`LOCK_WAIT_S` while a reader holds it.

        A CLI command reads the file itself while the collector is not answering, as between its kill and its
        restart; DuckDB's lock then makes the restarting collector's open fail. Rather than exit (a failed start
        and a restart with back-off), the collector says so in one line and retries every
        :data:`LOCK_RETRY_S` (tenacity) until the reader is done.

        Raises:
            duckdb.Error: the file cannot be opened, or is still held after :data:`LOCK_WAIT_S` seconds.

        """
        waited: list[BaseException] = []

        def on_wait(exc: BaseException) -> None:
            waited.append(exc)
            print(
                f"collector: the store is held by another process ({' '.join(str(exc).split())[:160]}): "
                f"waiting up to {LOCK_WAIT_S:g} s",
                file=sys.stderr,
                flush=True,
            )

        con = retry_while_held(self._connect_once, held_by_another, LOCK_WAIT_S, LOCK_RETRY_S, on_wait)
        if waited:
            print("collector: the store is free: opened", file=sys.stderr, flush=True)
        return con

    def _connect_once(self) -> duckdb.DuckDBPyConnection:
        # A bounded buffer pool keeps the collector's RSS bounded; larger work spills to temp files.
        con = connect_file(
            self.path,
            log=lambda line: print(f"collector: {line}", file=sys.stderr, flush=True),
            config={
                "memory_limit": self.memory_limit,
                "threads": str(THREADS),
                "temp_directory": str(self.temp_dir),
                # DuckDB's allocator keeps what a query freed until a flush; this thread returns it to the
                # system within about a second (about 10 MB after the queries over a 1M-line store), at no
                # measurable idle CPU (issue 12)
                "allocator_background_threads": True,
            },
        )
        try:
            migrate(con)
            # a group another writer added to log_groups since (without its words) could be met by the next rows
            con.execute(MISSING_GROUP_WORDS_SQL).fetchall()
            lock_down(con)
        except BaseException:
            con.close()
            raise
        return con

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Return the persisted ``{path: (inode, offset)}`` of the tailed files."""
        rows = self.con.execute('SELECT path, inode, "offset" FROM tail_offsets').fetchall()
        return {p: (int(i), int(o)) for p, i, o in rows}

    def start(self) -> None:
        """Start the flush thread."""
        self._thread.start()

    @property
    def pending(self) -> int:
        """Rows accepted and not yet committed: queued, plus those of a flush under way (or being retried)."""
        return self._queued() + self._inflight

    def _queued(self) -> int:
        return len(self._logs) + len(self._spans)

    def has_room(self, n: int) -> bool:
        """Whether :meth:`add` would take ``n`` rows now without ``block`` (a hint: another thread may add first)."""
        queued = self._queued()
        return not (queued + n > MAX_PENDING and queued) and not self._stop and not self.error

    def add(
        self,
        table: str,
        rows: list[tuple[Any, ...]],
        offsets: dict[str, tuple[int, int]] | None = None,
        block: bool = False,
    ) -> bool:
        """Queue rows of ``logs`` or ``spans`` (store column order, without ``seq``) and tail offsets.

        Args:
            table: ``logs`` or ``spans``.
            rows: the rows.
            offsets: ``{path: (inode, offset)}`` to commit with these rows.
            block: wait for room instead of refusing when :data:`MAX_PENDING` rows wait.

        Returns:
            False when refused (nothing was queued): no room, the writer is closing, or :attr:`error` is
            set (unless ``block``). True means the rows will be committed before :meth:`close` returns.

        """
        with self._cv:
            while self._queued() + len(rows) > MAX_PENDING and self._queued() and not self._stop:
                if not block:
                    return False
                self._cv.wait(0.5)
            if self._stop or (self.error and not block):
                return False  # closing (nothing more gets flushed), or the store is failing
            if table == "logs":  # under the lock: the order of dedupe is the order of the queue
                rows = self._dedupe(rows)
            (self._logs if table == "logs" else self._spans).extend(rows)
            if offsets:
                self._offsets.update(offsets)
            if self._first_at is None and (rows or self._span_fills):
                self._first_at = time.monotonic()
                self._cv.notify_all()  # the writer sleeps while nothing is queued: start the flush timer
            elif self._first_at is None and self._offsets_at is None and offsets:
                self._offsets_at = time.monotonic()
                self._cv.notify_all()
            elif self._queued() >= FLUSH_ROWS:
                self._cv.notify_all()
        return True

    def _dedupe(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Drop log records already stored from another source (an app that logs to stdout and OTLP).

        Two records are the same event when service, trace id and the message's first line are equal, they
        came by different sources (``stdout`` vs ``otlp``), and their span ids are equal or one of them has
        none (a text format such as ``<time> ERROR <logger> trace_id=<id> <message>`` often prints only the
        trace id); the first to arrive is kept. When the kept record has no span id and its copy has one, the
        copy's span id is written into the kept record at the next flush (:meth:`flush`), so that ``legible
        trace`` shows it under its span. Records without a trace id are never merged. The count goes to
        ``on_deduplicated`` (``legible_collector_deduplicated_logs_total``). At most :data:`DEDUPE_KEYS`
        recent keys are remembered. Called with ``_cv`` held.
        """
        if not any(map(_TRACE_ID, rows)):  # nothing to merge (most stdout lines): no loop in Python
            return rows
        keep = []
        recent = self._recent
        for r in rows:
            trace_id = r[10]
            if not trace_id:
                keep.append(r)
                continue
            span_id, source, body = r[11], r[12], r[6]
            if not isinstance(body, str):
                body = str(body or "")
            nl = body.find("\n")
            key = (r[2] or "", trace_id, (body if nl < 0 else body[:nl]).strip())
            seen = recent.get(key)
            if seen is not None and seen[0] != source and (seen[1] == span_id or not seen[1] or not span_id):
                if span_id and not seen[1]:  # the kept record learns its span id
                    self._span_fills.append((*key, span_id, seen[2]))
                    recent[key] = (seen[0], span_id, seen[2])
                continue
            recent[key] = (source, span_id, self._seq["logs"])  # the record's seq will be at least this
            recent.move_to_end(key)
            keep.append(r)
        while len(recent) > DEDUPE_KEYS:
            recent.popitem(last=False)
        if len(keep) != len(rows) and self._on_deduplicated:
            self._on_deduplicated(len(rows) - len(keep))
        return keep

    def _due(self) -> float | None:
        """Monotonic time of the next flush (``None``: nothing queued). Called with ``_cv`` held.

        ``max(first + GATHER_S, last flush + FLUSH_EVERY_S)``, where ``first`` is when the oldest queued row
        arrived: never more than :data:`FLUSH_EVERY_S` after it (the deadline), every :data:`FLUSH_EVERY_S`
        under a steady stream (batches as large as before), and :data:`GATHER_S` after the first rows of a
        trickle. Tail offsets queued without rows wait up to :data:`OFFSETS_LAG_S` for a flush.
        """
        if self._first_at is None:
            return None if self._offsets_at is None else self._offsets_at + OFFSETS_LAG_S
        return max(self._first_at + GATHER_S, self._last_flush + FLUSH_EVERY_S)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and self._queued() < FLUSH_ROWS:
                    due = self._due()
                    if due is None:  # nothing queued: sleep until add() brings rows (or the prune check)
                        if not self._cv.wait(PRUNE_EVERY_S if self.max_bytes else None):
                            break
                        continue
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                stopping = self._stop
            self.flush()
            if stopping:
                self._drain()
                return
            if self.max_bytes and time.monotonic() - self._last_prune >= PRUNE_EVERY_S:
                self._last_prune = time.monotonic()
                try:
                    self.prune()
                except _db.Error as e:
                    print(f"collector: prune failed: {e}", file=sys.stderr)

    def _drain(self, attempts: int = 5) -> None:
        """Flush until nothing is queued (``add`` refuses once stopping); report what could not be written."""
        for _ in range(attempts):
            with self._cv:
                if not (self._logs or self._spans or self._offsets):
                    return
            self.flush()
        with self._cv:
            lost = self.pending
        if lost:
            print(f"collector: {lost} accepted rows could not be written: {self.error}", file=sys.stderr, flush=True)

    def flush(self) -> None:
        """Commit everything queued now, in one transaction; on failure the rows stay queued."""
        with self._cv:
            logs, spans, offsets, fills = self._logs, self._spans, self._offsets, self._span_fills
            self._logs, self._spans, self._offsets, self._span_fills = [], [], {}, []
            self._first_at, self._offsets_at, self._last_flush = None, None, time.monotonic()
            self._inflight = len(logs) + len(spans)
            self._cv.notify_all()
        if not (logs or spans or offsets or fills):
            return
        con = self.con
        self._learned = []
        try:
            con.execute("BEGIN TRANSACTION").fetchall()
            for table, rows, columns in (("logs", logs, LOG_COLUMNS), ("spans", spans, SPAN_COLUMNS)):
                if rows and self._insert_rows(table, rows, columns):
                    assign_groups(con, self._seq["logs"], keys_are_new=True)  # the join found no id for them
            if fills:
                con.executemany(_FILL_SPAN_SQL, [[sid, floor, svc, tid, line] for svc, tid, line, sid, floor in fills])
            if offsets:
                _save_offsets(con, offsets, time.time_ns())
            con.execute("COMMIT").fetchall()
        except Exception as e:
            try:
                con.execute("ROLLBACK").fetchall()
            except _db.Error:
                pass
            self.flush_error = " ".join(str(e).split())[:300]
            try:
                good_logs, bad_logs = _sift(LOG_COLUMNS, logs)
                good_spans, bad_spans = _sift(SPAN_COLUMNS, spans)
            except ImportError as e2:  # pyarrow is missing: keep every row, the flush failed
                self.flush_error = f"{self.flush_error} (and cannot import the Arrow layer: {e2})"
                good_logs, bad_logs, good_spans, bad_spans = logs, 0, spans, 0
            if bad_logs or bad_spans:  # drop the rows that cannot be stored, keep the rest
                print(f"collector: dropped {bad_logs + bad_spans} unstorable rows: {self.flush_error}", file=sys.stderr)
                if self._on_dropped:
                    self._on_dropped("logs", bad_logs)
                    self._on_dropped("spans", bad_spans)
            else:
                self._failed(e)
            with self._cv:  # put them back in front, keep newer offsets
                self._logs[:0] = good_logs
                self._spans[:0] = good_spans
                self._span_fills[:0] = fills
                self._offsets = {**offsets, **self._offsets}
                if self._first_at is None and (good_logs or good_spans or fills):
                    self._first_at = time.monotonic()  # retried at the next deadline
                elif self._first_at is None and self._offsets_at is None and offsets:
                    self._offsets_at = time.monotonic()
                self._inflight = 0
            return
        self._failures = 0
        self.error = ""
        self._remember_groups()
        self._seq["logs"] += len(logs)
        self._seq["spans"] += len(spans)
        self._inflight = 0
        for table, rows, cb in (("logs", logs, self._on_logs), ("spans", spans, self._on_spans)):
            if rows:
                if self._on_written:
                    self._on_written(table, len(rows))
                if cb:
                    cb(rows)

    def _insert_rows(self, table: str, rows: list[tuple[Any, ...]], columns: Sequence[tuple[str, Any]]) -> bool:
        """Insert ``rows`` of ``table`` numbered from its next ``seq``; return whether a log row got no group id.

        A log batch of at most :data:`PY_TEMPLATE_ROWS` rows brings its templates (:func:`template_of`), and
        its group ids too when :attr:`_group_ids` knows every key; otherwise the ``INSERT`` joins ``log_groups``
        and the ids it found are learnt (:meth:`_remember_groups`).
        """
        batch = _columns(columns, rows, self._seq[table])
        if table != "logs":
            self._run_insert(table, self._insert[table], batch)  # returns the count
            return False
        if len(rows) > PY_TEMPLATE_ROWS or not all(type(r[6]) is str for r in rows):
            return any(new_key for new_key, _ in self._run_insert(table, self._insert[table], batch))
        templates = [template_of(r[6]) for r in rows]
        batch.append(("template", "string", templates))
        batch.append(("_covered", "bool_", [_covered_py(r[6], t) for r, t in zip(rows, templates, strict=True)]))
        known = self._group_ids
        try:
            ids = [known[(r[3], r[2], t)] for r, t in zip(rows, templates, strict=True)]
        except KeyError:
            inserted = self._run_insert("logs", self._insert_templated, batch)
            self._learned = [((level, service, t), gid) for level, service, t, gid, _ in inserted if gid is not None]
            return len(self._learned) < len(inserted)
        self._run_insert("logs", self._insert_grouped, [*batch, ("group_id", "int32", ids)])
        return False

    def _run_insert(self, table: str, sql: str, batch: Batch) -> list[tuple[Any, ...]]:
        """Run ``sql`` on ``batch`` (as ``_batch_<table>``); for ``logs``, add the rows' words to the word index.

        ``batch`` is ``[(column, Arrow type name, values)]``. Once pyarrow is imported (:func:`arrow_layer`, see
        :data:`ARROW_ROWS`) it is an Arrow table the connection scans (``register``); before, the columns are bound
        as list parameters of the statement itself (:func:`_from_lists`), which DuckDB's engine alone can do. The
        rows stored are the same (``tests/test_collector_start.py`` compares both).

        The words (:func:`legible.store.insert_words_sql`) of the rows marked ``indexed`` (not covered by their
        template's words) are computed by DuckDB in the same transaction, so a committed row always has its
        postings and a failed flush leaves neither; a batch of covered rows only skips that statement.
        """
        name = f"_batch_{table}"
        rows = len(batch[0][2])
        arrow = _arrow_module is not None or rows > ARROW_ROWS or self._plain_rows + rows > ARROW_AFTER_ROWS
        if arrow:
            self.con.register(name, _table(batch))
            inserted = self.con.execute(sql).fetchall()
        else:
            inserted = self.con.execute(_from_lists(sql, name, batch), [list(v) for _, _, v in batch]).fetchall()
            self._plain_rows += rows
        if table == "logs" and any(r[-1] for r in inserted):  # some row is not covered by its template
            self.con.execute(self._insert_words, [self._seq["logs"]]).fetchall()
        # not in a finally: after a failed statement the transaction is aborted and unregister would raise, hiding
        # the cause (Out of Memory...); the next register replaces the view
        if arrow:
            self.con.unregister(name)
        return inserted

    def _remember_groups(self) -> None:
        """Keep the group ids the committed flush learnt, at most :data:`GROUP_IDS_KEPT` (the oldest leave)."""
        known = self._group_ids
        known.update(self._learned)
        self._learned = []
        while len(known) > GROUP_IDS_KEPT:
            del known[next(iter(known))]

    def _failed(self, e: Exception) -> None:
        """Record a failed flush; after a fatal error or :data:`FAILURES_UNHEALTHY` in a row, reopen the file."""
        self._failures += 1
        fatal = isinstance(e, _db.FatalException) or "invalidated" in str(e)
        print(f"collector: flush failed, will retry: {self.flush_error}", file=sys.stderr, flush=True)
        if fatal or self._failures >= FAILURES_UNHEALTHY:
            self.error = f"store write failed: {self.flush_error}"
            self._group_ids.clear()  # known again from the file after the reopen
            try:  # a fatal error invalidates the database instance: open it again (committed rows are safe)
                self.con.close()
            except _db.Error:
                pass
            try:
                self.con = self._connect()
            except Exception as e2:
                self.error = f"store write failed, cannot reopen it: {' '.join(str(e2).split())[:200]}"
        if not self._stop:  # back off, except in the last flushes before exit
            time.sleep(min(0.2 * self._failures, 2.0))

    def _used_bytes(self) -> int:
        row = self.con.execute("SELECT block_size * used_blocks, wal_size FROM pragma_database_size()").fetchone()
        if row is None:
            return 0
        wal = row[1]
        wal_bytes = _parse_size(wal) if isinstance(wal, str) else int(wal or 0)
        return int(row[0] or 0) + wal_bytes

    def prune(self) -> int:
        """Delete the oldest rows until the store fits ``max_bytes``; return rows deleted."""
        self.used_bytes = self._used_bytes()
        deleted = 0
        for _ in range(10):
            if not self.max_bytes or self.used_bytes <= self.max_bytes:
                break
            for table in ("logs", "spans"):
                lo, n = self.con.execute(f"SELECT min(seq), count(*) FROM {table}").fetchone()  # type: ignore[misc]  # noqa: S608
                if not n:
                    continue
                cut_seq = lo + max(1, n // 5)
                k = self._delete_below(table, cut_seq)
                deleted += k
                if self._on_pruned:
                    self._on_pruned(table, k)
            # the groups no line refers to any more leave the dictionary (a key seen again gets a new id)
            self.con.execute(
                "DELETE FROM log_groups WHERE id NOT IN (SELECT group_id FROM logs WHERE group_id IS NOT NULL)"
            ).fetchall()
            self.con.execute(  # and their template words
                "DELETE FROM log_group_words WHERE group_id NOT IN (SELECT id FROM log_groups)"
            ).fetchall()
            self._group_ids.clear()
            self.con.execute("CHECKPOINT").fetchall()
            self.used_bytes = self._used_bytes()
        return deleted

    def _delete_below(self, table: str, cut_seq: int) -> int:
        """Delete the rows of ``table`` with ``seq < cut_seq``, and for ``logs`` their word index postings.

        One transaction: the postings go with their rows (a ``log_words`` list may straddle the cut: it keeps the
        ``seq`` at or above it). Returns the count of rows deleted.
        """
        con = self.con
        con.execute("BEGIN TRANSACTION").fetchall()
        try:
            gone = con.execute(f"DELETE FROM {table} WHERE seq < ?", [cut_seq]).fetchone()  # noqa: S608
            if table == "logs":
                con.execute("DELETE FROM log_words WHERE last_seq < ?", [cut_seq]).fetchall()
                con.execute(
                    "UPDATE log_words SET seqs = list_filter(seqs, lambda s: s >= $1), "
                    "n = len(list_filter(seqs, lambda s: s >= $1)) WHERE seqs[1] < $1",
                    [cut_seq],
                ).fetchall()
            con.execute("COMMIT").fetchall()
        except BaseException:
            con.execute("ROLLBACK").fetchall()
            raise
        return int(gone[0]) if gone else 0

    def query(
        self, sql: str, params: Any = None, max_rows: int = 10_000, timeout: float = QUERY_TIMEOUT_S
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """Run one read-only query on a fresh cursor (see :func:`legible.store.run_query`).

        At most :data:`QUERY_SLOTS` queries run at once (the others wait for a slot, up to ``timeout``), and
        a query still running after ``timeout`` seconds is interrupted, so queries cannot starve the writer.

        Raises:
            UsageError: not read-only, rejected by DuckDB, interrupted, or no slot within ``timeout``.

        """
        if not self._slots.acquire(timeout=timeout):
            raise UsageError(f"SQL: the store is busy ({QUERY_SLOTS} queries running)", hint="retry in a moment")
        try:
            cur = self.con.cursor()
            timer = threading.Timer(timeout, cur.interrupt)
            timer.daemon = True
            timer.start()
            try:
                return run_query(cur, sql, params, max_rows)
            finally:
                timer.cancel()
                cur.close()
        finally:
            self._slots.release()

    def close(self, timeout: float = 60.0) -> None:
        """Refuse new rows, write every queued one, checkpoint and close the file.

        Args:
            timeout: seconds to wait for the flush thread to write what is queued.

        """
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        else:
            self._drain()
        try:
            self.con.execute("CHECKPOINT").fetchall()
        except _db.Error:
            pass
        self.con.close()


def _parse_size(text: str) -> int:
    units = {
        "bytes": 1,
        "KiB": 1 << 10,
        "MiB": 1 << 20,
        "GiB": 1 << 30,
        "TiB": 1 << 40,
        "KB": 1000,
        "MB": 10**6,
    }
    parts = text.split()
    try:
        return int(float(parts[0]) * units.get(parts[1], 1)) if len(parts) == 2 else int(float(parts[0]))
    except (ValueError, IndexError):
        return 0
