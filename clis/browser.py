"""``legible browser open|snapshot|click|fill|press|wait|screenshot|console|network|vitals|status|record``.

Thin: each subcommand sends one request to the stack's browser agent (:mod:`legible.browser.client`) and
prints a few lines and paths (never image data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from legible._errors import UsageError

from ._output import emit_json, errors_to_exit, fail, fmt_ms, print_lines
from ._usage import Command, Group

#: Lines of a long snapshot printed before the cut line.
SNAPSHOT_LINES = 60
#: Rows of console groups and requests printed before the cut line.
ROWS = 20
SCHEMA = "legible.browser.{op}/v1"


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _errors_line(res: dict[str, Any]) -> list[str]:
    n = res.get("new_console_errors") or 0
    return [f"console: {n} new error{'s' if n != 1 else ''} (see `legible browser console`)"] if n else []


def render(op: str, res: dict[str, Any]) -> list[str]:
    """Text lines for the result of ``op`` (see the module docstring)."""
    page = f"{res.get('title') or '(no title)'} · {res.get('url', '')}"
    if op == "open":
        return [
            f"opened {res['url']} ({res.get('status') or '-'}, {fmt_ms(res.get('ms'))}): "
            f"{res.get('title') or '(no title)'}"
        ] + _errors_line(res)  # noqa: E501
    if op == "snapshot":
        lines: list[str] = res["text"].splitlines()
        out = lines
        if res["bytes"] > 4000 or len(lines) > SNAPSHOT_LINES * 2:
            out = lines[:SNAPSHOT_LINES] + [
                f"... {len(lines) - SNAPSHOT_LINES} more lines cut; the whole snapshot: {res['path']}"
            ]
        return out + [f"snapshot {_kb(res['bytes'])}, {res['refs']} refs: {res['path']}", f"page: {page}"]
    if op in ("click", "fill", "press"):
        verb = {"click": "clicked", "fill": "filled", "press": "pressed"}[op]
        what = res.get("target") or ""
        nav = " (navigated)" if res.get("navigated") else ""
        return [f"{verb} {what}{nav}".replace("  ", " ").rstrip(), f"page: {page}"] + _errors_line(res)
    if op == "wait":
        return [f"visible after {fmt_ms(res.get('ms'))}", f"page: {page}"]
    if op == "screenshot":
        return [f"screenshot {res['width']}x{res['height']} {res['format']} {_kb(res['bytes'])}: {res['path']}"]
    if op == "console":
        return _render_console(res)
    if op == "network":
        return _render_network(res)
    if op == "vitals":
        return _render_vitals(res)
    if op == "status":
        rec = " · recording" if res.get("recording") else ""
        return [f"tab: {page}{rec}", f"cdp: 127.0.0.1:{res.get('cdp_port')} (loopback only)"]
    if op == "record.start":
        return [f"recording to {res['dir']}; `legible browser record stop` encodes it"]
    if op == "record.chapter":
        return ["chapter card shown"]
    if op == "record.stop":
        return _render_video(res)
    return [str(res)]


def _render_console(res: dict[str, Any]) -> list[str]:
    groups = res["groups"]
    e, w = res["errors"], res["warnings"]
    head = f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''} since the last call"
    if not groups:
        return [head]
    out = [f"{head} ({len(groups)} distinct)"]
    for g in groups[:ROWS]:
        times = f" x{g['count']}" if g["count"] > 1 else ""
        out.append(f"  {g['level']:<7} {g['text'][:300]}{times}")
        out.append(f"          at {g['where']}")
    if len(groups) > ROWS:
        out.append(f"... {len(groups) - ROWS} more groups cut; --json lists all")
    return out


def _render_network(res: dict[str, Any]) -> list[str]:
    failed, slow = res["failed"], res["slow"]
    hidden = f", {res['hidden_static']} static hidden (--all shows them)" if res["hidden_static"] else ""
    out = [
        f"{res['requests']} requests since the last call{hidden}: {len(failed)} failed, "
        f"{len(slow)} slow (>= {res['slow_ms']:g} ms)"
    ]
    rows = [("failed", r) for r in failed] + [("slow", r) for r in slow]
    rows += [("", r) for r in res.get("all", []) if r not in failed and r not in slow]
    for kind, r in rows[:ROWS]:
        status = r["failure"] or str(r["status"])
        out.append(f"  {kind:<6} {r['method']:<6} {status:<5} {fmt_ms(r['ms']):>8}  {r['url'][:200]}")
    if len(rows) > ROWS:
        out.append(f"... {len(rows) - ROWS} more requests cut; --json lists all")
    return out


def _rate(value: float | None, good: float, poor: float) -> str:
    if value is None:
        return ""
    return " (good)" if value <= good else " (poor)" if value > poor else " (needs improvement)"


def _render_vitals(v: dict[str, Any]) -> list[str]:
    lcp, cls, inp = v.get("lcp_ms"), v.get("cls"), v.get("inp_ms")
    inp_s = f"INP {fmt_ms(inp)}{_rate(inp, 200, 500)}" if inp is not None else "INP - (no interaction yet)"
    cls_s = f"CLS {cls:.3f}{_rate(cls, 0.1, 0.25)}" if cls is not None else "CLS -"
    return [
        f"vitals of {v.get('url')}",
        f"  LCP {fmt_ms(lcp)}{_rate(lcp, 2500, 4000)} · {cls_s} · {inp_s}",
        f"  FCP {fmt_ms(v.get('fcp_ms'))} · TTFB {fmt_ms(v.get('ttfb_ms'))} · DOMContentLoaded "
        f"{fmt_ms(v.get('dom_content_loaded_ms'))} · load {fmt_ms(v.get('load_ms'))} · "
        f"{v.get('resources', 0)} resources",
    ]


def _render_video(res: dict[str, Any]) -> list[str]:
    if res.get("error"):
        return [f"video: not written: {res['error']}"]
    return [
        f"video {res['duration_s']:.1f} s, {_kb(res['bytes'])}, {len(res['chapters'])} chapters: {res['video']}",
        f"gif {_kb(res['gif_bytes'])}: {res['gif']}",
        f"poster: {res['poster']}",
    ]


HELP = (
    "Drive this stack's headless Chromium: open, snapshot, click, fill, press, wait, screenshot, console, "
    "network, vitals, record (state persists)."
)
RECORD_ACTIONS = ("start", "stop", "chapter")

JSON = typer.Option(False, "--json", help="print one JSON document")

app = typer.Typer(cls=Group, help=HELP, add_completion=False, rich_markup_mode=None)


def _send(op: str, payload: dict[str, Any], timeout: float, as_json: bool) -> None:
    """Send ``op`` to the stack's browser agent and print its result (text lines, or JSON with ``as_json``)."""
    from legible.browser.client import call
    from legible.worktree import find_worktree

    with errors_to_exit(as_json):
        res = call(find_worktree(None).state_dir, op, payload, timeout=timeout)
    if as_json:
        emit_json({"schema": SCHEMA.format(op=op), **res})
        return
    print_lines(render(op, res))


@app.command(
    "open", cls=Command, help="Open a URL, or a path of the app (/order), in the stack's tab and wait for load."
)
def open_(url: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Open ``url`` (or a path of the app) in the stack's tab."""
    _send("open", {"url": url}, 60, as_json)


@app.command(
    "snapshot", cls=Command, help="The page's accessibility tree as compact YAML with refs (e19) for click/fill."
)
def snapshot(
    selector: str | None = typer.Option(
        None, "--selector", "-s", help="only this element's subtree (a Playwright selector)"
    ),
    depth: int | None = typer.Option(None, "--depth", "-d", help="at most this many levels"),
    as_json: bool = JSON,
) -> None:
    """Print the page's accessibility tree with refs."""
    _send("snapshot", {"selector": selector, "depth": depth}, 30, as_json)


@app.command("click", cls=Command, help="Click a ref from the last snapshot (e19) or a selector (text=Order, #submit).")
def click(target: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Click ``target``, a ref or a selector."""
    _send("click", {"target": target}, 30, as_json)


@app.command(
    "fill",
    cls=Command,
    help="Fill a field (a ref or a selector) with text; a <select> gets the option with that label.",
)
def fill(
    target: str = typer.Argument(...),
    text: str = typer.Argument(...),
    as_json: bool = JSON,
) -> None:
    """Fill the field ``target`` with ``text``."""
    _send("fill", {"target": target, "text": text}, 30, as_json)


@app.command("press", cls=Command, help="Press a key (Enter, Tab, Control+A) on the focused element or on --target.")
def press(
    key: str = typer.Argument(...),
    target: str | None = typer.Option(None, "--target", help="a ref or selector to focus first"),
    as_json: bool = JSON,
) -> None:
    """Press ``key`` on the focused element or on ``target``."""
    _send("press", {"key": key, "target": target}, 30, as_json)


@app.command("wait", cls=Command, help="Wait until a text is visible on the page.")
def wait(
    text: str = typer.Argument(...),
    timeout: float = typer.Option(5.0, "--timeout", show_default=False, help="seconds (default 5)"),
    as_json: bool = JSON,
) -> None:
    """Wait until ``text`` is visible, for at most ``timeout`` seconds."""
    _send("wait", {"text": text, "timeout_ms": timeout * 1000}, timeout + 10, as_json)


@app.command(
    "screenshot", cls=Command, help="Save a screenshot (JPEG, at most 1568 px on the long side) and print its path."
)
def screenshot(
    full: bool = typer.Option(False, "--full", help="the whole page, not only the viewport"),
    selector: str | None = typer.Option(None, "--selector", "-s", help="only this element (a ref or a selector)"),
    png: bool = typer.Option(False, "--png", help="PNG instead of JPEG"),
    as_json: bool = JSON,
) -> None:
    """Save a screenshot of the viewport, the whole page or one element."""
    _send("screenshot", {"full": full, "selector": selector, "png": png}, 30, as_json)


@app.command(
    "console", cls=Command, help="Console errors and warnings since the last call, grouped, with source locations."
)
def console(
    all_: bool = typer.Option(False, "--all", help="everything kept, not only what is new"),
    as_json: bool = JSON,
) -> None:
    """Print the console errors and warnings since the last call."""
    _send("console", {"all": all_}, 10, as_json)


@app.command("network", cls=Command, help="Failed (>= 400 or network errors) and slow requests since the last call.")
def network(
    all_: bool = typer.Option(False, "--all", help="also static assets (images, CSS, JS, fonts)"),
    slow_ms: float = typer.Option(500.0, "--slow-ms", show_default=False, help="slow threshold in ms (default 500)"),
    list_: bool = typer.Option(False, "--list", help="list every request, not only failed and slow ones"),
    as_json: bool = JSON,
) -> None:
    """Print the failed and slow requests since the last call."""
    _send("network", {"all": all_, "slow_ms": slow_ms, "list": list_}, 10, as_json)


@app.command("vitals", cls=Command, help="LCP, CLS, INP and load timings of the current page.")
def vitals(as_json: bool = JSON) -> None:
    """Print the current page's web vitals."""
    _send("vitals", {}, 10, as_json)


@app.command("status", cls=Command, help="The tab's URL and title, and whether a recording runs.")
def status(as_json: bool = JSON) -> None:
    """Print the tab's URL and title."""
    _send("status", {}, 10, as_json)


@app.command(
    "record",
    cls=Command,
    help="Record the tab: `record start`, `record chapter TITLE`, `record stop` (MP4, GIF, poster).",
)
def record(
    action: str = typer.Argument(..., help="start, stop or chapter"),
    title: str = typer.Argument("", show_default=False, help="chapter title (start, chapter)"),
    as_json: bool = JSON,
) -> None:
    """Start a recording, show a chapter card, or stop and encode the recording."""
    if action not in RECORD_ACTIONS:
        choices = ", ".join(repr(a) for a in RECORD_ACTIONS)
        message = f"legible browser record: argument action: invalid choice: {action!r} (choose from {choices})"
        fail(UsageError(message, hint="see `legible browser record --help`"), as_json)
    _send(f"record.{action}", {"title": title}, 180, as_json)


#: Lines of a snapshot diff printed before the cut line.
DIFF_LINES = 30


@app.command(
    "diff",
    cls=Command,
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
    from legible.browser.client import call
    from legible.browser.diff import image_diff, previous_snapshot, snapshot_diff
    from legible.worktree import find_worktree

    with errors_to_exit(as_json):
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
