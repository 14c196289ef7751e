"""Journeys: named browser walks through the app, traced end to end, optionally recorded.

A journey is ``[journeys.<name>]`` in ``legible.toml`` (:class:`legible.config.JourneyConfig`): either
``steps`` (goto, click, fill, press, wait_for, expect_text, chapter, screenshot) or ``script``, a Python file
defining ``async def run(page, journey)`` that uses Playwright's async ``page`` and wraps its steps in
``async with journey.step("title"):``; ``journey.url("/order")`` gives the app's URL for a path.

Tracing (W3C Trace Context, https://www.w3.org/TR/trace-context/): the run has one trace with a root span
``journey <name>`` and a child span per step (service ``browser``). While a step runs, every request of the
tab carries ``traceparent: 00-<trace id>-<step span id>-01``, so an instrumented backend's spans become
children of the step; the spans are exported to the collector over OTLP/HTTP when the run ends, and
:func:`run_journey` then reads the slowest backend spans of that trace from the store.

The steps run inside the browser agent (:func:`run_in_agent`) on the stack's tab; :func:`run_journey` is the
client side that the CLI calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from legible._errors import UsageError
from legible.browser import _otlp
from legible.browser._common import OpError, Recorder, first_line, load_script, stamp
from legible.browser._video import encode_plan

if TYPE_CHECKING:
    from legible.browser.agent import Agent
    from legible.config import JourneyStep
    from legible.contract import (
        BackendDoc,
        BackendSpan,
        FailedStepDoc,
        JourneyDoc,
        JourneyInfo,
        JourneysDoc,
        JourneyStepDoc,
        VideoDoc,
    )

JOURNEY_SCHEMA: Final = "legible.journey/v1"
JOURNEYS_SCHEMA: Final = "legible.journeys/v1"
#: The key of a journey document that holds a recording's encoding plan while the video is not encoded yet
#: (the agent's ``encode: false``, as :func:`walk_journey` asks); :func:`finish_video` encodes it and removes it.
VIDEO_PLAN: Final = "video_plan"
#: The longest :func:`run_journey` waits for the backend's spans of the journey to reach the store, in s.
SPAN_WAIT_S = 4.0
#: The trace's backend spans are all in once their count held this long, in s: longer than one export
#: interval (``OTEL_BSP_SCHEDULE_DELAY`` is 100 ms in a stack, plus the store write), so a second batch is not missed.
SETTLE_S = 0.4
#: An app that has sent no span at all by this long after the journey is taken as not instrumented, in s.
NO_SPANS_GRACE_S = 1.5
#: How often the store is asked, in s.
POLL_S = 0.1


class StepFailed(Exception):
    """A step failed; the journey stops (the reason is in the step's record)."""


class JourneyRun:
    """One run of a journey inside the agent; a script's ``journey`` argument.

    Attributes:
        name: the journey's name.
        trace_id: the run's trace id (32 hex).
        steps: ``[{"n", "title", "action", "ok", "ms", "error", "screenshot"}]`` so far.
        dir: where screenshots of this run go.

    """

    def __init__(self, agent: Agent, name: str, run_dir: Path) -> None:
        self.agent = agent
        self.name = name
        self.trace_id = _otlp.new_trace_id()
        self.root_id = _otlp.new_span_id()
        self.dir = run_dir
        self.steps: list[dict[str, Any]] = []
        self.spans: list[_otlp.Span] = []
        self.total = 0

    def url(self, path: str) -> str:
        """Resolve ``path`` (``/order``) against the app's URL, as ``goto`` steps do; absolute URLs pass."""
        return str(self.agent.resolve_url(path))

    @contextlib.asynccontextmanager
    async def step(self, title: str, action: str = "script", card: str = "") -> AsyncIterator[None]:
        """Run the body as one step: its own span, ``traceparent`` on its requests, a chapter card when recording.

        Raises:
            StepFailed: the body raised; the step is recorded as failed with a screenshot.

        """
        n = len(self.steps) + 1
        rec: dict[str, Any] = {"n": n, "title": title, "action": action, "ok": True, "ms": 0.0, "error": ""}
        self.steps.append(rec)
        of = f"/{self.total}" if self.total else ""
        rec0 = self.agent.recording_s
        t_card = time.monotonic()
        await self.agent.chapter_card(card or f"{n}{of} · {title}", f"journey {self.name}")
        card_s = time.monotonic() - t_card
        span_id = _otlp.new_span_id()
        start_ns = time.time_ns()
        t0 = time.monotonic()
        error = ""
        try:
            async with self.agent.traced(self.trace_id, span_id):
                yield
        except Exception as e:
            error = _reason(e)
            rec["ok"] = False
            rec["error"] = f"step {n} {action}: {error}" if action != "script" else f"step {n} {title!r}: {error}"
            with contextlib.suppress(Exception):
                shot = await self.agent.screenshot(self.dir, name=f"step{n}-failed")
                rec["screenshot"] = shot["path"]
            raise StepFailed(rec["error"]) from e
        finally:
            rec["ms"] = round((time.monotonic() - t0) * 1000, 1)
            if self.agent.recorder is not None:  # what the recording added inside the step (not the card)
                added = max(self.agent.recording_s - rec0 - card_s, 0.0)
                rec["recording_ms"] = round(min(added * 1000, rec["ms"]), 1)
            self.spans.append(
                _otlp.Span(
                    name=f"step {n} {title}"[:200],
                    trace_id=self.trace_id,
                    span_id=span_id,
                    parent_span_id=self.root_id,
                    start_ns=start_ns,
                    end_ns=time.time_ns(),
                    attributes={"legible.journey": self.name, "legible.step": n, "legible.action": action},
                    error=error,
                )
            )

    async def run_config_step(self, step: JourneyStep) -> None:
        """Run one ``legible.toml`` step (see :class:`legible.config.JourneyStep`).

        Raises:
            StepFailed: the step failed (reason and screenshot recorded).

        """
        title = step.title or describe(step)
        async with self.step(title, step.action, card=step.chapter or ""):
            await self._do(step)

    async def _do(self, step: JourneyStep) -> None:
        agent = self.agent
        page = await agent.page()
        t = float(step.timeout_ms)
        a = step.action
        if a == "goto":
            url = agent.resolve_url(step.goto or "/")
            try:
                await page.goto(url, wait_until="load", timeout=t)
            except Exception as e:
                if "Timeout" in str(e):
                    raise _Reason(f"{url} did not load within {t:g} ms") from e
                raise
        elif a in ("click", "fill") or (a == "press" and isinstance(step.press, dict)):
            if a == "click":
                sel = step.click
            elif a == "fill":
                sel = (step.fill or {}).get("selector")
            else:
                sel = step.press.get("selector") if isinstance(step.press, dict) else None
            assert sel is not None
            loc = page.locator(sel).first
            try:
                await loc.wait_for(state="visible", timeout=t)
            except Exception as e:
                raise _Reason(f"{sel!r}: no visible element after {t:g} ms on {page.url}") from e
            await agent.highlight(loc)
            # after an action, the same settle as `legible browser click|press`: what the handlers queued runs, a
            # navigation they request is waited for until it loads and paints (no fixed sleep)
            if a == "click":
                await loc.click(timeout=t)
                await agent.settle_after_action()
            elif a == "fill":
                await agent.fill(loc, (step.fill or {})["text"], t, sel, slow=agent.recorder is not None)
            else:
                await loc.press(step.press["key"], timeout=t)  # type: ignore[index]
                await agent.settle_after_action()
        elif a == "press":
            watch, since = await agent.arm_navigation_watch()
            await page.keyboard.press(str(step.press))
            await agent.settle_after_action(watch, since)
        elif a in ("wait_for", "expect_text"):
            text = step.wait_for if a == "wait_for" else step.expect_text
            assert text is not None
            try:
                await page.get_by_text(text).first.wait_for(state="visible", timeout=t)
            except Exception as e:
                raise _Reason(f"{text!r}: not visible after {t:g} ms on {page.url}") from e
        elif a == "screenshot":
            await agent.screenshot(self.dir, name=step.screenshot)
        # "chapter": the card is the whole step


class _Reason(Exception):
    """A failure whose message is already the reason to show."""


def _reason(e: BaseException) -> str:
    if isinstance(e, OpError):
        return e.message
    if isinstance(e, _Reason):
        return str(e)
    return first_line(e)


def describe(step: JourneyStep) -> str:
    """A step's default title: ``goto /order``, ``click text=Order``, ``fill #name``, ``expect 'Thank you'``."""
    a = step.action
    if a == "fill":
        return f"fill {(step.fill or {}).get('selector')}"
    if a == "press":
        return f"press {step.press['key'] if isinstance(step.press, dict) else step.press}"
    if a in ("wait_for", "expect_text"):
        return f"{'wait for' if a == 'wait_for' else 'expect'} {getattr(step, a)!r}"
    return f"{a} {getattr(step, a)}"


async def run_in_agent(agent: Agent, args: dict[str, Any]) -> JourneyDoc:
    """Run a journey on the agent's tab (the ``journey`` operation).

    Args:
        agent: the running agent.
        args: ``{"name", "steps": [JourneyStep dicts] | "script": path, "record": bool, "encode": bool}``;
            ``encode`` false leaves a recording's encoding to the caller: ``video`` is then ``None`` and
            :data:`VIDEO_PLAN` holds :meth:`~legible.browser._common.Recorder.plan` (see :func:`finish_video`).

    Returns:
        ``legible.journey/v1`` without the backend spans: ``{"schema", "name", "ok", "trace_id",
        "duration_ms", "steps", "failed", "video", "dir", "url"}``.

    """
    from legible.config import JourneyStep

    name = str(args["name"])
    steps = [JourneyStep.model_validate(s) for s in args.get("steps") or []]
    run_dir = agent.dir / "journeys" / f"{name}-{stamp()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    run = JourneyRun(agent, name, run_dir)
    run.total = len(steps)
    record = bool(args.get("record"))
    if record:
        if agent.recorder is not None:
            raise OpError("usage", "a recording is already running", hint="run `legible browser record stop` first")
        agent.recorder = Recorder(await agent.cdp(), run_dir, agent.redactor)
        await agent.recorder.start()
    start_ns = time.time_ns()
    t0 = time.monotonic()
    agent.recording_s = 0.0
    failed: dict[str, Any] | None = None
    try:
        if record:
            await agent.chapter_card(f"Journey: {name}", f"{len(steps)} steps" if steps else "", hold_s=1.0)
        if steps:
            for step in steps:
                await run.run_config_step(step)
        else:
            module = load_script(Path(str(args["script"])))
            await module.run(await agent.page(), run)
    except StepFailed:
        failed = next((s for s in run.steps if not s["ok"]), None)
    except Exception as e:  # noqa: BLE001 - a script error outside any step
        failed = {"n": len(run.steps) + 1, "title": "script", "ok": False, "error": f"script: {first_line(e)}"}
        run.steps.append({**failed, "action": "script", "ms": 0.0})
    duration_ms = round((time.monotonic() - t0) * 1000, 1)
    recording_ms = round(min(agent.recording_s * 1000, duration_ms), 1)
    end_ns = time.time_ns()
    video = None
    plan = None
    if record and agent.recorder is not None:
        rec, agent.recorder = agent.recorder, None
        await agent.undone()
        await rec.end_frame()
        await rec.stop()
        try:
            plan = rec.plan(name)
            if args.get("encode", True):
                video = await asyncio.to_thread(encode_plan, plan)
                plan = None
        except Exception as e:  # noqa: BLE001 - the run's verdict stands without its video
            video, plan = {"error": _reason(e)}, None
    root = _otlp.Span(
        name=f"journey {name}",
        trace_id=run.trace_id,
        span_id=run.root_id,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes={"legible.journey": name, "legible.steps": len(run.steps), "legible.ok": failed is None},
        error=failed["error"] if failed else "",
    )
    exported = ""
    if agent.args.otlp_url:
        try:
            body = _otlp.encode_spans([root, *run.spans], agent.args.worktree)
            await asyncio.to_thread(_otlp.post, agent.args.otlp_url, "/v1/traces", body)
        except OSError as e:
            exported = str(e)
    await agent.watch.flush()
    page = await agent.page()
    doc: JourneyDoc = {
        "schema": JOURNEY_SCHEMA,
        "name": name,
        "ok": failed is None,
        "trace_id": run.trace_id,
        "duration_ms": duration_ms,
        "steps": cast("list[JourneyStepDoc]", run.steps),
        "failed": cast("FailedStepDoc | None", failed),
        "video": cast("VideoDoc | None", video),
        "dir": str(run_dir),
        "url": page.url,
        "export_error": exported,
    }
    if record:
        doc["recording_ms"] = recording_ms
    if plan is not None:  # encoding left to the caller (``encode: false``): see finish_video
        cast("dict[str, Any]", doc)[VIDEO_PLAN] = plan
    return doc


# -- the client side (runs in the CLI process) -------------------------------------------------------------
def list_journeys(start: Path | None = None) -> JourneysDoc:
    """The journeys of the worktree's ``legible.toml``.

    Returns:
        ``legible.journeys/v1``: ``{"schema", "journeys": [{"name", "description", "steps", "script"}]}``.

    Raises:
        ConfigError: legible.toml is missing or invalid.

    """
    from legible.config import load_config
    from legible.worktree import find_worktree

    wt = find_worktree(start)
    cfg = load_config(wt.root)
    rows: list[JourneyInfo] = [
        {"name": n, "description": j.description, "steps": len(j.steps), "script": j.script or ""}
        for n, j in sorted(cfg.journeys.items())
    ]
    return {"schema": JOURNEYS_SCHEMA, "journeys": rows}


def finish_video(doc: JourneyDoc) -> VideoDoc | None:
    """Encode the recording a journey document left unencoded (:data:`VIDEO_PLAN`); blocking, thread-safe.

    Sets ``doc["video"]`` (an ``{"error"}`` document when encoding failed: the run's verdict stands without
    its video) and removes :data:`VIDEO_PLAN`.

    Returns:
        ``doc["video"]`` afterwards (``None`` when nothing was recorded).

    """
    plan = cast("dict[str, Any]", doc).pop(VIDEO_PLAN, None)
    if plan is not None:
        try:
            doc["video"] = cast("VideoDoc", encode_plan(plan))
        except Exception as e:  # noqa: BLE001 - the run's verdict stands without its video
            doc["video"] = {"error": _reason(e)}
    return doc.get("video")


def run_journey(name: str, *, record: bool = False, start: Path | None = None) -> JourneyDoc:
    """Run journey ``name`` on the stack's browser and add the slowest backend spans of its trace.

    Args:
        name: the journey in ``legible.toml``.
        record: record the walkthrough video (encoded while the backend's spans reach the store).
        start: a directory inside the worktree (default: the current one).

    Returns:
        ``legible.journey/v1`` (see :func:`run_in_agent`) plus ``"backend": {"spans": n, "slowest":
        [{"service", "name", "duration_ms", "status_code"}]}``.

    Raises:
        UsageError: no journey of that name (the message lists the known ones), or its script is missing.
        NotRunning: no stack, or a stack without the browser.

    """
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="legible-journey") as pool:
        doc, video, backend = walk_journey(name, record=record, start=start, pool=pool)
        backend.result()
        if video is not None:
            video.result()
    return doc


def walk_journey(
    name: str, *, record: bool = False, start: Path | None = None, pool: concurrent.futures.Executor
) -> tuple[JourneyDoc, concurrent.futures.Future[Any] | None, concurrent.futures.Future[Any]]:
    """Walk journey ``name`` now; encode its video and wait for its backend spans on ``pool``.

    A caller with more to do (a proof walks the next journey) lets both finish behind it. The document is
    complete once both futures are done: the video future sets ``doc["video"]`` (:func:`finish_video`), the
    backend future sets ``doc["backend"]`` (:func:`backend_spans`); until then ``video`` is ``None`` and
    ``backend`` absent.

    Args:
        name: the journey in ``legible.toml``.
        record: record the walkthrough video.
        start: a directory inside the worktree (default: the current one).
        pool: runs the two finishing jobs (threads: ffmpeg is a subprocess, the spans wait is a poll).

    Returns:
        ``(doc, video future or None when nothing is to encode, backend future)``; the futures' results are
        the ``video`` and ``backend`` documents.

    Raises:
        UsageError: no journey of that name (the message lists the known ones), or its script is missing.
        NotRunning: no stack, or a stack without the browser.

    """
    from legible.browser.client import call
    from legible.config import load_config
    from legible.stack import require_running
    from legible.worktree import find_worktree

    wt = find_worktree(start)
    cfg = load_config(wt.root)
    journey = cfg.journeys.get(name)
    if journey is None:
        known = ", ".join(sorted(cfg.journeys)) or "none"
        raise UsageError(f"no journey {name!r} in legible.toml (known: {known})", hint="see `legible journey list`")
    state = require_running(start)
    args: dict[str, Any] = {"name": name, "record": record, "encode": False}  # encoded here, on the pool
    budget = 60.0
    if journey.script:
        script = (wt.root / journey.script).resolve()
        if not script.is_file():
            raise UsageError(f"journey {name}: script {script} does not exist", hint="fix script in legible.toml")
        args["script"] = str(script)
        budget = 600.0
    else:
        args["steps"] = [s.model_dump(exclude_none=True) for s in journey.steps]
        budget += sum(s.timeout_ms for s in journey.steps) / 1000 * 2
    doc = cast("JourneyDoc", call(wt.state_dir, "journey", args, timeout=budget + (120 if record else 0)))
    ended_ns = time.time_ns()
    collector = state.get("endpoints", {}).get("otlp-http")
    video = pool.submit(finish_video, doc) if VIDEO_PLAN in doc else None

    def spans() -> BackendDoc:
        doc["backend"] = backend_spans(wt.state_dir, collector, doc["trace_id"], ended_ns=ended_ns)
        return doc["backend"]

    return doc, video, pool.submit(spans)


def backend_spans(
    state_dir: Path,
    collector_url: str | None,
    trace_id: str,
    limit: int = 5,
    *,
    ended_ns: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BackendDoc:
    """The spans of ``trace_id`` not from the browser, slowest first, polled until they are all in.

    The store is asked every :data:`POLL_S` seconds and the wait ends as soon as one of these holds:

    * the trace has backend spans and their count has not changed for :data:`SETTLE_S` (all in);
    * the app has delivered spans that ended after the journey (``ended_ns``), none in this trace: its
      exporter sends spans in the order they end, so none of this trace is still coming;
    * the store holds no backend span at all :data:`NO_SPANS_GRACE_S` after the journey (the app sends none);
    * :data:`SPAN_WAIT_S` passed.

    Args:
        state_dir: the worktree's ``.legible``.
        collector_url: the running collector (queries go through it), or ``None`` to read the file.
        trace_id: the journey's trace, 32 hex.
        limit: how many of the slowest spans to return.
        ended_ns: when the journey ended, epoch ns (default: now).
        clock: monotonic seconds (default ``time.monotonic``).
        sleep: waits, in seconds (default ``time.sleep``).

    Returns:
        ``{"spans": total, "slowest": [{"service", "name", "duration_ms", "status_code"}], "error": str,
        "waited_ms": float, "none_because": str}``; ``none_because`` says why no backend span is expected
        (``""`` when some arrived).

    """
    from legible._errors import LegibleError
    from legible.store import open_store

    store = open_store(state_dir, collector_url=collector_url)
    ended = time.time_ns() if ended_ns is None else ended_ns
    start = clock()
    last, changed_at = -1, start
    rows: list[dict[str, Any]] = []
    total = 0
    why = ""
    while True:
        now = clock()
        try:
            res = store.query(
                "SELECT service, name, duration_ms, status_code, count(*) OVER () AS total FROM spans "
                "WHERE trace_id = ? AND service <> 'browser' ORDER BY duration_ms DESC LIMIT ?",
                [trace_id, limit],
            )
            rows = res.dicts()
            total = int(rows[0]["total"]) if rows else 0
            if total != last:
                last, changed_at = total, now
            if total and now - changed_at >= SETTLE_S:
                break
            if not total:
                seen = store.query(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE end_ns > ?) AS after FROM spans "
                    "WHERE service <> 'browser'",
                    [ended],
                ).dicts()[0]
                if seen["after"]:
                    why = "the app's spans from after the journey hold none of its trace"
                    break
                if not seen["n"] and now - start >= NO_SPANS_GRACE_S:
                    why = "the app has sent no spans (is it instrumented with OpenTelemetry?)"
                    break
        except LegibleError as e:
            return {"spans": 0, "slowest": [], "error": e.message, "waited_ms": 0.0, "none_because": ""}
        if now - start >= SPAN_WAIT_S:
            if not total:
                why = f"no span of this trace arrived in {SPAN_WAIT_S:g} s"
            break
        sleep(POLL_S)
    slowest: list[BackendSpan] = [
        {"service": r["service"], "name": r["name"], "duration_ms": r["duration_ms"], "status_code": r["status_code"]}
        for r in rows
    ]
    waited = round((clock() - start) * 1000, 1)
    return {"spans": total, "slowest": slowest, "error": "", "waited_ms": waited, "none_because": why}
