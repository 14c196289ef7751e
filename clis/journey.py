"""``legible journey list | run NAME [--record]``: named browser journeys (thin over legible.browser.journey)."""

from __future__ import annotations

import typer

from ._output import emit_json, print_lines

JSON = typer.Option(False, "--json", help="Print one JSON document (stable `schema` field) instead of text.")
journey_app = typer.Typer(
    help="Named browser journeys from legible.toml: list them, run one (traced, optionally recorded).",
    add_completion=False,
    rich_markup_mode=None,
)


@journey_app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List the journeys of legible.toml."""
    from legible.browser.journey import list_journeys
    from legible.render import render_journey_list

    res = list_journeys()
    emit_json(res) if as_json else print_lines(render_journey_list(res))


@journey_app.command("run")
def run_(
    name: str = typer.Argument(..., help="The journey's name ([journeys.<name>] in legible.toml)."),
    record: bool = typer.Option(False, "--record", help="Also write a walkthrough video (MP4, GIF, poster)."),
    as_json: bool = JSON,
) -> None:
    """Run a journey on the stack's browser; exit 1 if a step fails."""
    from legible.browser.journey import run_journey
    from legible.render import render_journey

    doc = run_journey(name, record=record)
    emit_json(doc) if as_json else print_lines(render_journey(doc))
    if not doc["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``legible journey`` to ``app``."""
    app.add_typer(journey_app, name="journey")
