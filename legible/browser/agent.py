"""The browser agent: the ``chromium`` service's process. It owns Chromium and serves ``legible browser``.

``python -m legible.browser.agent --state-dir D --app-url U --otlp-url O --worktree K --chromium BIN
[--cdp-port P]``:

1. starts cheap: it serves its socket and prints its ready line at once, and launches Chromium (and
   Playwright's driver) at the first request (:meth:`Agent.ensure_launched`), so a stack whose browser is
   never used pays neither their start nor their memory (about 250 MiB). That first answer carries
   ``launched_ms`` (the client says so once on stderr), and ``.legible/browser/chromium.pid`` holds
   Chromium's pid while it runs (``legible status`` shows the service ``idle`` until then). With
   ``--cdp-port`` Chromium starts at once (a debugger may connect before any request). Then it
   launches the system Chromium headless through Playwright (``chromium.launch_persistent_context`` with
   ``executable_path``), which talks CDP over a pipe (``--remote-debugging-pipe``): no DevTools TCP port
   exists, so no other local process can drive the browser. Only with ``--cdp-port`` (``[stack] cdp_port =
   true``) does Chromium also listen on ``127.0.0.1:P``. The profile (``.legible/tmp/browser-profile``),
   Chromium's temp files and Playwright's artifacts (``TMPDIR``:
   :func:`legible.browser.client.browser_tmp_dir`, ``.legible/tmp``) are removed when the agent stops and
   by ``legible down``;
2. watches the tab (:mod:`legible.browser._observe`): console errors and warnings, uncaught exceptions,
   failed and finished requests go to ring buffers, errors are exported as OTLP logs (service ``browser``);
3. listens on a Unix socket (mode 0600, :func:`legible.browser.client.socket_path`) for one JSON request
   per connection, handled one at a time by the operation table :data:`legible.browser._ops.OPS`;
4. prints ``legible-browser ready`` (the service's readiness probe) and runs until SIGTERM, or until a
   launched Chromium exits (exit 1: the supervisor restarts the agent, idle again).

Lifetime: Playwright starts Chromium in its own process group, so the supervisor's signal to the agent's
group does not reach it; the agent kills Chromium's group itself when it stops, and when the agent is killed
(``kill -9``) the Playwright driver (the agent's child) sees its pipe close and kills Chromium, and Chromium
also exits when its CDP pipe closes. Every process carries ``LEGIBLE_STACK``, so ``legible down``/``gc``
find any straggler.

Refs: the last snapshot's refs stay valid in this one Playwright connection (Playwright's ``aria-ref=``
selector engine), so ``legible browser click e19`` works in the next process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from legible.browser import _otlp, _scripts
from legible.browser._common import (
    DEFAULT_TIMEOUT_MS,
    MAX_SIDE,
    NAV_TIMEOUT_MS,
    VIEWPORT,
    OpError,
    Recorder,
    count_or_error,
    first_line,
    process_redactor,
    resolve_url,
    stamp,
)
from legible.browser._observe import Watcher
from legible.browser._ops import OPS
from legible.browser._snapshot import resolve_ref
from legible.browser.client import browser_dir, browser_tmp_dir, pid_file, socket_path

#: How long a key of visible typing lasts in a recorded journey's video, in ms.
TYPE_DELAY_MS = 35

T = TypeVar("T")


def profile_dir(state_dir: Path) -> Path:
    """``.legible/tmp/browser-profile``: Chromium's throwaway profile (removed when the agent stops, and at down)."""
    return Path(state_dir) / "tmp" / "browser-profile"


class Agent:
    """The running agent: Chromium, one tab, the watcher, helpers the operations share. Build with :func:`serve`.

    Attributes:
        dir: ``.legible/browser`` (screenshots, snapshots, recordings, journey runs).
        cdp_port: the loopback CDP port when one was asked for, else ``None``.
        watch: console and network buffers (:class:`legible.browser._observe.Watcher`).
        recorder: the running recording, or ``None``.
        redactor: redacts chapter titles and overlay text (:mod:`legible.redact`).

    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state_dir = Path(args.state_dir)
        self.dir = browser_dir(self.state_dir)
        self.tmp = browser_tmp_dir(self.state_dir)
        self.profile = profile_dir(self.state_dir)
        self.app_url = args.app_url.rstrip("/")
        self.cdp_port: int | None = args.cdp_port or None
        self.lock = asyncio.Lock()
        self.watch = Watcher(args.otlp_url, args.worktree)
        self.redactor = process_redactor()
        self.ref_prefix = ""
        self.recorder: Recorder | None = None
        self.recorder_label = ""
        self.recording_s = 0.0  # time the recording added to the walk so far (cards, outlines, key delays)
        self._undo: asyncio.Future[None] | None = None  # a card's removal or an outline's, still on its way
        self.closed = asyncio.Event()
        self.pw: Any = None
        self.context: Any = None
        self.chromium_pid: int | None = None
        self._page: Any = None
        self._cdp: Any = None
        self.navs = 0  # main-frame navigations committed in the tab (framenavigated)
        self.nav_ends = 0  # main-frame navigation requests that finished or failed (a 204 commits nothing)
        self.nav_pending: set[Any] = set()  # main-frame navigation requests started and not yet ended
        self._nav_event = asyncio.Event()  # set at each of those two
        self.prepared_navs = 0  # `navs` when the tab's document was last prepared for locators (prepare_next)
        self._prepare: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[None]] = set()  # fire-and-forget calls, kept from the collector

    # -- set-up and tear-down -------------------------------------------------------------------------
    async def ensure_launched(self) -> float | None:
        """Launch Chromium unless it runs; return the milliseconds the launch took, or ``None`` if it ran.

        Raises:
            OpError: Chromium did not start (kind ``failed``; the agent stays up and tries again at the
                next request).

        """
        if self.context is not None:
            return None
        t0 = asyncio.get_running_loop().time()
        try:
            await self.launch()
        except Exception as e:  # noqa: BLE001 - reported to the caller; the next request tries again
            self.kill_chromium()
            if self.pw is not None:
                with contextlib.suppress(Exception):
                    await self.pw.stop()
            self.pw = self.context = self._page = self._cdp = None
            self.chromium_pid = None
            print(f"legible-browser: chromium did not start: {first_line(e)}", flush=True)
            raise OpError(
                "failed", f"chromium did not start: {first_line(e)}", hint="see .legible/logs/chromium.log"
            ) from e
        ms = (asyncio.get_running_loop().time() - t0) * 1000
        print(f"legible-browser: chromium started in {ms:.0f} ms (pid {self.chromium_pid})", flush=True)
        return ms

    async def launch(self) -> None:
        """Launch Chromium through Playwright (CDP over a pipe), watch it and prepare the tab.

        Raises:
            playwright.async_api.Error: Chromium did not start (the message says why).

        """
        from playwright.async_api import async_playwright

        from legible.browser import chromium_args, chromium_env

        self.dir.mkdir(parents=True, exist_ok=True)
        self.pw = await async_playwright().start()
        self.context = await self.pw.chromium.launch_persistent_context(
            str(self.profile),
            executable_path=self.args.chromium,
            headless=True,
            args=chromium_args(self.cdp_port),
            env=chromium_env(self.dir, self.tmp),
            chromium_sandbox=os.geteuid() != 0,  # root in a container has no user namespaces for the sandbox
            handle_sigint=False,
            handle_sigterm=False,
            handle_sighup=False,
            viewport=VIEWPORT,
            timeout=20_000,
        )
        self.context.on("close", lambda _ctx: self.closed.set())
        self.chromium_pid = _find_chromium(self.profile)
        if self.chromium_pid is not None:
            pid_file(self.state_dir).write_text(f"{self.chromium_pid}\n")
        await self.context.add_init_script(_scripts.VITALS_INIT)
        self.watch.attach(self.context)
        # the context's, not the page's: the watcher subscribed to these already, so no event crosses twice
        self.context.on("request", self._on_request_start)
        self.context.on("requestfinished", self._on_request_finished)
        self.context.on("requestfailed", self._on_request_end)
        await self.page()

    def kill_chromium(self) -> None:
        """SIGKILL Chromium's process group at once (a throwaway headless profile needs no graceful exit)."""
        pid = self.chromium_pid
        pid_file(self.state_dir).unlink(missing_ok=True)
        if pid is None:
            return
        import psutil

        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(3)

    # -- the tab --------------------------------------------------------------------------------------
    async def page(self) -> Any:
        """The agent's tab (opened again if it was closed)."""
        if self._page is None or self._page.is_closed():
            pages = [p for p in self.context.pages if not p.is_closed()]
            self._page = pages[0] if pages else await self.context.new_page()
            await self._page.set_viewport_size(VIEWPORT)
            self._page.on("framenavigated", self._on_frame_navigated)
            self._cdp = None
        return self._page

    def _on_frame_navigated(self, frame: Any) -> None:
        if frame.parent_frame is None:
            self.navs += 1
            self.nav_pending.clear()  # what was under way has committed (or was replaced by what did)
            self._nav_event.set()

    def _is_main_navigation(self, request: Any) -> bool:
        try:
            return bool(request.is_navigation_request() and request.frame == self._page.main_frame)
        except Exception:  # noqa: BLE001 - a service worker's request has no frame
            return False

    def _on_request_start(self, request: Any) -> None:
        if self._is_main_navigation(request):
            self.nav_pending.add(request)

    def _on_request_end(self, request: Any) -> None:
        if self._is_main_navigation(request):
            self.nav_pending.discard(request)
            self.nav_ends += 1
            self._nav_event.set()

    def _on_request_finished(self, request: Any) -> None:
        if not self._is_main_navigation(request):
            return
        self.nav_pending.discard(request)

        async def judge() -> None:  # a redirect (a POST answered 303) does not end the navigation: its target does
            try:
                resp = await request.response()
            except Exception:  # noqa: BLE001 - the page went away: count it ended
                resp = None
            if resp is not None and 300 <= resp.status < 400 and resp.headers.get("location"):
                return
            self.nav_ends += 1
            self._nav_event.set()

        task = asyncio.ensure_future(judge())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cdp(self) -> Any:
        """A CDP session on the tab (for screenshots with scaling, and the screencast)."""
        page = await self.page()
        if self._cdp is None:
            self._cdp = await self.context.new_cdp_session(page)
        return self._cdp

    # -- the request loop -----------------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one request on one connection (see the client module's wire format)."""
        try:
            line = await reader.readline()
            req = json.loads(line or b"{}")
            op = str(req.get("op", ""))
            fn = OPS.get(op) or OPS.get(op.replace("_", ".").replace("-", "."))
            if fn is None:
                raise OpError("usage", f"unknown browser operation {op!r}")
            async with self.lock:
                launched_ms = await self.ensure_launched()
                result = await fn(self, req.get("args") or {})
            answer: dict[str, Any] = {"ok": True, "result": result}
            if launched_ms is not None:
                answer["launched_ms"] = round(launched_ms, 1)
        except OpError as e:
            answer = {"ok": False, "error": {"kind": e.kind, "message": e.message, "hint": e.hint}}
        except Exception as e:  # noqa: BLE001 - report, keep serving
            answer = {"ok": False, "error": {"kind": "failed", "message": first_line(e), "hint": ""}}
        try:
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()
        self.prepare_next()

    def prepare_next(self) -> None:
        """Once an answer is written, build Playwright's injected script in a new document before the next call.

        Playwright builds its injected script (selector engines, actionability checks, aria snapshots) in a
        document's utility world at the first locator call there: about 30 ms on the shop's pages (Playwright
        1.65, Chromium 156), paid by the first call after each navigation. Between two calls the client
        prints the answer and the next call starts a process (tens of ms), so the agent does it then, once per
        main-frame navigation, with a locator count on ``:root``. Nothing reaches the page: the utility world
        is Playwright's isolated world. A call that comes sooner runs beside it (Playwright orders the two).
        """
        page = self._page
        if page is None or self.navs == self.prepared_navs:
            return
        self.prepared_navs = self.navs

        async def prepare() -> None:
            with contextlib.suppress(Exception):  # the tab navigated or closed meanwhile: the next call builds it
                await page.locator(":root").count()

        self._prepare = asyncio.ensure_future(prepare())

    # -- helpers the operations and journeys share ----------------------------------------------------
    def resolve_url(self, target: str) -> str:
        """``/order`` or ``order`` -> the app's URL; absolute URLs and ``about:``/``data:`` pass through."""
        return resolve_url(self.app_url, target)

    async def locate(self, target: str) -> tuple[Any, str]:
        """Return ``(locator, description)`` for a ref from the last snapshot or a Playwright selector.

        Raises:
            OpError: the ref is unknown, or nothing matches the selector.

        """
        _, matches, first = await self._matcher(target)
        return first, self._judge(target, await count_or_error(matches))[1]

    async def locate_field(self, target: str) -> tuple[Any, str, bool]:
        """As :meth:`locate`, and whether the element is a ``<select>``: ``(locator, description, is_select)``.

        The two locator counts (matches, and the first match that is a ``<select>``) go to Playwright
        together: one round trip for both. Both are read-only.

        Raises:
            OpError: as :meth:`locate`.

        """
        _, matches, first = await self._matcher(target)
        counted, selects = await asyncio.gather(
            count_or_error(matches), count_or_error(first.and_(first.page.locator("select")))
        )
        return first, self._judge(target, counted)[1], selects == 1

    async def act(self, target: str, verb: str, action: Callable[[Any], Awaitable[T]]) -> tuple[T, str]:
        """Run ``action(locator)`` on ``target`` (as :meth:`locate`) with the match count sent beside it.

        One round trip less than :meth:`locate` then the action: the count (for the description and the
        "nothing matches" error) and the action go to Playwright together. When nothing matches, the action,
        still waiting for an element, is aborted (Playwright aborts a call whose task is cancelled) and awaited,
        so it acts on nothing after the error, even if a matching element appears later; an action that did
        complete meanwhile (the element appeared between the count and the action) counts as done.

        Returns:
            ``(the action's result, description)``.

        Raises:
            OpError: the ref is unknown, or nothing matches the selector (the action did nothing); kind
                ``failed`` with ``{verb} {description}: {Playwright's message}`` when the action failed.

        """
        loc, matches, first = await self._matcher(target)
        task = asyncio.ensure_future(action(first))
        counted = await count_or_error(matches)
        if counted == 0 or isinstance(counted, BaseException):
            task.cancel()
            await asyncio.wait([task])
            if task.cancelled() or task.exception() is not None:
                self._judge(target, counted)  # raises the error locate raises
            return task.result(), self._describe(target, loc is not first, 1)
        _, what = self._judge(target, counted)
        try:
            return await task, what
        except Exception as e:  # noqa: BLE001
            raise OpError("failed", f"{verb} {what}: {first_line(e)}") from e

    async def _matcher(self, target: str) -> tuple[Any, Any, Any]:
        """``(locator, what to count, what to act on)`` for a ref or a selector (no round trip)."""
        page = await self.page()
        ref = resolve_ref(target, self.ref_prefix)
        if ref is not None:
            loc = page.locator(f"aria-ref={ref}")
            return loc, loc, loc
        loc = page.locator(target)
        return loc, loc, loc.first

    def _describe(self, target: str, selector: bool, n: int) -> str:
        if not selector:
            return f"ref {target}"
        return f"{target} (first of {n} matches)" if n > 1 else target

    def _judge(self, target: str, counted: int | BaseException) -> tuple[int, str]:
        """``(n, description)`` from a match count, or the :class:`OpError` of :meth:`locate` for no match."""
        page = self._page
        if resolve_ref(target, self.ref_prefix) is not None:
            if not isinstance(counted, int) or counted == 0:  # Playwright raises for a ref of an older snapshot
                raise OpError(
                    "usage",
                    f"ref {target} is not on the page (it changed since the last snapshot, or no snapshot was taken)",
                    hint="run `legible browser snapshot` and use a ref from it",
                )
            return counted, f"ref {target}"
        if isinstance(counted, BaseException):  # a malformed selector
            raise OpError("usage", f"bad selector {target!r}: {first_line(counted)}") from counted
        if counted == 0:
            raise OpError(
                "usage",
                f"nothing on {page.url} matches {target!r}",
                hint="run `legible browser snapshot` for refs, or check the selector",
            )
        return counted, self._describe(target, True, counted)

    async def title(self) -> str:
        """The tab's document title (``""`` while it navigates)."""
        page = await self.page()
        try:
            return str(await page.title())
        except Exception:  # noqa: BLE001 - navigating
            return ""

    async def page_info(self, since: int | None = None, title: str | None = None) -> dict[str, Any]:
        """``{"url", "title", "new_console_errors"}``: errors counted after ``since`` (default: the last read).

        ``title``: the document's title when the caller has just read it in the page (one round trip less).
        """
        page = await self.page()
        if title is None:
            title = await self.title()
        since = self.watch.console_read if since is None else since
        return {"url": page.url, "title": title, "new_console_errors": self.watch.errors_since(since)}

    async def settle(self) -> None:
        """Wait (at most 15 s) for the tab's ``load`` state after an action that may navigate."""
        page = await self.page()
        with contextlib.suppress(Exception):
            await page.wait_for_load_state("load", timeout=NAV_TIMEOUT_MS)

    async def arm_navigation_watch(self) -> tuple[Any, tuple[int, int]]:
        """Before a key press with no element: what :meth:`settle_after_action` needs to see its navigation.

        Returns:
            ``(watch, since)``: ``watch`` a Playwright ``JSHandle`` on the object of
            :data:`legible.browser._scripts.NAV_WATCH`, which notes a navigation the page requests from now on
            (so one the key's own handlers request is seen, although ``page.keyboard.press`` waits for none),
            or ``None`` when the page is between documents; ``since`` the ``(navs, nav_ends)`` counters before
            the press.

        """
        page = await self.page()
        since = (self.navs, self.nav_ends)
        try:
            return await page.evaluate_handle(_scripts.NAV_WATCH), since
        except Exception:  # noqa: BLE001 - the page is between documents: the plain turn and the counters judge
            return None, since

    async def settle_after_action(self, watch: Any = None, since: tuple[int, int] | None = None) -> str | None:
        """Let the page finish what an action started, then wait for ``load``; return the title (``None``: unread).

        Call it right after a Playwright ``click`` or ``press``, which have already waited for a navigation
        the action requested to commit (their default "wait after", Playwright's actionability docs), or
        after ``page.keyboard.press``, which does not, with ``watch`` and ``since`` from
        :meth:`arm_navigation_watch` taken before it (the watch is released here). Then:

        1. one macrotask turn of the page (:data:`legible.browser._scripts.TURN`), so what the action's
           handlers queued (``setTimeout(0)``, promise callbacks) runs, and a navigation it requests is seen
           in the page itself (Navigation API ``navigate`` event; no timing guess);
        2. if such a navigation was requested (or the turn's document went away under it, or a main-frame
           navigation request is still under way: the handler ran before the turn) and Playwright has
           not seen it commit yet, wait until it does, or until its request ends without a document (a 204,
           a failure), at most 15 s in all;
        3. wait (at most 15 s in all) for the tab's ``load`` state, as :meth:`settle`.

        This replaced a fixed 50 ms sleep before step 3: a navigation started later than that one turn (after
        a ``fetch``, or from a longer timer) is not waited for; ``legible browser wait TEXT`` waits for it.
        """
        page = await self.page()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NAV_TIMEOUT_MS / 1000
        navs, ends = since or (self.navs, self.nav_ends)
        title: str | None = None
        dest: str | None = None
        try:
            if watch is None:
                title, dest = await page.evaluate(_scripts.TURN)
            else:
                title, dest = await watch.evaluate(_scripts.TURN_WATCHED)
        except Exception as e:  # noqa: BLE001 - the document went away during the turn: a navigation commits
            title, dest = None, first_line(e)  # Playwright may not have seen the commit yet: wait for it
        if watch is not None:  # released off the answer's path (it goes with its document anyway)
            task = asyncio.ensure_future(_quietly(watch.dispose()))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if dest is None and self.nav_pending and self.navs == navs:
            # the handler's navigation started before the turn (a busy page or machine runs its timer first):
            # the turn saw no `navigate` event, but its main-frame request is under way
            dest = "a navigation request under way"
        if dest is not None:
            title = None  # the title is read again from the new document
            while self.navs == navs and self.nav_ends == ends and (left := deadline - loop.time()) > 0:
                self._nav_event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nav_event.wait(), left)
        if self.navs != navs:
            title = None
        with contextlib.suppress(Exception):
            await page.wait_for_load_state("load", timeout=max(1.0, (deadline - loop.time()) * 1000))
        return title

    async def fill(
        self, loc: Any, text: str, timeout: float, what: str, slow: bool = False, is_select: bool | None = None
    ) -> None:
        """Fill ``loc`` with ``text`` (a ``<select>``: pick the option by label or value); ``slow`` types visibly.

        ``is_select``: whether ``loc`` is a ``<select>``, when the caller has counted it already
        (:meth:`locate_field`); ``None`` counts it here.

        Raises:
            OpError: no such option, or the element cannot be filled within ``timeout`` ms.

        """
        # a recorded step's outline comes off before the typing, as it did when a main-world evaluate here queued
        # behind its removal (without this, the recorded journey's chapter cards drifted off their chapters)
        await self.undone()
        try:
            # a locator count runs in Playwright's utility world, which every locator call prepares anyway;
            # `loc.evaluate` runs in the page's main world, whose first use on each document injects
            # Playwright's script there (~30 ms; Playwright 1.65, Chromium 156): the first fill of a page paid it
            if is_select is None:
                is_select = bool(await loc.and_(loc.page.locator("select")).count())
            if is_select:
                value = await loc.evaluate(_scripts.PICK_OPTION, text, timeout=timeout)
                if value is None:
                    labels = await loc.evaluate("(el) => [...el.options].map((o) => o.label)", timeout=timeout)
                    shown = ", ".join(repr(x) for x in labels[:10]) + (" ..." if len(labels) > 10 else "")
                    raise OpError("usage", f"fill {what}: no option is labelled {text!r} (options: {shown})")
                await loc.select_option(value=value, timeout=timeout)
            elif slow and self.recorder is not None:
                await loc.fill("", timeout=timeout)
                t0, wall0 = time.monotonic(), time.time()
                await loc.press_sequentially(text, timeout=timeout + 60 * len(text))
                # key by key at full speed; the video plays it at TYPE_DELAY_MS a key (Recorder.stretch)
                self.recorder.stretch(wall0, time.time(), len(text) * TYPE_DELAY_MS / 1000)
                self.recording_s += time.monotonic() - t0  # an unrecorded run fills in one call instead
            else:
                await loc.fill(text, timeout=timeout)
        except OpError:
            raise
        except Exception as e:  # noqa: BLE001
            raise OpError("failed", f"fill {what}: {first_line(e)}") from e

    async def screenshot(
        self,
        out_dir: Path,
        *,
        full: bool = False,
        target: str | None = None,
        png: bool = False,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Capture with CDP ``Page.captureScreenshot`` and a ``clip.scale`` that fits :data:`MAX_SIDE`.

        Returns:
            ``{"path", "bytes", "width", "height", "format", "title"}`` (px; ``format`` is ``jpeg`` or ``png``;
            ``title``: the document's title, read with the clip).

        Raises:
            OpError: ``target`` is not on the page or not visible.

        """
        page = await self.page()
        await self.undone()  # no card or outline in a screenshot
        fmt = "png" if png else "jpeg"
        params: dict[str, Any] = {"format": fmt, "captureBeyondViewport": bool(full or target)}
        if fmt == "jpeg":
            params["quality"] = 80
        else:  # zlib's fast level: the same pixels (lossless), ~1.8x the bytes, ~40% less time on the shop's page
            params["optimizeForSpeed"] = True  # (JPEG: Chromium 156 gave byte-identical output with or without)
        cdp = await self.cdp()
        shot: dict[str, Any] | None = None
        if target:
            loc, _ = await self.locate(target)
            box = await loc.bounding_box()
            if box is None:
                raise OpError("failed", f"screenshot: {target!r} is not visible")
            sx, sy, dpr, title = await page.evaluate("[scrollX, scrollY, devicePixelRatio, document.title]")
            clip = {"x": box["x"] + sx, "y": box["y"] + sy, "width": box["width"], "height": box["height"], "dpr": dpr}
        elif full:
            clip = await page.evaluate(_scripts.CLIP, ["full", ""])
            title = clip.pop("title")
        else:  # the viewport: capture it (no clip: the viewport) while its size is read, one round trip less
            shot, clip = await asyncio.gather(
                cdp.send("Page.captureScreenshot", params), page.evaluate(_scripts.CLIP, ["viewport", ""])
            )
            title = clip.pop("title")
        dpr = float(clip.pop("dpr") or 1)
        scale = min(1.0, MAX_SIDE / (max(clip["width"], clip["height"]) * dpr))
        if shot is None or scale < 1:  # an element, the full page, or a viewport too large: the clip scales it
            shot = await cdp.send("Page.captureScreenshot", {**params, "clip": {**clip, "scale": scale}})
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name or stamp()}.{'png' if png else 'jpg'}"
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        w, h = round(clip["width"] * scale * dpr), round(clip["height"] * scale * dpr)
        return {"path": str(path), "bytes": len(data), "width": w, "height": h, "format": fmt, "title": title}

    async def chapter_card(self, title: str, sub: str, hold_s: float = 0.7) -> None:
        """Show a full-viewport card held ``hold_s`` seconds in the video, and mark a chapter (recording only).

        The card gets a frame of its own, held when the video is encoded (:meth:`Recorder.snap`), so the walk
        does not wait the hold; the chapter starts on that frame. The text is redacted.
        """
        if self.recorder is None:
            return
        page = await self.page()
        title, sub = self.redactor.text(title), self.redactor.text(sub)
        t0, at = time.monotonic(), time.time()
        await self.undone()
        with contextlib.suppress(Exception):
            await page.evaluate(_scripts.CARD_SHOW, [title, sub])
            at = await self.recorder.snap(hold_s)  # the card's own frame, held in the video, not in the walk
            self._later(page.evaluate(_scripts.CARD_HIDE))
        self.recorder.chapter(title, at)  # the chapter starts on the card's frame
        self.recording_s += time.monotonic() - t0

    async def highlight(self, loc: Any, hold_s: float = 0.4) -> None:
        """Outline the element, held ``hold_s`` seconds in the video (recording only; see :meth:`chapter_card`)."""
        if self.recorder is None:
            return
        t0 = time.monotonic()
        await self.undone()
        with contextlib.suppress(Exception):
            await loc.evaluate(_scripts.HIGHLIGHT_ON, timeout=DEFAULT_TIMEOUT_MS)
            await self.recorder.snap(hold_s)  # the outlined element's own frame, held in the video
            self._later(loc.evaluate(_scripts.HIGHLIGHT_OFF, timeout=1000))
        self.recording_s += time.monotonic() - t0

    def _later(self, undo: Any) -> None:
        """Send ``undo`` (removing a card or an outline) without waiting for its answer.

        The walk's next call on the page goes over the same Playwright session and so runs in the page after
        it; only a capture (:meth:`undone`, before the next card, outline, screenshot or end frame) has to
        wait for it, because a screenshot is taken by the browser process, not by the page.
        """

        async def quietly() -> None:
            with contextlib.suppress(Exception):  # the page navigated away: the card went with it
                await undo

        self._undo = asyncio.ensure_future(quietly())

    async def undone(self) -> None:
        """Wait until the last card or outline is off the page (see :meth:`_later`)."""
        if self._undo is not None:
            undo, self._undo = self._undo, None
            await undo

    @contextlib.asynccontextmanager
    async def traced(self, trace_id: str, span_id: str) -> AsyncIterator[None]:
        """Send ``traceparent`` (W3C) for ``span_id`` with every request of the tab while inside."""
        self.watch.trace = (trace_id, span_id)
        await self.context.set_extra_http_headers({"traceparent": _otlp.traceparent(trace_id, span_id)})
        try:
            yield
        finally:
            self.watch.trace = None
            with contextlib.suppress(Exception):
                await self.context.set_extra_http_headers({})


async def _quietly(call: Any) -> None:
    """Await a Playwright call whose failure does not matter (the page navigated or closed meanwhile)."""
    with contextlib.suppress(Exception):
        await call


def _find_chromium(profile: Path) -> int | None:
    """The pid of the Chromium browser process (not a helper) using ``profile``, among this process's descendants."""
    import psutil

    flag = f"--user-data-dir={profile}"
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                argv = child.cmdline()
                if flag in argv and not any(a.startswith("--type=") for a in argv):
                    return int(child.pid)
    return None


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


async def serve(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT/SIGHUP or until Chromium exits; return the exit code."""
    agent = Agent(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    sock = socket_path(agent.state_dir)
    server = None
    try:
        if agent.cdp_port:
            await agent.launch()
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(agent.handle, path=str(sock))
        os.chmod(sock, 0o600)
        flusher = asyncio.ensure_future(agent.watch.flush_forever())
        if agent.cdp_port:
            print(
                f"legible-browser: warning: CDP listens on 127.0.0.1:{agent.cdp_port} ([stack] cdp_port = true): "
                "any local process can drive this browser",
                flush=True,
            )
        cdp = f"127.0.0.1:{agent.cdp_port}" if agent.cdp_port else "pipe"
        print(f"legible-browser ready cdp={cdp} socket={sock}", flush=True)
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(agent.closed.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        flusher.cancel()
        if agent.closed.is_set() and not stop.is_set():
            await asyncio.sleep(0.1)  # a group SIGTERM reaches the Playwright driver too: let ours land
        if agent.closed.is_set() and not stop.is_set():
            print("legible-browser: chromium exited", flush=True)
            return 1
        await agent.watch.flush()
        return 0
    except Exception as e:  # noqa: BLE001 - one line for the service log, then exit non-zero
        print(f"legible-browser: {type(e).__name__}: {first_line(e)}", flush=True)
        return 1
    finally:
        if server is not None:
            server.close()
        with contextlib.suppress(OSError):
            sock.unlink()
        agent.kill_chromium()
        shutil.rmtree(agent.tmp, ignore_errors=True)
        shutil.rmtree(agent.profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m legible.browser.agent``; see the module docstring for the flags."""
    p = argparse.ArgumentParser(prog="legible.browser.agent")
    p.add_argument("--cdp-port", type=int, default=0, help="also open CDP on 127.0.0.1:PORT (default: pipe only)")
    p.add_argument("--state-dir", required=True, help="the worktree's .legible directory")
    p.add_argument("--app-url", required=True, help="base URL that relative paths resolve against")
    p.add_argument("--otlp-url", default="", help="collector OTLP/HTTP base URL for browser logs")
    p.add_argument("--worktree", default="", help="worktree key (resource attribute legible.worktree)")
    p.add_argument("--chromium", required=True, help="the Chromium executable")
    args = p.parse_args(argv)
    tmp = browser_tmp_dir(Path(args.state_dir))
    _fresh_dir(tmp)  # what a killed agent left behind goes now
    shutil.rmtree(profile_dir(Path(args.state_dir)), ignore_errors=True)
    pid_file(Path(args.state_dir)).unlink(missing_ok=True)  # a killed agent's Chromium is gone (its pipe closed)
    for name in ("TMPDIR", "TMP", "TEMP"):
        os.environ[name] = str(tmp)  # the Playwright driver and Chromium inherit it
    code = asyncio.run(serve(args))
    sys.stdout.flush()
    os._exit(code)  # do not wait on Playwright's driver teardown: Chromium is gone, the driver follows


if __name__ == "__main__":
    main()
