"""``legible diff``: what changed between two deploys (thin over legible.diff)."""

from __future__ import annotations

import typer

from ._output import emit_json, print_lines

HELP = (
    "What changed between two deploys (default: the current one against the previous): new and gone "
    "error groups, per route request rate, p50 and p95 with the change in percent, time to ready, new "
    "browser console errors, checks whose verdict changed."
)
EPILOG = """\b
examples:
  legible restart && legible journey run report && legible diff
  legible diff --against deploy:3
  legible diff --deploy deploy~1 --threshold 10
"""


def diff(
    against: str | None = typer.Option(
        None, "--against", help="compare with: deploy:N, deploy~N or proof:RUN (default: the previous deploy)"
    ),
    deploy: str = typer.Option("deploy", "--deploy", help="the deploy looked at (default: the current one)"),
    threshold: float = typer.Option(20.0, "--threshold", help="flag routes whose p50 or p95 moved this many %"),
    min_count: int = typer.Option(3, "--min-count", help="fewer requests than this on a side: no percentage"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.diff/v1)"),
) -> None:
    """Compare two deploys: errors new and gone, routes slower or faster, ready time, console errors, checks."""
    from legible.diff import diff as do_diff
    from legible.diff import render

    doc = do_diff(after=deploy, against=against, threshold_pct=threshold, min_count=min_count)
    emit_json(doc) if as_json else print_lines(render(doc))


def register(app: typer.Typer) -> None:
    """Add ``legible diff`` to ``app``."""
    app.command("diff", help=HELP, epilog=EPILOG)(diff)
