"""Proof bundles you can query: the run window's logs and spans as Parquet, and a store that reads them.

``legible proof`` calls :func:`write_signals`, which writes ``signals/logs.parquet`` and
``signals/spans.parquet`` into the bundle: the rows of the store's ``logs`` and ``spans`` tables
(``docs/store.md``) from the start of the run window, newest kept when there are more than
:data:`MAX_ROWS` per table, every text value passed through the bundle's redaction first. The Parquet
files are written by DuckDB (``COPY ... TO ... (FORMAT PARQUET)``, https://duckdb.org/docs/sql/statements/copy)
and listed in the manifest like every other file.

:func:`bundle_store` opens a bundle as a :class:`legible.store.Store` backed by an in-memory DuckDB whose
``logs`` and ``spans`` are views over those files (with the store's virtual ``ts``/``start_ts`` columns
and ``JSON`` columns restored), so ``legible logs|traces|trace --from BUNDLE_DIR`` answer with the same
queries and the same renderers, after ``legible down --purge`` or on another machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legible._errors import UsageError

if TYPE_CHECKING:
    from legible.store import Store

__all__ = ["MAX_ROWS", "SIGNALS_DIR", "bundle_end_ns", "bundle_store", "write_signals"]

#: The bundle's folder of Parquet files.
SIGNALS_DIR = "signals"
#: Rows kept per table (the newest); the manifest says when rows were left out.
MAX_ROWS = 10_000
#: Physical columns of each table (the virtual time columns are recomputed by the views), and its JSON ones.
_COLUMNS = {
    "logs": (
        "seq time_ns observed_ns service level severity_number severity_text body template attributes resource "
        "scope trace_id span_id source"
    ).split(),
    "spans": (
        "seq trace_id span_id parent_span_id trace_state service name kind start_ns end_ns duration_ms "
        "status_code status_message attributes resource scope events links exception_type exception_message "
        "received_ns"
    ).split(),
}
_TIME = {"logs": ("time_ns", "ts"), "spans": ("start_ns", "start_ts")}
_JSON = {"logs": ("attributes", "resource"), "spans": ("attributes", "resource", "events", "links")}
#: Store columns a bundle does not carry, as the views give them: ``logs.has_exception`` unknown (``NULL``), so
#: ``logs --grep`` tests the (redacted) attributes themselves (:data:`legible.store.HAS_EXCEPTION`), and
#: ``logs.group_id`` unknown (``NULL``, with an empty ``log_groups`` view), so ``legible logs`` groups on the strings.
_DERIVED = {"logs": ", NULL::BOOLEAN AS has_exception, NULL::INTEGER AS group_id, NULL::BOOLEAN AS indexed"}


def write_signals(store: Store, out: Path, since_ns: int, redact: Callable[[str], str]) -> dict[str, Any]:
    """Write the store's logs and spans since ``since_ns`` to ``out/logs.parquet`` and ``out/spans.parquet``.

    Args:
        store: the worktree's store (answered by the running collector, or its file).
        out: the bundle's ``signals`` folder (created).
        since_ns: the run window's start, nanoseconds since the Unix epoch.
        redact: applied to every text value before it is written (the bundle's redaction).

    Returns:
        ``{"logs": {"path", "rows", "total"}, "spans": {...}}``: rows written and rows in the window
        (``total > rows`` when the cap left the oldest out).

    Raises:
        UsageError, NotRunning: the store cannot be read (see :meth:`legible.store.Store.query`).

    """
    import duckdb
    import pyarrow as pa

    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    con = duckdb.connect(":memory:")
    try:
        from legible.store import migrate

        migrate(con)  # the store's own tables, so the Parquet files carry its column types
        for table, cols in _COLUMNS.items():
            time_col = _TIME[table][0]
            # one statement, so the count and the rows see the same snapshot of a store still being written
            got = store.query(
                f"SELECT {', '.join(cols)}, count(*) OVER () AS _total FROM {table} WHERE {time_col} >= ? "  # noqa: S608 - fixed names
                f"ORDER BY seq DESC LIMIT {MAX_ROWS}",
                [since_ns],
                max_rows=MAX_ROWS,
            )
            total = int(got.rows[0][-1]) if got.rows else 0
            got_cols = got.columns[:-1]
            rows = [
                {c: redact(v) if isinstance(v, str) else v for c, v in zip(got_cols, r[:-1], strict=True)}
                for r in got.rows
            ]
            arrow = pa.Table.from_pylist(rows, schema=None) if rows else None
            if arrow is not None:
                con.register("incoming", arrow)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")  # noqa: S608 - fixed table name
                con.unregister("incoming")
            path = out / f"{table}.parquet"
            con.execute(
                f"COPY (SELECT {', '.join(cols)} FROM {table} ORDER BY seq) TO ? (FORMAT PARQUET)",  # noqa: S608 - fixed names
                [str(path)],
            )
            result[table] = {"path": f"{out.name}/{path.name}", "rows": len(rows), "total": total}
    finally:
        con.close()
    return result


def bundle_store(bundle: Path) -> Store:
    """Return a read-only :class:`legible.store.Store` answering from ``bundle``'s Parquet files.

    Args:
        bundle: a proof bundle directory (``.legible/proof/<run-id>``), or its ``signals`` folder.

    Raises:
        UsageError: the directory holds no ``signals/logs.parquet`` and ``signals/spans.parquet``.

    """
    import duckdb

    from legible.store import EMPTY_LOG_GROUP_WORDS, EMPTY_LOG_GROUPS, EMPTY_LOG_WORDS, Store

    bundle = Path(bundle)
    folder = bundle if (bundle / "logs.parquet").is_file() else bundle / SIGNALS_DIR
    missing = [t for t in _COLUMNS if not (folder / f"{t}.parquet").is_file()]
    if missing:
        raise UsageError(
            f"{bundle} is not a queryable proof bundle (no {SIGNALS_DIR}/{missing[0]}.parquet)",
            hint="pass a directory written by `legible proof` (.legible/proof/<run-id>)",
        )
    con = duckdb.connect(":memory:")
    for table in _COLUMNS:
        time_col, virtual = _TIME[table]
        casts = ", ".join(f"{c}::JSON AS {c}" for c in _JSON[table])
        con.read_parquet(str(folder / f"{table}.parquet")).create_view(f"_{table}_parquet")
        con.execute(
            f"CREATE VIEW {table} AS SELECT * REPLACE ({casts}), "  # noqa: S608 - fixed names
            f"make_timestamp({time_col} // 1000) AS {virtual}{_DERIVED.get(table, '')} FROM _{table}_parquet"
        )
    con.execute(f"CREATE VIEW log_groups AS {EMPTY_LOG_GROUPS}")
    con.execute(f"CREATE VIEW log_words AS {EMPTY_LOG_WORDS}")
    con.execute(f"CREATE VIEW log_group_words AS {EMPTY_LOG_GROUP_WORDS}")
    return Store(path=folder, _con=con)


def bundle_end_ns(bundle: Path) -> int:
    """The end of ``bundle``'s run (its manifest's ``finished_at``), in nanoseconds since the Unix epoch.

    ``legible check --from`` ends the checks' ``since`` windows there, so "errors in the last 15m" means
    the 15 minutes before the run ended, not before now.

    Raises:
        UsageError: no readable ``manifest.json`` with ``finished_at``.

    """
    import datetime as dt
    import json

    try:
        doc = json.loads((Path(bundle) / "manifest.json").read_text())
        return int(dt.datetime.fromisoformat(doc["finished_at"]).timestamp() * 1e9)
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(
            f"{bundle} has no manifest.json with finished_at", hint="pass the bundle directory itself"
        ) from None
