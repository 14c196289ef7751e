"""``legible check [NAME...]``: evaluate checks; one line each, exit 1 when any fails (thin over legible.checks)."""

from __future__ import annotations

from pathlib import Path

import typer


def check(
    names: list[str] = typer.Argument(None, help="Configured checks to run (default: all of [checks.*])."),
    startup: list[str] = typer.Option([], "--startup", help="Ad hoc: the app's time to ready, e.g. 800ms."),
    span: list[str] = typer.Option(
        [], "--span", help="Ad hoc: 'max=2s[,name=GET /slow][,service=app][,journey=J][,percentile=99]'."
    ),
    promql: list[str] = typer.Option([], "--promql", help="Ad hoc: 'EXPR OP NUMBER', e.g. 'sum(up) >= 1'."),
    logs: list[str] = typer.Option([], "--logs", help="Ad hoc: 'level=error[,max_count=0][,pattern=RE][,since=15m]'."),
    journey: list[str] = typer.Option([], "--journey", help="Ad hoc: a journey name, or 'name=J,max=10s'."),
    browser: list[str] = typer.Option([], "--browser", help="Ad hoc: 'pages=/|/order[,console_errors=0]'."),
    db: list[str] = typer.Option([], "--db", help="Ad hoc: 'max_statement=50ms[,service=app][,since=15m]'."),
    from_: Path = typer.Option(
        None,
        "--from",
        metavar="BUNDLE_DIR",
        help="Read logs and spans from a proof bundle (windows end at its run's end); "
        "startup and promql checks then cannot be measured.",
    ),
    since: str | None = typer.Option(
        None, "--since", help="Window of span and logs checks: deploy, deploy~1, deploy:7 (default: each check's)."
    ),
    out: Path = typer.Option(None, "--out", help="Write the JSON document to this file; print only the summary line."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (schema legible.check/v1)."),
) -> None:
    """Evaluate checks against the stack's signals: one line per check, exit 1 if any fails or errs."""
    from ._direct import run_check

    code = run_check(names, startup, span, promql, logs, journey, browser, db, from_, since, out, as_json)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``check`` to ``app``."""
    app.command()(check)
