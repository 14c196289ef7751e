"""``legible proof``: run journeys and checks, write the evidence bundle, optionally post it to the PR."""

from __future__ import annotations

from pathlib import Path

import typer

from ._output import emit_json, print_lines, run, write_out


def proof(
    record: bool = typer.Option(True, "--record/--no-record", help="Record each journey's walkthrough video."),
    baseline: str = typer.Option(None, "--baseline", help="Compare figures with a run id, manifest path or git ref."),
    post: bool = typer.Option(False, "--post", help="Add or update one sticky comment on the PR (needs gh)."),
    pr: int = typer.Option(None, "--pr", help="The PR number for --post (default: the current branch's PR)."),
    media_base: str = typer.Option(
        None, "--media-base", help="With --post: the URL where the bundle is hosted, for its images and video."
    ),
    out: Path = typer.Option(None, "--out", help="Also write the manifest (JSON) to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest (schema legible.proof/v1)."),
) -> None:
    """Run journeys (recorded) and checks; write .legible/proof/<run-id>/; print one line and the path."""
    from legible.proof import MARKER, run_proof
    from legible.render import render_proof

    manifest = run(lambda: run_proof(record=record, baseline=baseline), out)
    bundle = Path(manifest.pop("dir"))
    posted = None
    if post:
        from legible._gh import post_summary

        posted = run(
            lambda: post_summary(bundle / "summary.md", cwd=bundle, pr=pr, marker=MARKER, media_base=media_base),
            out,
        )
    write_out(out, {**manifest, "posted": posted})
    if as_json:
        emit_json({**manifest, "posted": posted})
    else:
        print_lines(render_proof(manifest, bundle / "summary.md", posted))
    if not manifest["passed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``proof`` to ``app``."""
    app.command()(proof)
