"""The agent's watch on its tab: console and network ring buffers, and their export as OTLP logs.

Console errors and warnings, uncaught exceptions, and finished or failed requests go to ring buffers that
``legible browser console|network`` read "since the last call"; errors and warnings (and failed requests)
are also exported as OTLP log records of service ``browser``, carrying the running journey step's trace
context when there is one.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import deque
from typing import Any

from legible.browser import _otlp
from legible.browser._common import BUFFER, STATIC_TYPES, is_favicon, now_ns

_STACK_LOC = re.compile(r"\(?((?:https?|file|data|blob):[^\s()]+?):(\d+):(\d+)\)?\s*$")


class Watcher:
    """Buffers what the tab reports and exports errors as logs. Attach with :meth:`attach`.

    Args:
        otlp_url: the collector's OTLP/HTTP base URL (``""``: no export).
        worktree: the worktree key (resource attribute ``legible.worktree``).

    Attributes:
        console: ``{"seq", "time_ns", "level", "text", "url", "line", "col", "source", "page"}`` entries.
        network: ``{"seq", "time_ns", "method", "url", "status", "type", "ms", "failure", "static"}`` entries.
        seq: the last sequence number given to an entry (both buffers share it).
        console_read: ``seq`` at the last ``console`` call; ``network_read`` likewise.
        trace: ``(trace_id, span_id)`` while a journey step runs, else ``None``.

    """

    def __init__(self, otlp_url: str, worktree: str) -> None:
        self.otlp_url = otlp_url
        self.worktree = worktree
        self.console: deque[dict[str, Any]] = deque(maxlen=BUFFER)
        self.network: deque[dict[str, Any]] = deque(maxlen=BUFFER)
        self.seq = 0
        self.console_read = 0
        self.network_read = 0
        self.outbox: list[_otlp.LogRecord] = []
        self.trace: tuple[str, str] | None = None

    def attach(self, context: Any) -> None:
        """Subscribe to a Playwright ``BrowserContext``'s console, page error and request events."""
        context.on("console", self._on_console)
        context.on("weberror", self._on_weberror)
        context.on("requestfinished", self._on_request_finished)
        context.on("requestfailed", self._on_request_failed)

    def errors_since(self, since: int) -> int:
        """Console errors with a sequence number above ``since``."""
        return sum(1 for c in self.console if c["seq"] > since and c["level"] == "error")

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _add_console(self, level: str, text: str, url: str, line: int, col: int, source: str, page_url: str) -> None:
        entry = {
            "seq": self._next(),
            "time_ns": now_ns(),
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
        self.log("error" if level == "error" else "warn", f"{text[:2000]} ({where})", {
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
        if msg.text.startswith("Failed to load resource") and is_favicon(loc.get("url", "")):
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
        static = request.resource_type in STATIC_TYPES or is_favicon(url)
        entry = {
            "seq": self._next(),
            "time_ns": now_ns(),
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
            if is_favicon(url):
                return
            level = "error" if failure or status >= 500 else "warn"
            what = failure or f"{status}"
            self.log(level, f"{request.method} {url} {what}", {
                "browser.source": "network",
                "http.request.method": request.method,
                "url.full": url,
                "http.response.status_code": status or None,
                "browser.resource_type": request.resource_type,
                "error.type": failure or None,
            })  # fmt: skip

    def log(self, level: str, body: str, attrs: dict[str, Any]) -> None:
        """Queue one log record (with the running step's trace context) for the next export."""
        trace_id, span_id = self.trace or ("", "")
        self.outbox.append(_otlp.LogRecord(now_ns(), level, body, attrs, trace_id, span_id))

    async def flush_forever(self) -> None:
        """Every 0.5 s, export buffered log records to the collector (dropped when it is down)."""
        while True:
            await asyncio.sleep(0.5)
            await self.flush()

    async def flush(self) -> None:
        """Export the buffered log records now; a failed export is reported on stderr (the service log)."""
        if not self.outbox or not self.otlp_url:
            self.outbox.clear()
            return
        batch, self.outbox = self.outbox, []
        body = _otlp.encode_logs(batch, self.worktree)
        try:
            await asyncio.to_thread(_otlp.post, self.otlp_url, "/v1/logs", body)
        except OSError as exc:
            print(f"legible-browser: log export failed: {exc}", file=sys.stderr, flush=True)
