"""``legible doctor [--install]``: which components are here, their versions, how to install the rest."""

from __future__ import annotations

import typer

from ._output import emit_json, run, table


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

    if install:
        actions = run(lambda: install_missing(user=user), as_json)
    else:
        actions = []
    res = run(check, as_json)
    res["installed"] = actions
    if as_json:
        emit_json(res)
    else:
        for a in actions:
            print(f"install: {a}")
        rows = [
            [
                c["name"],
                "ok" if c["path"] else ("MISSING" if c["required"] else "absent"),
                c["version"][:40],
                c["path"] or f"install: {c['install']}",
            ]
            for c in res["components"]
        ]
        print(table(rows, ["COMPONENT", "STATE", "VERSION", "PATH / HOW TO INSTALL"]))
    if res["missing_required"]:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""
    app.command()(doctor)
