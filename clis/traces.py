"""``legible traces`` (the trace list) and ``legible trace ID`` (one trace as a tree): thin over legible.queries."""

from __future__ import annotations

from pathlib import Path

import typer

from ._output import emit_json, print_lines

TRACES_HELP = (
    "List recent traces (root span, service, start, duration, span count, errors), or the "
    "--slowest N; filter by --service, --name, --min-duration, --errors. Default window: 1h."
)
TRACE_HELP = (
    "Show one trace as an indented tree: durations, offsets, status, key attributes, exceptions "
    "and the log lines under their spans. ID: the trace id or a unique prefix (>= 6 hex)."
)
#: ``\b`` keeps click from re-wrapping the examples.
TRACES_EPILOG = (
    "\b\nexamples:\n  legible traces --errors\n  legible traces --slowest 10 --since 10m\n"
    '  legible traces --sql "SELECT name, quantile_cont(duration_ms, 0.99) FROM spans GROUP BY name"'
)


def traces(
    since: str | None = typer.Option(
        None,
        "--since",
        show_default=False,
        help="window start: 5m, 2h, 14:03, ISO 8601, 'all', or deploy, deploy~1, deploy:7 "
        "(default 1h; with --from, all)",
    ),
    until: str | None = typer.Option(None, "--until", help="window end, same forms (default: now)"),
    slowest: int | None = typer.Option(None, "--slowest", metavar="N", help="the N longest traces, longest first"),
    errors: bool = typer.Option(False, "--errors", help="only traces with an error span"),
    service: list[str] = typer.Option([], "--service", "-s", help="traces touching this service (repeatable)"),
    name: str | None = typer.Option(
        None, "--name", help="traces with a span whose name contains this (case-insensitive)"
    ),
    min_duration: str | None = typer.Option(None, "--min-duration", help="traces at least this long: 500ms, 2s"),
    limit: int | None = typer.Option(None, "--limit", "-n", help="traces shown (default 20), or sql rows (default 40)"),
    sql: str | None = typer.Option(
        None, "--sql", help="run one read-only SELECT over the store's tables (docs/store.md)"
    ),
    from_: Path | None = typer.Option(
        None, "--from", metavar="BUNDLE_DIR", help="answer from a proof bundle's spans (.legible/proof/<run-id>)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.traces/v1)"),
) -> None:
    """List the worktree's recent traces, or the slowest ones, or the rows of one SELECT over the spans."""
    from legible.queries import traces as q
    from legible.queries.source import bundle_or_worktree

    from ._deploy import deploy_window, label, warnings

    store = bundle_or_worktree(from_)()
    since = since or ("all" if from_ else "1h")
    win_since, until, since_label, until_label = (
        deploy_window(since, until) if not from_ else (since, until, None, None)
    )
    flt = q.make_trace_filter(win_since or since, until, service, name, min_duration, errors)
    label(flt, since_label, until_label)
    view = q.traces_view(flt, slowest=slowest, limit=limit, sql=sql, store=store)
    doc = dict(view.doc)
    if not from_ and not sql:
        warnings(doc, as_json)
    emit_json(doc) if as_json else print_lines(view.lines)


def trace(
    trace_id: str = typer.Argument(
        ..., metavar="ID", help="trace id, or a unique prefix of at least 6 hex digits", show_default=False
    ),
    limit: int | None = typer.Option(None, "--limit", "-n", help="lines of tree shown (default 40)"),
    from_: Path | None = typer.Option(
        None, "--from", metavar="BUNDLE_DIR", help="answer from a proof bundle's spans (.legible/proof/<run-id>)"
    ),
    as_json: bool = typer.Option(False, "--json", help="the full tree as one JSON document (legible.trace/v1)"),
) -> None:
    """Show one trace as an indented tree of spans with their exceptions and log lines."""
    from legible.queries.source import bundle_or_worktree
    from legible.queries.traces import trace_view

    view = trace_view(trace_id, limit=limit, store=bundle_or_worktree(from_)())
    emit_json(view.doc) if as_json else print_lines(view.lines)


def register(app: typer.Typer) -> None:
    """Add ``legible traces`` and ``legible trace`` to ``app``."""
    app.command("traces", help=TRACES_HELP, epilog=TRACES_EPILOG)(traces)
    app.command("trace", help=TRACE_HELP)(trace)
