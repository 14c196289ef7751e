"""``legible browser open|snapshot|click|fill|press|wait|screenshot|console|network|vitals|status|record``.

Thin: each subcommand sends one request to the stack's browser agent (:mod:`legible.browser.client`) and
prints a few lines and paths (never image data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

# At module level, not in _send: every command here needs them (~20 ms of imports), and a process that
# imports this module ahead of the call (the per-stack fork server, issue 12) then has them warm too.
from legible.browser.client import call
from legible.contract import browser_schema
from legible.render import render_browser
from legible.worktree import find_worktree

from ._output import emit_json, print_lines

HELP = (
    "Drive this stack's headless Chromium: open, snapshot, click, fill, press, wait, screenshot, console, "
    "network, vitals, record (state persists)."
)

JSON = typer.Option(False, "--json", help="print one JSON document")

app = typer.Typer(help=HELP, add_completion=False, rich_markup_mode=None)


def _send(op: str, payload: dict[str, Any], timeout: float, as_json: bool) -> None:
    """Send ``op`` to the stack's browser agent and print its result (text lines, or JSON with ``as_json``)."""
    res = call(find_worktree(None).state_dir, op, payload, timeout=timeout)
    if as_json:
        emit_json({"schema": browser_schema(op), **res})
        return
    print_lines(render_browser(op, res))


@app.command("open", help="Open a URL, or a path of the app (/order), in the stack's tab and wait for load.")
def open_(url: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Open ``url`` (or a path of the app) in the stack's tab."""
    _send("open", {"url": url}, 60, as_json)


@app.command("snapshot", help="The page's accessibility tree as compact YAML with refs (e19) for click/fill.")
def snapshot(
    selector: str | None = typer.Option(
        None, "--selector", "-s", help="only this element's subtree (a Playwright selector)"
    ),
    depth: int | None = typer.Option(None, "--depth", "-d", help="at most this many levels"),
    as_json: bool = JSON,
) -> None:
    """Print the page's accessibility tree with refs."""
    _send("snapshot", {"selector": selector, "depth": depth}, 30, as_json)


@app.command("click", help="Click a ref from the last snapshot (e19) or a selector (text=Order, #submit).")
def click(target: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Click ``target``, a ref or a selector."""
    _send("click", {"target": target}, 30, as_json)


@app.command(
    "fill",
    help="Fill a field (a ref or a selector) with text; a <select> gets the option with that label.",
)
def fill(
    target: str = typer.Argument(...),
    text: str = typer.Argument(...),
    as_json: bool = JSON,
) -> None:
    """Fill the field ``target`` with ``text``."""
    _send("fill", {"target": target, "text": text}, 30, as_json)


@app.command("press", help="Press a key (Enter, Tab, Control+A) on the focused element or on --target.")
def press(
    key: str = typer.Argument(...),
    target: str | None = typer.Option(None, "--target", help="a ref or selector to focus first"),
    as_json: bool = JSON,
) -> None:
    """Press ``key`` on the focused element or on ``target``."""
    _send("press", {"key": key, "target": target}, 30, as_json)


@app.command("wait", help="Wait until a text is visible on the page.")
def wait(
    text: str = typer.Argument(...),
    timeout: float = typer.Option(5.0, "--timeout", show_default=False, help="seconds (default 5)"),
    as_json: bool = JSON,
) -> None:
    """Wait until ``text`` is visible, for at most ``timeout`` seconds."""
    _send("wait", {"text": text, "timeout_ms": timeout * 1000}, timeout + 10, as_json)


@app.command("screenshot", help="Save a screenshot (JPEG, at most 1568 px on the long side) and print its path.")
def screenshot(
    full: bool = typer.Option(False, "--full", help="the whole page, not only the viewport"),
    selector: str | None = typer.Option(None, "--selector", "-s", help="only this element (a ref or a selector)"),
    png: bool = typer.Option(False, "--png", help="PNG instead of JPEG"),
    as_json: bool = JSON,
) -> None:
    """Save a screenshot of the viewport, the whole page or one element."""
    _send("screenshot", {"full": full, "selector": selector, "png": png}, 30, as_json)


@app.command("console", help="Console errors and warnings since the last call, grouped, with source locations.")
def console(
    all_: bool = typer.Option(False, "--all", help="everything kept, not only what is new"),
    as_json: bool = JSON,
) -> None:
    """Print the console errors and warnings since the last call."""
    _send("console", {"all": all_}, 10, as_json)


@app.command("network", help="Failed (>= 400 or network errors) and slow requests since the last call.")
def network(
    all_: bool = typer.Option(False, "--all", help="also static assets (images, CSS, JS, fonts)"),
    slow_ms: float = typer.Option(500.0, "--slow-ms", show_default=False, help="slow threshold in ms (default 500)"),
    list_: bool = typer.Option(False, "--list", help="list every request, not only failed and slow ones"),
    as_json: bool = JSON,
) -> None:
    """Print the failed and slow requests since the last call."""
    _send("network", {"all": all_, "slow_ms": slow_ms, "list": list_}, 10, as_json)


@app.command("vitals", help="LCP, CLS, INP and load timings of the current page.")
def vitals(as_json: bool = JSON) -> None:
    """Print the current page's web vitals."""
    _send("vitals", {}, 10, as_json)


@app.command("status", help="The tab's URL and title, and whether a recording runs.")
def status(as_json: bool = JSON) -> None:
    """Print the tab's URL and title."""
    _send("status", {}, 10, as_json)


@app.command(
    "record",
    help="Record the tab: `record start`, `record chapter TITLE`, `record stop` (MP4, GIF, poster).",
)
def record(
    action: Literal["start", "stop", "chapter"] = typer.Argument(..., metavar="start|chapter|stop", help="what to do"),
    title: str = typer.Argument("", show_default=False, help="chapter title (start, chapter)"),
    as_json: bool = JSON,
) -> None:
    """Start a recording, show a chapter card, or stop and encode the recording."""
    _send(f"record.{action}", {"title": title}, 180, as_json)


#: Lines of a snapshot diff printed before the cut line.
DIFF_LINES = 30


@app.command(
    "diff",
    help="What changed since the previous snapshot (changed/added/removed lines); with --screenshot REF, "
    "also the pixels against a reference image (a diff image and the changed fraction).",
)
def diff(
    screenshot: Path | None = typer.Option(
        None, "--screenshot", metavar="REF", help="a reference image (PNG or JPEG) of the same viewport"
    ),
    limit: int = typer.Option(DIFF_LINES, "--limit", "-n", help="diff lines shown (default 30)"),
    as_json: bool = JSON,
) -> None:
    """Compare the page's snapshot with the previous one, and a screenshot with a reference image."""
    from legible.browser.diff import image_diff, previous_snapshot, snapshot_diff

    state_dir = find_worktree(None).state_dir
    snap = call(state_dir, "snapshot", {}, timeout=30)
    current = Path(snap["path"])
    before = previous_snapshot(current.parent, current)
    changes = snapshot_diff(before.read_text(), snap["text"]) if before else None
    pixels = None
    if screenshot is not None:
        shot = call(state_dir, "screenshot", {"png": True}, timeout=30)
        out = state_dir / "browser" / "diffs" / f"{Path(shot['path']).stem}-diff.png"
        pixels = image_diff(screenshot, Path(shot["path"]), out)
    page = f"{snap.get('title') or '(no title)'} · {snap.get('url', '')}"
    if as_json:
        emit_json(
            {
                "schema": "legible.browser-diff/v1",
                "url": snap.get("url"),
                "snapshot": str(current),
                "previous": str(before) if before else None,
                "lines": changes.to_json() if changes else None,
                "screenshot": None
                if pixels is None
                else {
                    "reference": str(screenshot),
                    "diff_image": str(pixels.diff_path),
                    "changed_pixels": pixels.changed,
                    "total_pixels": pixels.total,
                    "changed_fraction": round(pixels.fraction, 6),
                },
            }
        )
        return
    lines: list[str] = []
    if changes is None:
        lines.append(f"first snapshot ({current.name}): nothing to compare yet; the next diff compares with it")
    else:
        assert before is not None
        c, a, r = len(changes.changed), len(changes.added), len(changes.removed)
        lines.append(f"snapshot vs previous ({before.name}): {c} changed, {a} added, {r} removed lines")
        body = [f"~ {b}  ->  {x}" for b, x in changes.changed]
        body += [f"+ {x}" for x in changes.added] + [f"- {x}" for x in changes.removed]
        lines += body[:limit]
        if len(body) > limit:
            lines.append(f"... {len(body) - limit} more: --limit {len(body)}, or --json")
    if pixels is not None:
        lines.append(
            f"screenshot vs {screenshot}: {pixels.fraction:.2%} of pixels changed "
            f"({pixels.changed} of {pixels.total}); diff image: {pixels.diff_path}"
        )
    lines.append(f"page: {page}")
    print_lines(lines)


def register(main_app: typer.Typer) -> None:
    """Add ``legible browser`` and its subcommands to ``main_app``."""
    main_app.add_typer(app, name="browser")
