"""``legible logs``: grouped, raw, followed or SQL views of the worktree's logs (thin over legible.queries.logs)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from ._output import emit_json, errors_to_exit, print_lines
from ._usage import Command

HELP = (
    "Show this worktree's logs: groups of similar lines (errors first) with counts and an example, "
    "or --raw lines, --follow, --sql. Default window: the last 15m."
)

#: ``\b`` keeps click from re-wrapping the examples.
EPILOG = """\b
examples:
  legible logs --level error            error groups with their trace ids
  legible logs --grep timeout --raw     matching lines, newest last
  legible logs --attr http.route=/error --since 1h
  legible logs --sql "SELECT level, count(*) FROM logs GROUP BY ALL"
"""


def logs(
    since: str = typer.Option(
        "15m",
        "--since",
        show_default=False,
        help="window start: 5m, 2h, 14:03, ISO 8601, 'all', or a deploy: deploy, deploy~1, deploy:7 (default 15m)",
    ),
    until: str | None = typer.Option(None, "--until", help="window end, same forms (default: now)"),
    service: list[str] = typer.Option([], "--service", "-s", help="only these services (repeatable, or a,b)"),
    level: str | None = typer.Option(
        None, "--level", "-l", help="at or above this level: warn includes error and fatal"
    ),
    grep: str | None = typer.Option(None, "--grep", "-g", help="case-insensitive substring of the message"),
    regex: str | None = typer.Option(None, "--regex", "-e", help="regular expression (RE2) searched in the message"),
    attr: list[str] = typer.Option(
        [], "--attr", "-a", metavar="KEY=VALUE", help="attribute (or resource attribute) equals value (repeatable)"
    ),
    trace_id: str | None = typer.Option(None, "--trace-id", "-t", help="only lines of this trace (id or hex prefix)"),
    raw: bool = typer.Option(False, "--raw", help="plain lines, newest last, instead of groups"),
    fields: str | None = typer.Option(
        None,
        "--fields",
        help="raw columns, default ts,level,service,body (also time, trace_id, "
        "span_id, source, template, severity, attributes, attr.KEY)",
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="print new lines as they arrive (Ctrl-C stops)"),
    limit: int | None = typer.Option(
        None, "--limit", "-n", help="groups (default 30), raw lines (default 40), sql rows (40)"
    ),
    sql: str | None = typer.Option(
        None, "--sql", help="run one read-only SELECT over the store's tables (docs/store.md)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.logs/v1)"),
) -> None:
    """Show this worktree's logs as groups of similar lines, raw lines, a follow, or the rows of one SELECT."""
    from legible.queries import logs as q
    from legible.queries._source import store_opener

    with errors_to_exit(as_json):
        opener = store_opener()
        if sql:
            from legible.queries.sql import render_sql, run_sql, sql_json

            n = q.parse_limit(limit, 40)
            res = run_sql(opener(), sql)
            emit_json(sql_json(res, "legible.sql/v1")) if as_json else print_lines(render_sql(res, n))
            return
        from ._deploy import deploy_window, label, stale_warning

        win_since, until, since_label, until_label = deploy_window(since, until)
        since = win_since or since
        flt = q.make_filter(since, until, service, level, grep, regex, attr, trace_id)
        label(flt, since_label, until_label)
        field_list = q.parse_fields(fields)
        if not follow:
            stale_warning(as_json)
        if follow:
            _follow(q, opener, flt, field_list, q.parse_limit(limit, 10))
            return
        store = opener()
        if raw:
            n = q.parse_limit(limit, 40)
            lines = q.log_lines(store, flt, n, field_list)
            emit_json(lines.to_json()) if as_json else print_lines(q.render_lines(lines, n))
            return
        n = q.parse_limit(limit, 30)
        groups = q.log_groups(store, flt, n)
        emit_json(groups.to_json()) if as_json else print_lines(q.render_groups(groups, n))


def _follow(q: Any, opener: Any, flt: Any, fields: list[str], n: int) -> None:
    """Print the last ``n`` lines, then new ones every 0.5 s until Ctrl-C (exit 0) or a closed pipe."""
    try:
        store = opener()
        first = q.log_lines(store, flt, n, fields)
        store.close()
        print_lines(
            [
                f"following {flt.describe(with_time=False)}; last {len(first.rows)} shown; Ctrl-C stops",
                *(ln for r in first.rows for ln in q.format_line(r, fields)),
            ]
        )
        sys.stdout.flush()
        for batch in q.follow(opener, flt, first.last_seq, fields):
            if batch:
                print_lines([ln for r in batch for ln in q.format_line(r, fields)])
                sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()


def register(app: typer.Typer) -> None:
    """Add ``legible logs`` to ``app``."""
    app.command("logs", cls=Command, help=HELP, epilog=EPILOG)(logs)
