"""``legible reset [SERVICE]...``: empty the stack's databases (thin over :func:`legible.services.databases.reset`)."""

from __future__ import annotations

import typer

from ._output import emit_json


def reset(
    services: list[str] = typer.Argument(
        None, metavar="[SERVICE]...", help="database services to empty (default: all postgres and redis services)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON document (schema legible.reset/v1)"),
) -> None:
    """Empty databases back to a fresh state; `legible restart` then reruns the app's setup steps."""
    from legible.services.databases import reset as do_reset

    res = do_reset(services=services or [])
    if as_json:
        emit_json(res)
        return
    if not res["reset"]:
        print(f"no database services in {res['key']}")
        return
    for r in res["reset"]:
        print(f"{r['service']} ({r['kind']}) emptied in {r['took_ms']:g} ms")
    print("next: `legible restart` runs the app's setup steps again")


def register(app: typer.Typer) -> None:
    """Add ``reset`` to ``app``."""
    app.command()(reset)
