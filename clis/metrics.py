"""``legible metrics 'PROMQL'`` and ``legible metrics list [PATTERN]``: thin over legible.queries.metrics.

Options are parsed with argparse for a fast start (see :mod:`clis._argparse`).
"""

from __future__ import annotations

import argparse

import typer

from clis._argparse import ArgParser, print_lines, register_argparse_command
from clis._output import emit_json, errors_to_exit

HELP = (
    "Query the stack's VictoriaMetrics with PromQL: instant, or --range 10m [--step 15s] with a "
    "sparkline per series; `legible metrics list [PATTERN]` lists metric names, types and series."
)

EPILOG = """examples:
  legible metrics list span
  legible metrics 'histogram_quantile(0.99, sum by (le)
      (rate(legible_span_duration_seconds_bucket{span_name="GET /slow"}[5m])))'
  legible metrics 'sum by (span_name) (rate(legible_span_duration_seconds_count[1m]))' --range 15m
"""


def build_parser() -> ArgParser:
    """The options of ``legible metrics``."""
    p = ArgParser(
        prog="legible metrics", description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("query", metavar="PROMQL", help="a PromQL query, or 'list' to list metric names")
    p.add_argument("pattern", nargs="?", metavar="PATTERN", help="with list: regex or substring of the names")
    p.add_argument("--range", dest="range_", metavar="DURATION", help="range query over the last 10m, 1h, ...")
    p.add_argument("--step", metavar="DURATION", help="range step (default: range / 60, at least 1s)")
    p.add_argument("--limit", "-n", type=int, help="series shown (default 20) or metrics listed (default 40)")
    p.add_argument("--json", action="store_true", help="one JSON document (schema legible.metrics/v1)")
    return p


def run_metrics(ns: argparse.Namespace) -> None:
    """Run ``legible metrics`` with parsed options ``ns``."""
    from legible._errors import UsageError
    from legible.queries import metrics as q
    from legible.queries._fmt import parse_duration
    from legible.queries._source import metrics_url
    from legible.queries.logs import parse_limit

    with errors_to_exit(ns.json):
        if ns.query == "list":
            url = metrics_url()
            res = q.list_metrics(url, ns.pattern)
            n = parse_limit(ns.limit, 40)
            emit_json(res.to_json()) if ns.json else print_lines(q.render_list(res, n))
            return
        if ns.pattern is not None:
            raise UsageError(f"unexpected argument {ns.pattern!r}", hint="quote the PromQL query as one argument")
        range_s = parse_duration(ns.range_, what="--range") if ns.range_ else None
        step_s = parse_duration(ns.step, what="--step") if ns.step else None
        if step_s is not None and range_s is None:
            raise UsageError("--step needs --range", hint="e.g. --range 10m --step 15s")
        if range_s is not None and range_s <= 0 or step_s is not None and step_s <= 0:
            raise UsageError("--range and --step must be positive", hint="e.g. --range 10m --step 15s")
        n = parse_limit(ns.limit, 20)
        mres = q.query(metrics_url(), ns.query, range_s, step_s)
        emit_json(mres.to_json()) if ns.json else print_lines(q.render_metrics(mres, n))


def register(app: typer.Typer) -> None:
    """Add ``legible metrics`` to ``app``."""
    register_argparse_command(app, "metrics", build_parser, run_metrics, HELP)
