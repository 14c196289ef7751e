"""``legible check [NAME...]``: evaluate checks; one line each, exit 1 when any fails (thin over legible.checks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from legible.contract import CheckDoc

import typer

from ._output import emit_json, print_lines, run, write_out


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
    from legible.checks import context_for, parse_adhoc, run_checks
    from legible.render import render_check

    def go() -> CheckDoc:
        adhoc = []
        for kind, values in (
            ("startup", startup),
            ("span", span),
            ("promql", promql),
            ("logs", logs),
            ("journey", journey),
            ("browser", browser),
            ("db", db),
        ):
            for i, value in enumerate(values, 1):
                adhoc.append((f"{kind}-{i}", parse_adhoc(kind, value)))
        if from_ is None:
            ctx = context_for()
            if since:
                from legible.deploys import resolve_window

                w = resolve_window(ctx.worktree.state_dir, since)
                ctx.window = (w.since_ns, w.until_ns, w.label)
            doc = run_checks(ctx, names or None, adhoc)
            from legible.deploys import record_checks

            record_checks(ctx.worktree.state_dir, doc)
            return doc
        from legible.bundle import bundle_end_ns, bundle_store

        ctx = context_for(browser=False)
        ctx.state, ctx._store = None, bundle_store(from_)  # the bundle, never the live stack
        end = bundle_end_ns(from_)
        ctx.now_ns = lambda: end
        return run_checks(ctx, names or None, adhoc)

    doc = run(go, out)
    write_out(out, doc)
    if not as_json and not out and from_ is None:
        from ._deploy import warnings

        warnings(None, as_json)
    emit_json(doc) if as_json else print_lines(render_check(doc, out))
    if not doc["passed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``check`` to ``app``."""
    app.command()(check)
