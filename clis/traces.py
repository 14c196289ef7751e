"""``legible traces`` (the trace list) and ``legible trace ID`` (one trace as a tree): thin over legible.queries.

Options are parsed with argparse for a fast start (see :mod:`clis._argparse`).
"""

from __future__ import annotations

import argparse

import typer

from clis._argparse import ArgParser, print_lines, register_argparse_command
from clis._output import emit_json, errors_to_exit

TRACES_HELP = (
    "List recent traces (root span, service, start, duration, span count, errors), or the "
    "--slowest N; filter by --service, --name, --min-duration, --errors. Default window: 1h."
)
TRACE_HELP = (
    "Show one trace as an indented tree: durations, offsets, status, key attributes, exceptions "
    "and the log lines under their spans. ID: the trace id or a unique prefix (>= 6 hex)."
)


def build_traces_parser() -> ArgParser:
    """The options of ``legible traces``."""
    p = ArgParser(
        prog="legible traces",
        description=TRACES_HELP,
        epilog="examples:\n  legible traces --errors\n  legible traces --slowest 10 --since 10m\n"
        '  legible traces --sql "SELECT name, quantile_cont(duration_ms, 0.99) FROM spans '
        'GROUP BY name"',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--since", default="1h", help="window start: 5m, 2h, 14:03, ISO 8601, or 'all' (default 1h)")
    p.add_argument("--until", help="window end, same forms (default: now)")
    p.add_argument("--slowest", type=int, metavar="N", help="the N longest traces, longest first")
    p.add_argument("--errors", action="store_true", help="only traces with an error span")
    p.add_argument("--service", "-s", action="append", default=[], help="traces touching this service (repeatable)")
    p.add_argument("--name", help="traces with a span whose name contains this (case-insensitive)")
    p.add_argument("--min-duration", help="traces at least this long: 500ms, 2s")
    p.add_argument("--limit", "-n", type=int, help="traces shown (default 20), or sql rows (default 40)")
    p.add_argument("--sql", help="run one read-only SELECT over the store's tables (docs/store.md)")
    p.add_argument("--json", action="store_true", help="one JSON document (schema legible.traces/v1)")
    return p


def build_trace_parser() -> ArgParser:
    """The options of ``legible trace ID``."""
    p = ArgParser(prog="legible trace", description=TRACE_HELP)
    p.add_argument("trace_id", metavar="ID", help="trace id, or a unique prefix of at least 6 hex digits")
    p.add_argument("--limit", "-n", type=int, default=None, help="lines of tree shown (default 40)")
    p.add_argument("--json", action="store_true", help="the full tree as one JSON document (legible.trace/v1)")
    return p


def run_traces(ns: argparse.Namespace) -> None:
    """Run ``legible traces`` with parsed options ``ns``."""
    from legible.queries import traces as q
    from legible.queries._source import worktree_store
    from legible.queries.logs import parse_limit

    with errors_to_exit(ns.json):
        store = worktree_store()
        if ns.sql:
            from legible.queries.sql import render_sql, run_sql, sql_json

            res = run_sql(store, ns.sql)
            n = parse_limit(ns.limit, 40)
            emit_json(sql_json(res, "legible.sql/v1")) if ns.json else print_lines(render_sql(res, n))
            return
        flt = q.make_trace_filter(ns.since, ns.until, ns.service, ns.name, ns.min_duration, ns.errors)
        if ns.slowest is not None:
            n = parse_limit(ns.slowest, 10)
        else:
            n = parse_limit(ns.limit, 20)
        res = q.list_traces(store, flt, n, slowest=ns.slowest is not None)
        emit_json(res.to_json()) if ns.json else print_lines(q.render_traces(res, n))


def run_trace(ns: argparse.Namespace) -> None:
    """Run ``legible trace ID`` with parsed options ``ns``."""
    from legible.queries import traces as q
    from legible.queries._source import worktree_store
    from legible.queries.logs import parse_limit

    with errors_to_exit(ns.json):
        n = parse_limit(ns.limit, 40)
        tree = q.get_trace(worktree_store(), ns.trace_id)
        emit_json(tree.to_json()) if ns.json else print_lines(q.render_tree(tree, n))


def register(app: typer.Typer) -> None:
    """Add ``legible traces`` and ``legible trace`` to ``app``."""
    register_argparse_command(app, "traces", build_traces_parser, run_traces, TRACES_HELP)
    register_argparse_command(app, "trace", build_trace_parser, run_trace, TRACE_HELP)
