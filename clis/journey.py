"""``legible journey list | run NAME [--record]``: named browser journeys (thin over legible.browser.journey)."""

from __future__ import annotations

from typing import Any

import typer

from ._output import emit_json, fmt_ms, run, table

JSON = typer.Option(False, "--json", help="Print one JSON document (stable `schema` field) instead of text.")
journey_app = typer.Typer(
    help="Named browser journeys from legible.toml: list them, run one (traced, optionally recorded).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@journey_app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List the journeys of legible.toml."""
    from legible.browser.journey import list_journeys

    res = run(list_journeys, as_json)
    if as_json:
        emit_json(res)
        return
    rows = res["journeys"]
    if not rows:
        print("no journeys in legible.toml: add [journeys.<name>] with steps (see docs/browser.md)")
        return
    print(f"{len(rows)} journeys")
    print(
        table(
            [
                [r["name"], f"script {r['script']}" if r["script"] else f"{r['steps']} steps", r["description"]]
                for r in rows
            ],
            ["NAME", "STEPS", "DESCRIPTION"],
        )
    )


def render(doc: dict[str, Any]) -> list[str]:
    """Text lines for a ``legible.journey/v1`` document: steps, verdict, backend spans, video, failure."""
    verdict = "passed" if doc["ok"] else "FAILED"
    out = [
        f"journey {doc['name']}: {verdict} in {fmt_ms(doc['duration_ms'])} "
        f"({len(doc['steps'])} steps run) trace {doc['trace_id']}"
    ]
    rows = []
    for s in doc["steps"]:
        rows.append(["  ok" if s["ok"] else "  FAIL", str(s["n"]), s["title"][:70], fmt_ms(s.get("ms"))])
    if rows:
        out.append(table(rows))
    failed = doc.get("failed")
    if failed:
        out.append(f"reason: {failed['error']}")
        if failed.get("screenshot"):
            out.append(f"screenshot: {failed['screenshot']}")
    b = doc.get("backend") or {}
    if b.get("error"):
        out.append(f"backend spans: not read ({b['error']})")
    elif b.get("spans"):
        out.append(f"backend: {b['spans']} spans in this trace; slowest:")
        out.append(
            table(
                [
                    [
                        "  " + r["service"],
                        r["name"][:60],
                        fmt_ms(r["duration_ms"]),
                        "ERROR" if r["status_code"] == "error" else "",
                    ]
                    for r in b["slowest"]
                ]
            )
        )
        out.append(f"the whole trace: legible trace {doc['trace_id'][:12]}")
    else:
        why = b.get("none_because") or "is the app instrumented with OpenTelemetry?"
        out.append(f"backend: no spans joined this trace ({why})")
    v = doc.get("video")
    if v:
        if v.get("error"):
            out.append(f"video: not written: {v['error']}")
        else:
            out.append(f"video {v['duration_s']:.1f} s, {v['bytes'] / 1024:.0f} KB: {v['video']}")
            out.append(f"gif: {v['gif']} · poster: {v['poster']}")
    if doc.get("export_error"):
        out.append(f"warning: spans not exported: {doc['export_error']}")
    return out


@journey_app.command("run")
def run_(
    name: str = typer.Argument(..., help="The journey's name ([journeys.<name>] in legible.toml)."),
    record: bool = typer.Option(False, "--record", help="Also write a walkthrough video (MP4, GIF, poster)."),
    as_json: bool = JSON,
) -> None:
    """Run a journey on the stack's browser; exit 1 if a step fails."""
    from legible.browser.journey import run_journey

    doc = run(lambda: run_journey(name, record=record), as_json)
    if as_json:
        emit_json(doc)
    else:
        print("\n".join(render(doc)))
    if not doc["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``legible journey`` to ``app``."""
    app.add_typer(journey_app, name="journey")
