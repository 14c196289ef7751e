"""``legible doctor [--install]``: which components are here, their versions, how to install the rest."""

from __future__ import annotations

import typer

from ._output import emit_json, print_lines


def doctor(
    install: bool = typer.Option(
        False, "--install", help="Install missing components (apt where permitted, else the tool cache)."
    ),
    user: bool = typer.Option(
        False, "--user", help="With --install: never apt-get install; unpack into the tool cache."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Report each component (present, version, install command); exit 3 if a required one is missing."""
    from legible.doctor import check, install_missing
    from legible.render import render_doctor

    actions = install_missing(user=user) if install else []
    res = check()
    res["installed"] = actions
    emit_json(res) if as_json else print_lines(render_doctor(res))
    if res["missing_required"]:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""
    app.command()(doctor)
