"""The agent's operations: one small function per ``legible browser`` request, looked up in :data:`OPS`.

Each operation is ``async def op_x(agent, args) -> dict``: ``args`` is the request's ``args`` object (see
:mod:`legible.browser.client` for the wire format), the returned dict is the answer's ``result``, and
:class:`~legible.browser._common.OpError` is a failure the client turns into an error line and exit code.
The agent runs one operation at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from legible.browser import _scripts
from legible.browser._common import (
    DEFAULT_TIMEOUT_MS,
    NAV_TIMEOUT_MS,
    SLOW_MS,
    OpError,
    Recorder,
    count_or_error,
    first_line,
    stamp,
)
from legible.browser._snapshot import compact

if TYPE_CHECKING:
    from legible.browser.agent import Agent

Op = Callable[["Agent", dict[str, Any]], Awaitable[dict[str, Any]]]


async def op_status(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Where the tab is, whether a recording runs, and the CDP port (``None``: CDP over the pipe only)."""
    return {**(await agent.page_info()), "recording": agent.recorder is not None, "cdp_port": agent.cdp_port}


async def op_open(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Navigate the tab to ``args["url"]`` (a path resolves against the app) and wait for ``load``."""
    page = await agent.page()
    url = agent.resolve_url(str(args.get("url", "/")))
    before = agent.watch.seq
    t0 = time.monotonic()
    try:
        resp = await page.goto(url, wait_until="load", timeout=float(args.get("timeout_ms", NAV_TIMEOUT_MS)))
    except Exception as e:  # noqa: BLE001
        msg = first_line(e)
        if "Timeout" in msg:
            raise OpError("notready", f"open {url}: the page did not load within {NAV_TIMEOUT_MS} ms") from e
        raise OpError("failed", f"open {url}: {msg}") from e
    info = await agent.page_info(before)
    return {**info, "status": resp.status if resp else None, "ms": round((time.monotonic() - t0) * 1000, 1)}


async def op_snapshot(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """The accessibility tree as compact YAML with refs (``selector``, ``depth``); the text also goes to a file."""
    page = await agent.page()
    selector = args.get("selector") or "body"
    depth = args.get("depth")
    loc = page.locator(selector)
    kwargs: dict[str, Any] = {"mode": "ai", "timeout": DEFAULT_TIMEOUT_MS}
    if depth is not None:
        kwargs["depth"] = int(depth)
    # the match count, the snapshot and the title go to Playwright together (all read-only): when nothing
    # matches, the snapshot, still waiting for an element, is aborted (its task cancelled) before the error
    aria = asyncio.ensure_future(loc.first.aria_snapshot(**kwargs))
    counted, title = await asyncio.gather(count_or_error(loc), agent.title())
    if counted == 0 or isinstance(counted, Exception):
        aria.cancel()
        await asyncio.wait([aria])
        if isinstance(counted, Exception):
            if not aria.cancelled():
                aria.exception()  # retrieved: the count's error is the one reported
            raise counted
        if aria.cancelled() or aria.exception() is not None:
            raise OpError("usage", f"nothing on {page.url} matches {selector!r}")
    raw = await aria
    text, prefix, refs = compact(raw)
    agent.ref_prefix = prefix or agent.ref_prefix
    out = agent.dir / "snapshots"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stamp()}.yaml"
    path.write_text(text)
    (agent.dir / "snapshot-latest.yaml").write_text(text)
    info = await agent.page_info(title=title)
    return {
        **info,
        "path": str(path),
        "bytes": len(text.encode()),
        "lines": text.count("\n"),
        "refs": refs,
        "selector": selector,
        "text": text,
    }


async def op_click(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Click a ref or selector (``target``); wait for a navigation it starts to load (see ``settle_after_action``)."""
    page = await agent.page()
    before_url, before = page.url, agent.watch.seq
    timeout = float(args.get("timeout_ms", DEFAULT_TIMEOUT_MS))
    _, what = await agent.act(str(args["target"]), "click", lambda loc: loc.click(timeout=timeout))
    title = await agent.settle_after_action()
    info = await agent.page_info(before, title)
    return {**info, "target": what, "navigated": page.url != before_url}


async def op_fill(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Fill a field (``target``, ``text``); a ``<select>`` gets the option whose label or value is the text."""
    loc, what, is_select = await agent.locate_field(str(args["target"]))
    timeout = float(args.get("timeout_ms", DEFAULT_TIMEOUT_MS))
    await agent.fill(loc, str(args.get("text", "")), timeout, what, is_select=is_select)
    return {**(await agent.page_info()), "target": what}


async def op_press(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Press a key (``Enter``, ``Tab``, ``Control+A``) on the focused element, or on ``target``."""
    page = await agent.page()
    key = str(args["key"])
    before_url, before = page.url, agent.watch.seq
    watch: Any = None
    since: tuple[int, int] | None = None
    try:
        if args.get("target"):
            loc, _ = await agent.locate(str(args["target"]))
            await loc.press(key, timeout=DEFAULT_TIMEOUT_MS)
        else:  # page.keyboard.press waits for no navigation: the page notes one its handlers request
            watch, since = await agent.arm_navigation_watch()
            await page.keyboard.press(key)
    except OpError:
        raise
    except Exception as e:  # noqa: BLE001
        raise OpError("failed", f"press {key}: {first_line(e)}") from e
    title = await agent.settle_after_action(watch, since)
    return {**(await agent.page_info(before, title)), "navigated": page.url != before_url}


async def op_wait(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Wait until ``args["text"]`` is visible (``timeout_ms``, default 5000); ``ms`` is how long it took."""
    page = await agent.page()
    text = str(args["text"])
    timeout = float(args.get("timeout_ms", DEFAULT_TIMEOUT_MS))
    t0 = time.monotonic()
    try:
        await page.get_by_text(text).first.wait_for(state="visible", timeout=timeout)
    except Exception as e:  # noqa: BLE001
        raise OpError("failed", f"wait {text!r}: not visible after {timeout:g} ms on {page.url}") from e
    return {**(await agent.page_info()), "ms": round((time.monotonic() - t0) * 1000, 1)}


async def op_screenshot(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Save a JPEG (PNG with ``png``) of the viewport, the full page or an element, at most 1568 px long."""
    path = await agent.screenshot(
        agent.dir / "screenshots",
        full=bool(args.get("full")),
        target=args.get("selector"),
        png=bool(args.get("png")),
        name=args.get("name"),
    )
    title = path.pop("title")
    return {**(await agent.page_info(title=title)), **path}


async def op_console(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Errors and warnings since the last ``console`` call (``all``: everything kept), deduplicated."""
    watch = agent.watch
    since = 0 if args.get("all") else watch.console_read
    rows = [c for c in watch.console if c["seq"] > since]
    if not args.get("peek"):
        watch.console_read = watch.seq
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in rows:
        where = f"{c['url']}:{c['line']}:{c['col']}" if c["url"] else c["page"]
        key = (c["level"], c["text"], where)
        g = groups.get(key)
        if g is None:
            groups[key] = {
                "level": c["level"],
                "text": c["text"],
                "where": where,
                "source": c["source"],
                "count": 1,
                "page": c["page"],
            }
        else:
            g["count"] += 1
    ordered = sorted(groups.values(), key=lambda g: (g["level"] != "error", -g["count"]))
    return {
        "errors": sum(1 for c in rows if c["level"] == "error"),
        "warnings": sum(1 for c in rows if c["level"] == "warning"),
        "groups": ordered,
    }


async def op_network(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Failed and slow requests since the last ``network`` call; static assets hidden unless ``all``."""
    watch = agent.watch
    since = 0 if args.get("since_start") else watch.network_read
    slow_ms = float(args.get("slow_ms") or SLOW_MS)
    rows = [r for r in watch.network if r["seq"] > since]
    if not args.get("peek"):
        watch.network_read = watch.seq
    shown = [r for r in rows if args.get("all") or not r["static"]]
    failed = [r for r in shown if r["failure"] or r["status"] >= 400]
    slow = [r for r in shown if r not in failed and (r["ms"] or 0) >= slow_ms]
    slow.sort(key=lambda r: -(r["ms"] or 0))
    return {
        "requests": len(rows),
        "hidden_static": len(rows) - len(shown),
        "failed": failed,
        "slow": slow,
        "slow_ms": slow_ms,
        "all": shown if args.get("list") else [],
    }


async def op_vitals(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """LCP, CLS, INP, FCP, TTFB and load timings of the current page (see :mod:`legible.browser._scripts`)."""
    page = await agent.page()
    doc: dict[str, Any] = await page.evaluate(_scripts.VITALS_READ)
    return doc


async def op_record_start(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Start a screencast recording of the tab (``title``: a first chapter); ``record stop`` encodes it."""
    if agent.recorder is not None:
        raise OpError("usage", "a recording is already running", hint="run `legible browser record stop` first")
    rec_dir = agent.dir / "recordings" / stamp()
    agent.recorder = Recorder(await agent.cdp(), rec_dir, agent.redactor)
    agent.recorder_label = str(args.get("title") or "")
    await agent.recorder.start()
    if agent.recorder_label:
        agent.recorder.chapter(agent.recorder_label)
    return {"dir": str(rec_dir), "recording": True}


async def op_record_chapter(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Show a chapter card (``title``) now, in the running recording."""
    if agent.recorder is None:
        raise OpError("usage", "no recording is running", hint="run `legible browser record start` first")
    await agent.chapter_card(str(args.get("title", "")), "")
    return {"recording": True}


async def op_record_stop(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Stop the recording and encode MP4, GIF and poster (see :func:`legible.browser._video.encode`)."""
    rec = agent.recorder
    if rec is None:
        raise OpError("usage", "no recording is running", hint="run `legible browser record start` first")
    agent.recorder = None
    await agent.undone()
    await rec.end_frame()
    await rec.stop()
    return await asyncio.to_thread(rec.encode, "recording")


async def op_journey(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    """Run a journey (see :func:`legible.browser.journey.run_in_agent`); ``args``: name, steps or script, record."""
    from legible.browser.journey import run_in_agent

    return dict(await run_in_agent(agent, args))


#: Operation name (the request's ``op``) -> its function.
OPS: dict[str, Op] = {
    "status": op_status,
    "open": op_open,
    "snapshot": op_snapshot,
    "click": op_click,
    "fill": op_fill,
    "press": op_press,
    "wait": op_wait,
    "screenshot": op_screenshot,
    "console": op_console,
    "network": op_network,
    "vitals": op_vitals,
    "record.start": op_record_start,
    "record.chapter": op_record_chapter,
    "record.stop": op_record_stop,
    "journey": op_journey,
}
