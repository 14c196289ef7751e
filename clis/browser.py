"""``legible browser open|snapshot|click|fill|press|wait|screenshot|console|network|vitals|record``.

Thin: each subcommand sends one request to the stack's browser agent (:mod:`legible.browser.client`) and
prints a few lines and paths (never image data). Arguments are parsed by ``argparse`` behind one typer
command: typer would import pydantic for every non-boolean option (about 100 ms), and these commands are
called in tight loops by agents.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

import typer

from clis._output import emit_json, fail, fmt_ms
from legible._errors import UsageError

#: Lines of a long snapshot printed before the cut line.
SNAPSHOT_LINES = 60
#: Rows of console groups and requests printed before the cut line.
ROWS = 20
SCHEMA = "legible.browser.{op}/v1"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def build_parser() -> _Parser:
    """The ``legible browser`` parser with one subparser per operation."""
    p = _Parser(prog="legible browser", description="Drive this stack's headless Chromium (state persists).")
    sub = p.add_subparsers(dest="op", required=True, metavar="COMMAND", parser_class=_Parser)

    def add(name: str, text: str) -> _Parser:
        sp: _Parser = sub.add_parser(name, help=text, description=text)
        sp.add_argument("--json", action="store_true", help="print one JSON document")
        return sp

    sp = add("open", "Open a URL, or a path of the app (/order), in the stack's tab and wait for load.")
    sp.add_argument("url")
    sp = add("snapshot", "The page's accessibility tree as compact YAML with refs (e19) for click/fill.")
    sp.add_argument("--selector", "-s", help="only this element's subtree (a Playwright selector)")
    sp.add_argument("--depth", "-d", type=int, help="at most this many levels")
    sp = add("click", "Click a ref from the last snapshot (e19) or a selector (text=Order, #submit).")
    sp.add_argument("target")
    sp = add("fill", "Fill a field (a ref or a selector) with text; a <select> gets the option with that label.")
    sp.add_argument("target")
    sp.add_argument("text")
    sp = add("press", "Press a key (Enter, Tab, Control+A) on the focused element or on --target.")
    sp.add_argument("key")
    sp.add_argument("--target", help="a ref or selector to focus first")
    sp = add("wait", "Wait until a text is visible on the page.")
    sp.add_argument("text")
    sp.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    sp = add("screenshot", "Save a screenshot (JPEG, at most 1568 px on the long side) and print its path.")
    sp.add_argument("--full", action="store_true", help="the whole page, not only the viewport")
    sp.add_argument("--selector", "-s", help="only this element (a ref or a selector)")
    sp.add_argument("--png", action="store_true", help="PNG instead of JPEG")
    sp = add("console", "Console errors and warnings since the last call, grouped, with source locations.")
    sp.add_argument("--all", action="store_true", help="everything kept, not only what is new")
    sp = add("network", "Failed (>= 400 or network errors) and slow requests since the last call.")
    sp.add_argument("--all", action="store_true", help="also static assets (images, CSS, JS, fonts)")
    sp.add_argument("--slow-ms", type=float, default=500.0, help="slow threshold in ms (default 500)")
    sp.add_argument("--list", action="store_true", help="list every request, not only failed and slow ones")
    add("vitals", "LCP, CLS, INP and load timings of the current page.")
    add("status", "The tab's URL and title, and whether a recording runs.")
    sp = add("record", "Record the tab: `record start`, `record chapter TITLE`, `record stop` (MP4, GIF, poster).")
    sp.add_argument("action", choices=["start", "stop", "chapter"])
    sp.add_argument("title", nargs="?", default="", help="chapter title (start, chapter)")
    return p


def _request(ns: argparse.Namespace) -> tuple[str, dict[str, Any], float]:
    op = ns.op
    if op == "open":
        return "open", {"url": ns.url}, 60
    if op == "snapshot":
        return "snapshot", {"selector": ns.selector, "depth": ns.depth}, 30
    if op == "click":
        return "click", {"target": ns.target}, 30
    if op == "fill":
        return "fill", {"target": ns.target, "text": ns.text}, 30
    if op == "press":
        return "press", {"key": ns.key, "target": ns.target}, 30
    if op == "wait":
        return "wait", {"text": ns.text, "timeout_ms": ns.timeout * 1000}, ns.timeout + 10
    if op == "screenshot":
        return "screenshot", {"full": ns.full, "selector": ns.selector, "png": ns.png}, 30
    if op == "console":
        return "console", {"all": ns.all}, 10
    if op == "network":
        return "network", {"all": ns.all, "slow_ms": ns.slow_ms, "list": ns.list}, 10
    if op == "record":
        return f"record.{ns.action}", {"title": ns.title}, 180
    return op, {}, 10


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
        lines = res["text"].splitlines()
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


def browser(ctx: typer.Context) -> None:
    """Drive this stack's headless Chromium: open, snapshot, click, fill, press, wait, screenshot, console, network, vitals, record."""  # noqa: E501
    args = list(ctx.args)
    as_json = "--json" in args
    try:
        ns = build_parser().parse_args(args)
        op, payload, timeout = _request(ns)
        from legible.browser.client import call
        from legible.worktree import find_worktree

        wt = find_worktree(None)
        res = call(wt.state_dir, op, payload, timeout=timeout)
    except UsageError as err:
        fail(err, as_json)
    except Exception as err:  # LegibleError subclasses
        from legible._errors import LegibleError

        if isinstance(err, LegibleError):
            fail(err, as_json)
        raise
    if as_json:
        emit_json({"schema": SCHEMA.format(op=op), **res})
        return
    sys.stdout.write("\n".join(render(op, res)) + "\n")


def register(app: typer.Typer) -> None:
    """Add ``legible browser`` to ``app``."""
    app.command(
        "browser",
        add_help_option=False,
        context_settings={
            "ignore_unknown_options": True,
            "allow_extra_args": True,
            "allow_interspersed_args": False,
            "help_option_names": [],
        },
    )(browser)
