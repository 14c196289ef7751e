"""``legible proof``: run journeys and checks, write the evidence bundle, optionally post it to the PR."""

from __future__ import annotations

from pathlib import Path

import typer

from ._output import emit_json, run, write_out


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

    manifest = run(lambda: run_proof(record=record, baseline=baseline), as_json, out)
    bundle = Path(manifest.pop("dir"))
    posted = None
    if post:
        from legible._gh import post_summary

        posted = run(
            lambda: post_summary(bundle / "summary.md", cwd=bundle, pr=pr, marker=MARKER, media_base=media_base),
            as_json,
            out,
        )
    write_out(out, {**manifest, "posted": posted})
    if as_json:
        emit_json({**manifest, "posted": posted})
    else:
        c = manifest["checks"]["counts"]
        total = c["pass"] + c["fail"] + c["error"]
        jn = manifest["journeys"]
        jtext = f", {sum(1 for j in jn.values() if j.get('passed'))}/{len(jn)} journeys" if jn else ""
        verdict = "PASS" if manifest["passed"] else "FAIL"
        took = manifest["took_ms"] / 1000
        line = f"proof {verdict}: {c['pass']}/{total} checks{jtext} in {took:.1f} s -> {bundle}/summary.md"
        if posted:
            line += f"; {posted['action']} comment on PR #{posted['pr']}"
        print(line)
    if not manifest["passed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``proof`` to ``app``."""
    app.command()(proof)
