"""``legible logs``: grouped, raw, followed or SQL views of the worktree's logs (thin over legible.queries.logs)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from ._output import emit_json, print_lines

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
    since: str | None = typer.Option(
        None,
        "--since",
        show_default=False,
        help="window start: 5m, 2h, 14:03, ISO 8601, 'all', or a deploy: deploy, deploy~1, deploy:7 "
        "(default 15m; with --from, all)",
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
    from_: Path | None = typer.Option(
        None, "--from", metavar="BUNDLE_DIR", help="answer from a proof bundle's logs (.legible/proof/<run-id>)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.logs/v1)"),
) -> None:
    """Show this worktree's logs as groups of similar lines, raw lines, a follow, or the rows of one SELECT."""
    from legible.queries import logs as q
    from legible.queries.source import bundle_or_worktree

    from ._deploy import deploy_window, label, warnings

    opener = bundle_or_worktree(from_)
    since = since or ("all" if from_ else "15m")
    win_since, until, since_label, until_label = (
        deploy_window(since, until) if not from_ else (since, until, None, None)
    )
    flt = q.make_filter(win_since or since, until, service, level, grep, regex, attr, trace_id)
    label(flt, since_label, until_label)
    if follow:
        _print_follow(q.follow_lines(flt, fields=fields, limit=limit, opener=opener))
        return
    view = q.logs_view(flt, raw=raw, fields=fields, limit=limit, sql=sql, opener=opener)
    doc = dict(view.doc)
    if not from_ and not sql:
        warnings(doc, as_json)
    emit_json(doc) if as_json else print_lines(view.lines)


def _print_follow(batches: Iterator[list[str]]) -> None:
    """Print each batch of lines as it comes until Ctrl-C (exit 0) or a closed pipe."""
    try:
        for lines in batches:
            if lines:
                print_lines(lines)
                sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()


def register(app: typer.Typer) -> None:
    """Add ``legible logs`` to ``app``."""
    app.command("logs", help=HELP, epilog=EPILOG)(logs)
