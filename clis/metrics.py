"""``legible metrics 'PROMQL'`` and ``legible metrics list [PATTERN]``: thin over legible.queries.metrics."""

from __future__ import annotations

import typer

from ._output import emit_json, errors_to_exit, print_lines
from ._usage import Command

HELP = (
    "Query the stack's VictoriaMetrics with PromQL: instant, or --range 10m [--step 15s] with a "
    "sparkline per series; `legible metrics list [PATTERN]` lists metric names, types and series."
)

#: ``\b`` keeps click from re-wrapping the examples.
EPILOG = """\b
examples:
  legible metrics list span
  legible metrics 'histogram_quantile(0.99, sum by (le)
      (rate(legible_span_duration_seconds_bucket{span_name="GET /slow"}[5m])))'
  legible metrics 'sum by (span_name) (rate(legible_span_duration_seconds_count[1m]))' --range 15m
"""


def metrics(
    query: str = typer.Argument(..., metavar="PROMQL", help="a PromQL query, or 'list' to list metric names"),
    pattern: str | None = typer.Argument(None, metavar="PATTERN", help="with list: regex or substring of the names"),
    range_: str | None = typer.Option(
        None,
        "--range",
        metavar="DURATION",
        help="range query over the last 10m, 1h, ..., or a deploy: deploy, deploy~1",
    ),
    step: str | None = typer.Option(
        None, "--step", metavar="DURATION", help="range step (default: range / 60, at least 1s)"
    ),
    limit: int | None = typer.Option(
        None, "--limit", "-n", help="series shown (default 20) or metrics listed (default 40)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.metrics/v1)"),
) -> None:
    """Run one PromQL query (instant, or over --range), or with ``list`` list the metric names."""
    from legible._errors import UsageError
    from legible.queries import metrics as q
    from legible.queries._fmt import parse_duration
    from legible.queries._source import metrics_url
    from legible.queries.logs import parse_limit

    with errors_to_exit(as_json):
        if query == "list":
            url = metrics_url()
            res = q.list_metrics(url, pattern)
            n = parse_limit(limit, 40)
            emit_json(res.to_json()) if as_json else print_lines(q.render_list(res, n))
            return
        if pattern is not None:
            raise UsageError(f"unexpected argument {pattern!r}", hint="quote the PromQL query as one argument")
        from legible.deploys import is_ref

        end: float | None = None
        range_s: float | None
        if is_ref(range_):
            from legible.deploys import resolve_window
            from legible.worktree import find_worktree

            assert range_ is not None
            w = resolve_window(find_worktree().state_dir, range_, what="--range")
            end = w.until_ns / 1e9 if w.until_ns is not None else None
            range_s = w.seconds()
        else:
            range_s = parse_duration(range_, what="--range") if range_ else None
        step_s = parse_duration(step, what="--step") if step else None
        if step_s is not None and range_s is None:
            raise UsageError("--step needs --range", hint="e.g. --range 10m --step 15s")
        if range_s is not None and range_s <= 0 or step_s is not None and step_s <= 0:
            raise UsageError("--range and --step must be positive", hint="e.g. --range 10m --step 15s")
        n = parse_limit(limit, 20)
        mres = q.query(metrics_url(), query, range_s, step_s, now=end)
        emit_json(mres.to_json()) if as_json else print_lines(q.render_metrics(mres, n))


def register(app: typer.Typer) -> None:
    """Add ``legible metrics`` to ``app``."""
    app.command("metrics", cls=Command, help=HELP, epilog=EPILOG)(metrics)
