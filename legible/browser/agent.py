"""The browser agent: the ``chromium`` service's process. It owns Chromium and serves ``legible browser``.

``python -m legible.browser.agent --port P --state-dir D --app-url U --otlp-url O --worktree K``:

1. starts the system Chromium headless as its child, in the agent's process group (so the supervisor's
   SIGTERM/SIGKILL to the group reaches every Chromium helper), with CDP bound to ``127.0.0.1:P`` and the
   profile under ``.legible/browser/profile`` (flags: :func:`legible.browser.chromium_argv`);
2. waits for ``GET /json/version`` (the DevTools HTTP endpoint,
   https://chromedevtools.github.io/devtools-protocol/#endpoints), then connects Playwright over CDP
   (``connect_over_cdp``) and keeps one tab;
3. watches the tab continuously: console errors and warnings, uncaught exceptions, failed (>= 400 or
   network-failed) and finished requests go to ring buffers that ``legible browser console|network`` read
   ("since the last call"), and errors and warnings are exported as OTLP logs (service ``browser``);
4. listens on a Unix socket (:func:`legible.browser.client.socket_path`) for one JSON request per
   connection, handled one at a time (wire format in :mod:`legible.browser.client`);
5. prints ``legible-browser ready`` (the service's readiness probe) and runs until SIGTERM.

Refs: the last snapshot's refs stay valid in this one Playwright connection (Playwright's ``aria-ref=``
selector engine), so ``legible browser click e19`` works in the next process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import importlib.util
import json
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legible.browser import _otlp, _scripts
from legible.browser._snapshot import compact, resolve_ref
from legible.browser.client import browser_dir, socket_path

if TYPE_CHECKING:
    from legible.contract import JourneyDoc

#: Longest side of a screenshot in px (what vision models take without downscaling).
MAX_SIDE = 1568
#: Viewport of the tab in CSS px.
VIEWPORT = {"width": 1280, "height": 800}
#: Snapshots longer than this many bytes are printed cut; the file always has the whole snapshot.
INLINE_SNAPSHOT = 4000
#: Requests slower than this many ms are listed by ``network`` (unless ``--slow-ms``).
SLOW_MS = 500.0
#: Resource types hidden by ``network`` unless ``--all`` (Playwright's ``request.resource_type``).
STATIC_TYPES = frozenset({"image", "stylesheet", "font", "script", "media", "manifest", "texttrack"})
BUFFER = 2000
DEFAULT_TIMEOUT_MS = 5000
NAV_TIMEOUT_MS = 15000
_STACK_LOC = re.compile(r"\(?((?:https?|file|data|blob):[^\s()]+?):(\d+):(\d+)\)?\s*$")


class OpError(Exception):
    """An operation failed; ``kind`` picks the client's exception and exit code (see the client module)."""

    def __init__(self, kind: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint


def _now_ns() -> int:
    return time.time_ns()


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Call log"):
            return line[:300]
    return type(exc).__name__


class Recorder:
    """Screencast frames of one page to JPEG files, with chapter marks (see :mod:`legible.browser._video`)."""

    def __init__(self, cdp: Any, out_dir: Path) -> None:
        self.cdp = cdp
        self.dir = out_dir
        self.frames: list[tuple[Path, float]] = []
        self.chapters: list[tuple[str, float]] = []
        self.started = time.time()
        (out_dir / "frames").mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        """Start ``Page.startScreencast`` (JPEG, quality 70, at most the viewport size)."""
        self.cdp.on("Page.screencastFrame", self._on_frame)
        await self.cdp.send(
            "Page.startScreencast",
            {"format": "jpeg", "quality": 70, "maxWidth": VIEWPORT["width"], "maxHeight": VIEWPORT["height"]},
        )

    def _on_frame(self, params: dict[str, Any]) -> None:
        ts = float(params.get("metadata", {}).get("timestamp") or time.time())
        path = self.dir / "frames" / f"{len(self.frames):06d}.jpg"
        path.write_bytes(base64.b64decode(params["data"]))
        self.frames.append((path, ts))
        asyncio.ensure_future(self._ack(params["sessionId"]))

    async def _ack(self, session_id: int) -> None:
        with contextlib.suppress(Exception):
            await self.cdp.send("Page.screencastFrameAck", {"sessionId": session_id})

    def chapter(self, title: str) -> None:
        """Mark a chapter starting now."""
        self.chapters.append((title, time.time()))

    async def stop(self) -> None:
        """Stop the screencast."""
        with contextlib.suppress(Exception):
            await self.cdp.send("Page.stopScreencast")

    def encode(self, name: str) -> dict[str, Any]:
        """Encode the frames (blocking: run it in a thread). See :func:`legible.browser._video.encode`."""
        from legible.browser._video import Chapter, encode

        frames = sorted(self.frames, key=lambda f: f[1])
        if not frames:
            raise OpError("failed", "no frames were captured while recording")
        t0 = frames[0][1]
        chapters = [Chapter(t, max(0.0, ts - t0)) for t, ts in self.chapters]
        return encode(frames, chapters, self.dir, name)


class Agent:
    """The running agent: Chromium, one tab, buffers, the socket server. Build with :func:`serve`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state_dir = Path(args.state_dir)
        self.dir = browser_dir(self.state_dir)
        self.app_url = args.app_url.rstrip("/")
        self.lock = asyncio.Lock()
        self.console: deque[dict[str, Any]] = deque(maxlen=BUFFER)
        self.network: deque[dict[str, Any]] = deque(maxlen=BUFFER)
        self.seq = 0
        self.console_read = 0
        self.network_read = 0
        self.ref_prefix = ""
        self.outbox: list[_otlp.LogRecord] = []
        self.trace: tuple[str, str] | None = None  # (trace_id, span_id) while a journey runs
        self.recorder: Recorder | None = None
        self.recorder_label = ""
        self.pw: Any = None
        self.browser: Any = None
        self.context: Any = None
        self._page: Any = None
        self._cdp: Any = None
        self.chromium: asyncio.subprocess.Process | None = None

    # -- set-up ---------------------------------------------------------------------------------------
    async def launch(self) -> None:
        """Start Chromium, wait for its CDP endpoint, connect Playwright and prepare the tab.

        Raises:
            RuntimeError: Chromium exited or its endpoint did not answer within 20 s.

        """
        from legible.browser import chromium_argv, chromium_env

        self.dir.mkdir(parents=True, exist_ok=True)
        port = int(self.args.port)
        argv = chromium_argv(self.args.chromium, port, self.dir / "profile")
        err = open(self.dir / "chromium-stderr.log", "ab")  # noqa: SIM115 - kept open for the child's life
        self.chromium = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env=chromium_env(self.dir),
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call
        )
        from playwright.async_api import async_playwright

        driver = asyncio.ensure_future(async_playwright().start())  # the Node driver starts while Chromium does
        deadline = time.monotonic() + 20
        while True:
            if self.chromium.returncode is not None:
                raise RuntimeError(f"chromium exited with code {self.chromium.returncode}; see {err.name}")
            if await asyncio.to_thread(_cdp_up, port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromium's CDP endpoint 127.0.0.1:{port} did not answer in 20 s")
            await asyncio.sleep(0.02)
        self.pw = await driver
        self.browser = await self.pw.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
        self.context = self.browser.contexts[0] if self.browser.contexts else await self.browser.new_context()
        await self.context.add_init_script(_scripts.VITALS_INIT)
        self.context.on("console", self._on_console)
        self.context.on("weberror", self._on_weberror)
        self.context.on("requestfinished", self._on_request_finished)
        self.context.on("requestfailed", self._on_request_failed)
        await self.page()

    async def page(self) -> Any:
        """The agent's tab (opened again if it was closed)."""
        if self._page is None or self._page.is_closed():
            pages = [p for p in self.context.pages if not p.is_closed()]
            self._page = pages[0] if pages else await self.context.new_page()
            await self._page.set_viewport_size(VIEWPORT)
            self._cdp = None
        return self._page

    async def cdp(self) -> Any:
        """A CDP session on the tab (for screenshots with scaling, and the screencast)."""
        page = await self.page()
        if self._cdp is None:
            self._cdp = await self.context.new_cdp_session(page)
        return self._cdp

    # -- observers ------------------------------------------------------------------------------------
    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _add_console(self, level: str, text: str, url: str, line: int, col: int, source: str, page_url: str) -> None:
        entry = {
            "seq": self._next(),
            "time_ns": _now_ns(),
            "level": level,
            "text": text[:2000],
            "url": url,
            "line": line,
            "col": col,
            "source": source,
            "page": page_url,
        }
        self.console.append(entry)
        where = f"{url}:{line}:{col}" if url else page_url
        self._log("error" if level == "error" else "warn", f"{text[:2000]} ({where})", {
            "browser.source": source,
            "code.filepath": url,
            "code.lineno": line or None,
            "code.column": col or None,
            "url.full": page_url,
        })  # fmt: skip

    def _on_console(self, msg: Any) -> None:
        if msg.type not in ("error", "warning"):
            return
        loc = msg.location or {}
        if msg.text.startswith("Failed to load resource") and _is_favicon(loc.get("url", "")):
            return  # the browser's own favicon probe: not the app's doing
        page_url = msg.page.url if msg.page else ""
        self._add_console(
            "error" if msg.type == "error" else "warning",
            msg.text,
            loc.get("url", ""),
            int(loc.get("lineNumber", 0)) + (1 if loc.get("url") else 0),
            int(loc.get("columnNumber", 0)) + (1 if loc.get("url") else 0),
            "console",
            page_url,
        )

    def _on_weberror(self, web_error: Any) -> None:
        err = web_error.error
        stack = err.stack or ""
        url, line, col = "", 0, 0
        for frame in stack.splitlines()[1:]:
            m = _STACK_LOC.search(frame.strip())
            if m:
                url, line, col = m[1], int(m[2]), int(m[3])
                break
        page_url = web_error.page.url if web_error.page else ""
        text = f"Uncaught {err.name or 'Error'}: {err.message}"
        self._add_console("error", text, url, line, col, "pageerror", page_url)

    def _on_request_finished(self, request: Any) -> None:
        asyncio.ensure_future(self._finished(request))

    async def _finished(self, request: Any) -> None:
        try:
            resp = await request.response()
        except Exception:  # noqa: BLE001 - the page went away
            resp = None
        status = resp.status if resp else 0
        self._add_request(request, status, "")

    def _on_request_failed(self, request: Any) -> None:
        self._add_request(request, 0, request.failure or "failed")

    def _add_request(self, request: Any, status: int, failure: str) -> None:
        timing = request.timing or {}
        end = timing.get("responseEnd", -1)
        ms = float(end) if end is not None and end >= 0 else None
        url = request.url
        static = request.resource_type in STATIC_TYPES or _is_favicon(url)
        entry = {
            "seq": self._next(),
            "time_ns": _now_ns(),
            "method": request.method,
            "url": url,
            "status": status,
            "type": request.resource_type,
            "ms": None if ms is None else round(ms, 1),
            "failure": failure,
            "static": static,
        }
        self.network.append(entry)
        if (failure and "ERR_ABORTED" not in failure) or status >= 400:
            if _is_favicon(url):
                return
            level = "error" if failure or status >= 500 else "warn"
            what = failure or f"{status}"
            self._log(level, f"{request.method} {url} {what}", {
                "browser.source": "network",
                "http.request.method": request.method,
                "url.full": url,
                "http.response.status_code": status or None,
                "browser.resource_type": request.resource_type,
                "error.type": failure or None,
            })  # fmt: skip

    def _log(self, level: str, body: str, attrs: dict[str, Any]) -> None:
        trace_id, span_id = self.trace or ("", "")
        self.outbox.append(_otlp.LogRecord(_now_ns(), level, body, attrs, trace_id, span_id))

    async def flush_logs_forever(self) -> None:
        """Every 0.5 s, export buffered browser log records to the collector (dropped when it is down)."""
        while True:
            await asyncio.sleep(0.5)
            await self.flush_logs()

    async def flush_logs(self) -> None:
        """Export the buffered log records now."""
        if not self.outbox or not self.args.otlp_url:
            self.outbox.clear()
            return
        batch, self.outbox = self.outbox, []
        body = _otlp.encode_logs(batch, self.args.worktree)
        try:
            await asyncio.to_thread(_otlp.post, self.args.otlp_url, "/v1/logs", body)
        except OSError as exc:
            print(f"legible-browser: log export failed: {exc}", file=sys.stderr, flush=True)

    # -- the request loop ---------------------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one request on one connection (see the client module's wire format)."""
        try:
            line = await reader.readline()
            req = json.loads(line or b"{}")
            op = str(req.get("op", ""))
            fn: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = getattr(
                self, "op_" + op.replace(".", "_").replace("-", "_"), None
            )
            if fn is None:
                raise OpError("usage", f"unknown browser operation {op!r}")
            async with self.lock:
                result = await fn(req.get("args") or {})
            answer: dict[str, Any] = {"ok": True, "result": result}
        except OpError as e:
            answer = {"ok": False, "error": {"kind": e.kind, "message": e.message, "hint": e.hint}}
        except Exception as e:  # noqa: BLE001 - report, keep serving
            answer = {"ok": False, "error": {"kind": "failed", "message": _first_line(e), "hint": ""}}
        try:
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    # -- helpers --------------------------------------------------------------------------------------
    def resolve_url(self, target: str) -> str:
        """``/order`` or ``order`` -> the app's URL; absolute URLs and ``about:``/``data:`` pass through."""
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            return target
        return f"{self.app_url}/{target.lstrip('/')}"

    async def locate(self, target: str) -> tuple[Any, str]:
        """Return ``(locator, description)`` for a ref from the last snapshot or a Playwright selector.

        Raises:
            OpError: the ref is unknown, or nothing matches the selector.

        """
        page = await self.page()
        ref = resolve_ref(target, self.ref_prefix)
        if ref is not None:
            loc = page.locator(f"aria-ref={ref}")
            try:
                n = await loc.count()
            except Exception:  # noqa: BLE001 - Playwright raises for a ref of an older snapshot
                n = 0
            if n == 0:
                raise OpError(
                    "usage",
                    f"ref {target} is not on the page (it changed since the last snapshot, or no snapshot was taken)",
                    hint="run `legible browser snapshot` and use a ref from it",
                )
            return loc, f"ref {target}"
        loc = page.locator(target)
        try:
            n = await loc.count()
        except Exception as e:  # noqa: BLE001 - a malformed selector
            raise OpError("usage", f"bad selector {target!r}: {_first_line(e)}") from e
        if n == 0:
            raise OpError(
                "usage",
                f"nothing on {page.url} matches {target!r}",
                hint="run `legible browser snapshot` for refs, or check the selector",
            )
        return loc.first, (f"{target} (first of {n} matches)" if n > 1 else target)

    async def _page_info(self, since: int | None = None) -> dict[str, Any]:
        page = await self.page()
        try:
            title = await page.title()
        except Exception:  # noqa: BLE001 - navigating
            title = ""
        since = self.console_read if since is None else since
        errors = sum(1 for c in self.console if c["seq"] > since and c["level"] == "error")
        return {"url": page.url, "title": title, "new_console_errors": errors}

    async def _settle(self) -> None:
        page = await self.page()
        with contextlib.suppress(Exception):
            await page.wait_for_load_state("load", timeout=NAV_TIMEOUT_MS)

    # -- operations -----------------------------------------------------------------------------------
    async def op_status(self, args: dict[str, Any]) -> dict[str, Any]:
        """Where the tab is and whether a recording runs."""
        info = await self._page_info()
        return {**info, "recording": self.recorder is not None, "cdp_port": int(self.args.port)}

    async def op_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """Navigate the tab to ``args["url"]`` (a path resolves against the app) and wait for ``load``."""
        page = await self.page()
        url = self.resolve_url(str(args.get("url", "/")))
        before = self.seq
        t0 = time.monotonic()
        try:
            resp = await page.goto(url, wait_until="load", timeout=float(args.get("timeout_ms", NAV_TIMEOUT_MS)))
        except Exception as e:  # noqa: BLE001
            msg = _first_line(e)
            if "Timeout" in msg:
                raise OpError("notready", f"open {url}: the page did not load within {NAV_TIMEOUT_MS} ms") from e
            raise OpError("failed", f"open {url}: {msg}") from e
        info = await self._page_info(before)
        return {**info, "status": resp.status if resp else None, "ms": round((time.monotonic() - t0) * 1000, 1)}

    async def op_snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        """The accessibility tree as compact YAML with refs; the whole text also goes to a file."""
        page = await self.page()
        selector = args.get("selector") or "body"
        depth = args.get("depth")
        loc = page.locator(selector)
        if await loc.count() == 0:
            raise OpError("usage", f"nothing on {page.url} matches {selector!r}")
        kwargs: dict[str, Any] = {"mode": "ai", "timeout": DEFAULT_TIMEOUT_MS}
        if depth is not None:
            kwargs["depth"] = int(depth)
        raw = await loc.first.aria_snapshot(**kwargs)
        text, prefix, refs = compact(raw)
        self.ref_prefix = prefix or self.ref_prefix
        out = self.dir / "snapshots"
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{_stamp()}.yaml"
        path.write_text(text)
        (self.dir / "snapshot-latest.yaml").write_text(text)
        info = await self._page_info()
        return {
            **info,
            "path": str(path),
            "bytes": len(text.encode()),
            "lines": text.count("\n"),
            "refs": refs,
            "selector": selector,
            "text": text,
        }

    async def op_click(self, args: dict[str, Any]) -> dict[str, Any]:
        """Click a ref or selector; wait for a navigation it starts to load."""
        loc, what = await self.locate(str(args["target"]))
        page = await self.page()
        before_url, before = page.url, self.seq
        try:
            await loc.click(timeout=float(args.get("timeout_ms", DEFAULT_TIMEOUT_MS)))
        except Exception as e:  # noqa: BLE001
            raise OpError("failed", f"click {what}: {_first_line(e)}") from e
        await asyncio.sleep(0.05)
        await self._settle()
        info = await self._page_info(before)
        return {**info, "target": what, "navigated": page.url != before_url}

    async def op_fill(self, args: dict[str, Any]) -> dict[str, Any]:
        """Fill a field (a ``<select>`` gets the option whose label or value is the text)."""
        loc, what = await self.locate(str(args["target"]))
        text = str(args.get("text", ""))
        await self._fill(loc, text, float(args.get("timeout_ms", DEFAULT_TIMEOUT_MS)), what)
        return {**(await self._page_info()), "target": what}

    async def _fill(self, loc: Any, text: str, timeout: float, what: str, slow: bool = False) -> None:
        try:
            tag = await loc.evaluate("(el) => el.tagName.toLowerCase()", timeout=timeout)
            if tag == "select":
                value = await loc.evaluate(_scripts.PICK_OPTION, text, timeout=timeout)
                if value is None:
                    labels = await loc.evaluate("(el) => [...el.options].map((o) => o.label)", timeout=timeout)
                    shown = ", ".join(repr(x) for x in labels[:10]) + (" ..." if len(labels) > 10 else "")
                    raise OpError("usage", f"fill {what}: no option is labelled {text!r} (options: {shown})")
                await loc.select_option(value=value, timeout=timeout)
            elif slow:
                await loc.fill("", timeout=timeout)
                await loc.press_sequentially(text, delay=35, timeout=timeout + 60 * len(text))
            else:
                await loc.fill(text, timeout=timeout)
        except OpError:
            raise
        except Exception as e:  # noqa: BLE001
            raise OpError("failed", f"fill {what}: {_first_line(e)}") from e

    async def op_press(self, args: dict[str, Any]) -> dict[str, Any]:
        """Press a key (``Enter``, ``Tab``, ``Control+A``) on the focused element, or on ``target``."""
        page = await self.page()
        key = str(args["key"])
        before_url, before = page.url, self.seq
        try:
            if args.get("target"):
                loc, _ = await self.locate(str(args["target"]))
                await loc.press(key, timeout=DEFAULT_TIMEOUT_MS)
            else:
                await page.keyboard.press(key)
        except OpError:
            raise
        except Exception as e:  # noqa: BLE001
            raise OpError("failed", f"press {key}: {_first_line(e)}") from e
        await asyncio.sleep(0.05)
        await self._settle()
        return {**(await self._page_info(before)), "navigated": page.url != before_url}

    async def op_wait(self, args: dict[str, Any]) -> dict[str, Any]:
        """Wait until ``args["text"]`` is visible (``timeout_ms``, default 5000)."""
        page = await self.page()
        text = str(args["text"])
        timeout = float(args.get("timeout_ms", DEFAULT_TIMEOUT_MS))
        t0 = time.monotonic()
        try:
            await page.get_by_text(text).first.wait_for(state="visible", timeout=timeout)
        except Exception as e:  # noqa: BLE001
            raise OpError("failed", f"wait {text!r}: not visible after {timeout:g} ms on {page.url}") from e
        return {**(await self._page_info()), "ms": round((time.monotonic() - t0) * 1000, 1)}

    async def op_screenshot(self, args: dict[str, Any]) -> dict[str, Any]:
        """Save a JPEG (PNG with ``png``) of the viewport, the full page or an element, at most 1568 px long."""
        path = await self.screenshot(
            self.dir / "screenshots",
            full=bool(args.get("full")),
            target=args.get("selector"),
            png=bool(args.get("png")),
            name=args.get("name"),
        )
        return {**(await self._page_info()), **path}

    async def screenshot(
        self,
        out_dir: Path,
        *,
        full: bool = False,
        target: str | None = None,
        png: bool = False,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Capture with CDP ``Page.captureScreenshot`` and a ``clip.scale`` that fits :data:`MAX_SIDE`."""
        page = await self.page()
        if target:
            loc, _ = await self.locate(target)
            box = await loc.bounding_box()
            if box is None:
                raise OpError("failed", f"screenshot: {target!r} is not visible")
            sx, sy, dpr = await page.evaluate("[scrollX, scrollY, devicePixelRatio]")
            clip = {"x": box["x"] + sx, "y": box["y"] + sy, "width": box["width"], "height": box["height"], "dpr": dpr}
        else:
            clip = await page.evaluate(_scripts.CLIP, ["full" if full else "viewport", ""])
        dpr = float(clip.pop("dpr") or 1)
        scale = min(1.0, MAX_SIDE / (max(clip["width"], clip["height"]) * dpr))
        fmt = "png" if png else "jpeg"
        params: dict[str, Any] = {
            "format": fmt,
            "clip": {**clip, "scale": scale},
            "captureBeyondViewport": bool(full or target),
        }
        if fmt == "jpeg":
            params["quality"] = 80
        cdp = await self.cdp()
        shot = await cdp.send("Page.captureScreenshot", params)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name or _stamp()}.{'png' if png else 'jpg'}"
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        w, h = round(clip["width"] * scale * dpr), round(clip["height"] * scale * dpr)
        return {"path": str(path), "bytes": len(data), "width": w, "height": h, "format": fmt}

    async def op_console(self, args: dict[str, Any]) -> dict[str, Any]:
        """Errors and warnings since the last ``console`` call (``all``: everything kept), deduplicated."""
        since = 0 if args.get("all") else self.console_read
        rows = [c for c in self.console if c["seq"] > since]
        if not args.get("peek"):
            self.console_read = self.seq
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

    async def op_network(self, args: dict[str, Any]) -> dict[str, Any]:
        """Failed and slow requests since the last ``network`` call; static assets hidden unless ``all``."""
        since = 0 if args.get("since_start") else self.network_read
        slow_ms = float(args.get("slow_ms") or SLOW_MS)
        rows = [r for r in self.network if r["seq"] > since]
        if not args.get("peek"):
            self.network_read = self.seq
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

    async def op_vitals(self, args: dict[str, Any]) -> dict[str, Any]:
        """LCP, CLS, INP, FCP, TTFB and load timings of the current page (see :mod:`legible.browser._scripts`)."""
        page = await self.page()
        doc: dict[str, Any] = await page.evaluate(_scripts.VITALS_READ)
        return doc

    async def op_record_start(self, args: dict[str, Any]) -> dict[str, Any]:
        """Start a screencast recording of the tab (``legible browser record stop`` encodes it)."""
        if self.recorder is not None:
            raise OpError("usage", "a recording is already running", hint="run `legible browser record stop` first")
        rec_dir = self.dir / "recordings" / _stamp()
        self.recorder = Recorder(await self.cdp(), rec_dir)
        self.recorder_label = str(args.get("title") or "")
        await self.recorder.start()
        if self.recorder_label:
            self.recorder.chapter(self.recorder_label)
        return {"dir": str(rec_dir), "recording": True}

    async def op_record_chapter(self, args: dict[str, Any]) -> dict[str, Any]:
        """Show a chapter card now (in the running recording)."""
        if self.recorder is None:
            raise OpError("usage", "no recording is running", hint="run `legible browser record start` first")
        await self.chapter_card(str(args.get("title", "")), "")
        return {"recording": True}

    async def op_record_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        """Stop the recording and encode MP4, GIF and poster."""
        rec = self.recorder
        if rec is None:
            raise OpError("usage", "no recording is running", hint="run `legible browser record start` first")
        self.recorder = None
        await asyncio.sleep(0.3)  # the last frames
        await rec.stop()
        return await asyncio.to_thread(rec.encode, "recording")

    async def chapter_card(self, title: str, sub: str, hold_s: float = 0.7) -> None:
        """Show a full-viewport card for ``hold_s`` seconds and mark a chapter (recording only)."""
        if self.recorder is None:
            return
        page = await self.page()
        self.recorder.chapter(title)
        with contextlib.suppress(Exception):
            await page.evaluate(_scripts.CARD_SHOW, [title, sub])
            await asyncio.sleep(hold_s)
            await page.evaluate(_scripts.CARD_HIDE)

    async def highlight(self, loc: Any, hold_s: float = 0.4) -> None:
        """Outline the element for ``hold_s`` seconds (recording only)."""
        if self.recorder is None:
            return
        with contextlib.suppress(Exception):
            await loc.evaluate(_scripts.HIGHLIGHT_ON, timeout=DEFAULT_TIMEOUT_MS)
            await asyncio.sleep(hold_s)
            await loc.evaluate(_scripts.HIGHLIGHT_OFF, timeout=1000)

    async def op_journey(self, args: dict[str, Any]) -> JourneyDoc:
        """Run a journey (see :mod:`legible.browser.journey`); ``args``: name, steps or script, record."""
        from legible.browser.journey import run_in_agent

        return await run_in_agent(self, args)

    @contextlib.asynccontextmanager
    async def traced(self, trace_id: str, span_id: str) -> AsyncIterator[None]:
        """Send ``traceparent`` (W3C) for ``span_id`` with every request of the tab while inside."""
        self.trace = (trace_id, span_id)
        await self.context.set_extra_http_headers({"traceparent": _otlp.traceparent(trace_id, span_id)})
        try:
            yield
        finally:
            self.trace = None
            with contextlib.suppress(Exception):
                await self.context.set_extra_http_headers({})


def _is_favicon(url: str) -> bool:
    return url.split("?", 1)[0].endswith("/favicon.ico")


def _cdp_up(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/json/version")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _die_with_parent() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


async def serve(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT; return the exit code."""
    agent = Agent(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    sock = socket_path(agent.state_dir)
    server = None
    try:
        await agent.launch()
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(agent.handle, path=str(sock))
        os.chmod(sock, 0o600)
        flusher = asyncio.ensure_future(agent.flush_logs_forever())
        print(f"legible-browser ready cdp=127.0.0.1:{args.port} socket={sock}", flush=True)
        chromium_wait = asyncio.ensure_future(agent.chromium.wait()) if agent.chromium else None
        waiters = [asyncio.ensure_future(stop.wait())] + ([chromium_wait] if chromium_wait else [])
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        flusher.cancel()
        if agent.chromium and agent.chromium.returncode is not None:
            print(f"legible-browser: chromium exited with code {agent.chromium.returncode}", flush=True)
            return 1
        await agent.flush_logs()
        return 0
    except Exception as e:  # noqa: BLE001 - one line for the service log, then exit non-zero
        print(f"legible-browser: {type(e).__name__}: {_first_line(e)}", flush=True)
        return 1
    finally:
        if server is not None:
            server.close()
        with contextlib.suppress(OSError):
            sock.unlink()
        if agent.chromium and agent.chromium.returncode is None:
            # A throwaway headless profile needs no graceful exit (which takes Chromium about a second):
            # the logs are flushed above, so stop it at once; its helpers follow their parent.
            with contextlib.suppress(ProcessLookupError):
                agent.chromium.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(agent.chromium.wait(), 3)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m legible.browser.agent``; see the module docstring for the flags."""
    p = argparse.ArgumentParser(prog="legible.browser.agent")
    p.add_argument("--port", required=True, type=int, help="CDP port (loopback)")
    p.add_argument("--state-dir", required=True, help="the worktree's .legible directory")
    p.add_argument("--app-url", required=True, help="base URL that relative paths resolve against")
    p.add_argument("--otlp-url", default="", help="collector OTLP/HTTP base URL for browser logs")
    p.add_argument("--worktree", default="", help="worktree key (resource attribute legible.worktree)")
    p.add_argument("--chromium", required=True, help="the Chromium executable")
    args = p.parse_args(argv)
    code = asyncio.run(serve(args))
    sys.stdout.flush()
    os._exit(code)  # do not wait on Playwright's driver teardown: the group is being stopped anyway


def load_script(path: Path) -> Any:
    """Import a journey script file as a module (it must define ``async def run(page, journey)``)."""
    spec = importlib.util.spec_from_file_location(f"legible_journey_{abs(hash(str(path)))}", path)
    if spec is None or spec.loader is None:
        raise OpError("usage", f"cannot import journey script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
