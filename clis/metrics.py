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
  legible metrics --shared 'sum by (worktree, branch, commit) (legible_spans_total)'
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
    shared: bool = typer.Option(
        False, "--shared", help="ask the shared engine ([forward] query_url) instead: every forwarding worktree"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.metrics/v1)"),
) -> None:
    """Run one PromQL query (instant, or over --range), or with ``list`` list the metric names."""
    if shared:
        from legible import forward

        doc = forward.shared_query(forward.worktree_settings(), query)
        emit_json(doc) if as_json else print_lines(forward.render_shared(doc, limit or 20))
        return
    from legible.queries.metrics import metrics_view

    end: float | None = None
    from legible.deploys import is_ref

    if is_ref(range_):
        from legible.deploys import resolve_window
        from legible.worktree import find_worktree

        assert range_ is not None
        w = resolve_window(find_worktree().state_dir, range_, what="--range")
        end = w.until_ns / 1e9 if w.until_ns is not None else None
        range_ = f"{w.seconds():.3f}s"
    view = metrics_view(query, pattern, range_=range_, step=step, limit=limit, end=end)
    emit_json(view.doc) if as_json else print_lines(view.lines)


def register(app: typer.Typer) -> None:
    """Add ``legible metrics`` to ``app``."""
    app.command("metrics", help=HELP, epilog=EPILOG)(metrics)
