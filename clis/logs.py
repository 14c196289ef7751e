"""``legible logs``: grouped, raw, followed or SQL views of the worktree's logs (thin over legible.queries.logs).

Options are parsed with argparse for a fast start (see :mod:`clis._argparse`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import typer

from clis._argparse import ArgParser, print_lines, register_argparse_command
from clis._output import emit_json, errors_to_exit

HELP = (
    "Show this worktree's logs: groups of similar lines (errors first) with counts and an example, "
    "or --raw lines, --follow, --sql. Default window: the last 15m."
)

EPILOG = """examples:
  legible logs --level error            error groups with their trace ids
  legible logs --grep timeout --raw     matching lines, newest last
  legible logs --attr http.route=/error --since 1h
  legible logs --sql "SELECT level, count(*) FROM logs GROUP BY ALL"
"""


def build_parser() -> ArgParser:
    """The options of ``legible logs``."""
    p = ArgParser(
        prog="legible logs", description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--since", default="15m", help="window start: 5m, 2h, 14:03, ISO 8601, or 'all' (default 15m)")
    p.add_argument("--until", help="window end, same forms (default: now)")
    p.add_argument("--service", "-s", action="append", default=[], help="only these services (repeatable, or a,b)")
    p.add_argument("--level", "-l", help="at or above this level: warn includes error and fatal")
    p.add_argument("--grep", "-g", help="case-insensitive substring of the message")
    p.add_argument("--regex", "-e", help="regular expression (RE2) searched in the message")
    p.add_argument(
        "--attr",
        "-a",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="attribute (or resource attribute) equals value (repeatable)",
    )
    p.add_argument("--trace-id", "-t", help="only lines of this trace (id or hex prefix)")
    p.add_argument("--raw", action="store_true", help="plain lines, newest last, instead of groups")
    p.add_argument(
        "--fields",
        help="raw columns, default ts,level,service,body (also time, trace_id, "
        "span_id, source, template, severity, attributes, attr.KEY)",
    )
    p.add_argument("--follow", "-f", action="store_true", help="print new lines as they arrive (Ctrl-C stops)")
    p.add_argument("--limit", "-n", type=int, help="groups (default 30), raw lines (default 40), sql rows (40)")
    p.add_argument("--sql", help="run one read-only SELECT over the store's tables (docs/store.md)")
    p.add_argument("--json", action="store_true", help="one JSON document (schema legible.logs/v1)")
    return p


def run_logs(ns: argparse.Namespace) -> None:
    """Run ``legible logs`` with parsed options ``ns``."""
    from legible.queries import logs as q
    from legible.queries._source import store_opener

    with errors_to_exit(ns.json):
        opener = store_opener()
        if ns.sql:
            from legible.queries.sql import render_sql, run_sql, sql_json

            n = q.parse_limit(ns.limit, 40)
            res = run_sql(opener(), ns.sql)
            emit_json(sql_json(res, "legible.sql/v1")) if ns.json else print_lines(render_sql(res, n))
            return
        flt = q.make_filter(ns.since, ns.until, ns.service, ns.level, ns.grep, ns.regex, ns.attr, ns.trace_id)
        fields = q.parse_fields(ns.fields)
        if ns.follow:
            _follow(q, opener, flt, fields, q.parse_limit(ns.limit, 10))
            return
        store = opener()
        if ns.raw:
            n = q.parse_limit(ns.limit, 40)
            lines = q.log_lines(store, flt, n, fields)
            emit_json(lines.to_json()) if ns.json else print_lines(q.render_lines(lines, n))
            return
        n = q.parse_limit(ns.limit, 30)
        groups = q.log_groups(store, flt, n)
        emit_json(groups.to_json()) if ns.json else print_lines(q.render_groups(groups, n))


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
    register_argparse_command(app, "logs", build_parser, run_logs, HELP)
