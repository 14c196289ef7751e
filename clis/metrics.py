"""``legible metrics 'PROMQL'`` and ``legible metrics list [PATTERN]``: thin over legible.queries.metrics."""

from __future__ import annotations

import typer

from ._output import emit_json, print_lines

HELP = (
    "Query the stack's VictoriaMetrics with PromQL: instant, or --range 10m [--step 15s] with a "
    "sparkline per series; `legible metrics list [PATTERN]` lists metric names, types and series."
)

#: ``\b`` keeps click from re-wrapping the examples.
EPILOG = """\b
examples:
  legible metrics list span
  legible metrics 'histogram_quantile(0.99, sum by (vmrange)
      (rate(legible_span_duration_seconds_bucket{span_name="GET /slow"}[5m])))'
  legible metrics 'sum by (span_name) (rate(legible_span_duration_seconds_count[1m]))' --range 15m
"""


def metrics(
    query: str = typer.Argument(..., metavar="PROMQL", help="a PromQL query, or 'list' to list metric names"),
    pattern: str | None = typer.Argument(None, metavar="PATTERN", help="with list: regex or substring of the names"),
    range_: str | None = typer.Option(
        None, "--range", metavar="DURATION", help="range query over the last 10m, 1h, ..."
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
    from legible.queries.metrics import metrics_view

    view = metrics_view(query, pattern, range_=range_, step=step, limit=limit)
    emit_json(view.doc) if as_json else print_lines(view.lines)


def register(app: typer.Typer) -> None:
    """Add ``legible metrics`` to ``app``."""
    app.command("metrics", help=HELP, epilog=EPILOG)(metrics)
