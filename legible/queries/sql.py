"""The ``--sql`` escape hatch of ``legible logs`` and ``legible traces``: one read-only statement, bounded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from legible.queries._fmt import align, fmt_count, one_line

if TYPE_CHECKING:
    from legible.store import QueryResult, Store

__all__ = ["render_sql", "run_sql", "sql_json"]


def run_sql(store: Store, sql: str, max_rows: int = 10_000) -> QueryResult:
    """Run one read-only statement over the store's tables (``docs/store.md``).

    Args:
        store: the worktree's store.
        sql: ``SELECT`` / ``WITH`` / ``EXPLAIN`` / ``DESCRIBE`` / ``SHOW`` / ``SUMMARIZE``.
        max_rows: row cap (the store caps at 10,000).

    Raises:
        UsageError: not one read-only statement, or DuckDB rejected it (its message, one line).
        NotRunning: there is no store yet.

    """
    return store.query(sql, max_rows=max_rows)


def _cell(v: Any, width: int) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (dict, list)):
        v = json.dumps(v, separators=(",", ":"))
    return one_line(str(v), width)


def render_sql(res: QueryResult, limit: int = 40, width: int = 120) -> list[str]:
    """Render a result as aligned columns: ``limit`` rows, cells cut at ``width`` characters, a cut line."""
    shown = res.rows[:limit]
    rows = [[_cell(v, width) for v in r] for r in shown]
    out = align([list(res.columns), *rows]) if res.columns else []
    hidden = len(res.rows) - len(shown)
    if hidden > 0 or res.truncated:
        more = f"{fmt_count(hidden)}{'+' if res.truncated else ''}"
        out.append(f"… {more} more rows: --limit {max(2 * limit, 100)}, add LIMIT/WHERE, or --json")
    elif not res.rows:
        out.append("(0 rows)")
    return out


def sql_json(res: QueryResult, schema: str) -> dict[str, Any]:
    """The ``--sql --json`` document: ``{"schema", "columns", "rows", "truncated"}``."""
    return {"schema": schema, "columns": res.columns, "rows": [list(r) for r in res.rows],
            "truncated": res.truncated}
