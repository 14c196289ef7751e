"""What the agent, its operations and journeys share: limits, the operation error, the recorder, small helpers.

Nothing here imports Playwright at import time, and nothing here imports :mod:`legible.browser.agent`, so
:mod:`legible.browser.journey` and :mod:`legible.browser._ops` depend on this module instead of on each other
or on the agent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import re
import time
from pathlib import Path
from typing import Any

from legible.redact import Redactor, secret_values

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
#: Entries kept in each of the console and network ring buffers.
BUFFER = 2000
#: Default wait for an element, in ms.
DEFAULT_TIMEOUT_MS = 5000
#: Default wait for a page load, in ms.
NAV_TIMEOUT_MS = 15000


class OpError(Exception):
    """An operation failed; ``kind`` picks the client's exception and exit code (see the client module).

    Args:
        kind: ``usage`` (exit 2), ``failed`` (exit 1) or ``notready`` (exit 4).
        message: one line for the user.
        hint: what to do about it, or ``""``.

    """

    def __init__(self, kind: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint


def now_ns() -> int:
    """Wall-clock time in ns since the epoch (OTLP timestamps)."""
    return time.time_ns()


def stamp() -> str:
    """A file-name-safe local timestamp with ms: ``20260101-120000-123``."""
    return time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"


def first_line(exc: BaseException) -> str:
    """The first meaningful line of an exception's text (Playwright appends a "Call log"), at most 300 chars."""
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Call log"):
            return line[:300]
    return type(exc).__name__


def is_favicon(url: str) -> bool:
    """Whether ``url`` is the browser's own ``/favicon.ico`` probe."""
    return url.split("?", 1)[0].endswith("/favicon.ico")


def load_script(path: Path) -> Any:
    """Import a journey script file as a module (it must define ``async def run(page, journey)``).

    Raises:
        OpError: the file cannot be imported.

    """
    spec = importlib.util.spec_from_file_location(f"legible_journey_{abs(hash(str(path)))}", path)
    if spec is None or spec.loader is None:
        raise OpError("usage", f"cannot import journey script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")


def resolve_url(app_url: str, target: str) -> str:
    """``/order`` or ``order`` -> the app's URL; absolute URLs and ``about:``/``data:`` pass through."""
    if _URL_SCHEME.match(target):
        return target
    return f"{app_url.rstrip('/')}/{target.lstrip('/')}"


def process_redactor() -> Redactor:
    """A :class:`~legible.redact.Redactor` for this process's environment (secret names) and secret shapes."""
    import os

    return Redactor(secret_values(dict(os.environ)))


class Recorder:
    """Screencast frames of one page to JPEG files, with chapter marks (see :mod:`legible.browser._video`).

    Chapter titles are redacted (:mod:`legible.redact`) when they are marked, so a journey URL with
    ``password=`` never reaches the video's chapter metadata.

    Args:
        cdp: a Playwright ``CDPSession`` on the page.
        out_dir: where ``frames/`` and the encoded outputs go.
        redactor: redacts chapter titles.

    """

    def __init__(self, cdp: Any, out_dir: Path, redactor: Redactor | None = None) -> None:
        self.cdp = cdp
        self.dir = out_dir
        self.redactor = redactor or Redactor()
        self.frames: list[tuple[Path, float]] = []
        self.chapters: list[tuple[str, float]] = []
        self.holds: list[tuple[float, float]] = []  # (timestamp of the held frame, extra seconds in the video)
        self.stretches: list[tuple[float, float, float]] = []  # (start, end, seconds in the video)
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

    def chapter(self, title: str, at: float | None = None) -> None:
        """Mark a chapter starting at ``at`` (``time.time()``; default now), its title redacted."""
        self.chapters.append((self.redactor.text(title), time.time() if at is None else at))

    async def snap(self, seconds: float) -> float:
        """Capture what the page shows now as a frame of its own, held ``seconds`` longer in the video.

        ``Page.captureScreenshot`` (https://chromedevtools.github.io/devtools-protocol/tot/Page/#method-
        captureScreenshot) paints a new compositor frame that includes every DOM change made before the call,
        so the frame holds the chapter card or outline just put on screen: unlike a screencast frame, which
        Chromium sends on its own schedule (and only after the previous one was acknowledged), it cannot be
        a frame from before the change. The frame is stamped with the time the capture returned, so it sorts
        after every screencast frame painted before the change; :meth:`encode` shows it ``seconds`` longer
        and shifts every later frame and chapter by as much, so the walk itself does not wait.

        Returns:
            The frame's timestamp (``time.time()``), where a chapter shown by it starts.

        Raises:
            Exception: the CDP call failed (Playwright's error; the caller decides whether that matters).

        """
        shot = await self.cdp.send(
            "Page.captureScreenshot", {"format": "jpeg", "quality": 70, "optimizeForSpeed": True}
        )
        ts = time.time()
        path = self.dir / "frames" / f"{len(self.frames):06d}.jpg"
        path.write_bytes(base64.b64decode(shot["data"]))
        self.frames.append((path, ts))
        self.holds.append((ts, seconds))
        return ts

    async def end_frame(self, wait_s: float = 0.4) -> None:
        """Capture the page as it is now as the recording's last frame (:meth:`snap`, held 0 s more).

        This replaced a fixed 0.3 s sleep at ``record stop`` that waited for the screencast to send the end
        state (a recorded journey already ended on such a frame). Only when the capture fails (the page is
        closing) does it wait, at most ``wait_s`` seconds (the journey's former fixed sleep there), for one
        more screencast frame.
        """
        n = len(self.frames)
        with contextlib.suppress(Exception):  # else the screencast's next frame, as it comes
            await self.snap(0.0)
            return
        deadline = time.monotonic() + wait_s
        while len(self.frames) == n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def stretch(self, start: float, end: float, video_s: float) -> None:
        """Play the real time ``start``..``end`` (``time.time()``) over ``video_s`` seconds of video (if longer).

        :meth:`encode` holds each frame captured in that span an equal share of the difference (or the frame
        shown at ``start`` when none was), so fast visible typing reads at a human pace in the video.
        """
        self.stretches.append((start, end, video_s))

    async def stop(self) -> None:
        """Stop the screencast."""
        with contextlib.suppress(Exception):
            await self.cdp.send("Page.stopScreencast")

    def plan(self, name: str) -> dict[str, Any]:
        """The video to encode, as JSON-able data: each frame's time in the video, holds and stretches applied.

        Returns:
            ``{"frames": [[jpeg path, video time s]...], "chapters": [[title, start s from the first frame]...],
            "out_dir": str, "name": str}`` for :func:`legible.browser._video.encode_plan` (``name`` redacted).

        Raises:
            OpError: no frame was captured.

        """
        frames = sorted(self.frames, key=lambda f: f[1])
        if not frames:
            raise OpError("failed", "no frames were captured while recording")
        holds = list(self.holds)
        for start, end, video_s in self.stretches:
            extra = video_s - (end - start)
            if extra <= 0:
                continue
            inside = [ts for _, ts in frames if start <= ts <= end]
            before = [ts for _, ts in frames if ts < start]
            if inside:
                holds += [(ts, extra / len(inside)) for ts in inside]
            elif before:
                holds.append((before[-1], extra))
        holds.sort()

        def shifted(ts: float) -> float:  # the video time of real time ts: later than every hold before it
            return ts + sum(d for th, d in holds if th < ts)

        last_path, last_ts = frames[-1]
        tail = sum(d for th, d in holds if th >= last_ts)  # holds of the last frame: show it that much longer
        timed: list[tuple[str, float]] = [(str(p), shifted(ts)) for p, ts in frames]
        if tail:
            timed.append((str(last_path), shifted(last_ts) + tail))
        t0 = timed[0][1]
        chapters = [(t, max(0.0, shifted(ts) - t0)) for t, ts in self.chapters]
        return {"frames": timed, "chapters": chapters, "out_dir": str(self.dir), "name": self.redactor.text(name)}

    def encode(self, name: str) -> dict[str, Any]:
        """Encode the frames (blocking: run it in a thread). See :func:`legible.browser._video.encode_plan`.

        Raises:
            OpError: no frame was captured.

        """
        from legible.browser._video import encode_plan

        return encode_plan(self.plan(name))


async def count_or_error(loc: Any) -> int | Exception:
    """``loc.count()`` (a Playwright locator's matches), or the exception it raised, for the caller to judge.

    Playwright raises for a malformed selector and for a ref (``aria-ref=``) of an older snapshot.
    """
    try:
        return int(await loc.count())
    except Exception as e:  # noqa: BLE001 - judged by the caller
        return e
