"""The browser side of ``legible check``: run a journey, or open pages and count what went wrong.

:mod:`legible.checks` finds these two functions by name (``run_journey_for_check``, ``check_pages``), so the
checks module does not import Playwright or talk to the agent itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from legible.config import LegibleConfig
from legible.worktree import Worktree


def journey_outcome(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Reduce a ``legible.journey/v1`` document to what checks and proofs compare.

    Returns:
        ``{"passed", "duration_ms", "error", "failed_step", "trace_id", "steps": [{"title", "status",
        "duration_ms"}], "video": {...}, "backend": {...}}`` (``status`` is ``pass`` or ``fail``); of a
        recorded run also ``"recording_ms"`` (the run's and each step's time added by the recording).
    """
    failed = doc.get("failed") or {}
    return {
        "passed": bool(doc.get("ok")),
        "duration_ms": doc.get("duration_ms"),
        "error": failed.get("error") or doc.get("error") or "",
        "failed_step": failed.get("n"),
        "trace_id": doc.get("trace_id"),
        "steps": [
            {
                "title": s.get("title"),
                "status": "pass" if s.get("ok") else "fail",
                "duration_ms": s.get("ms"),
                "screenshot": s.get("screenshot") or "",
                **({"recording_ms": s["recording_ms"]} if "recording_ms" in s else {}),
            }
            for s in doc.get("steps", [])
        ],
        "video": doc.get("video") or {},
        "backend": doc.get("backend") or {},
        **({"recording_ms": doc["recording_ms"]} if "recording_ms" in doc else {}),
    }


def run_journey_for_check(wt: Worktree, cfg: LegibleConfig, name: str, record: bool = False) -> dict[str, Any]:
    """Run journey ``name`` on the stack's browser; return :func:`journey_outcome` of it.

    Raises:
        UsageError: no such journey. NotRunning: no stack, or no browser in it.
    """
    from legible.browser.journey import run_journey

    return journey_outcome(run_journey(name, record=record, start=wt.root))


def check_pages(wt: Worktree, pages: list[str]) -> dict[str, Any]:
    """Open each of ``pages`` in the stack's tab; collect console errors and failed requests they caused.

    Returns:
        ``{"pages": [...], "console_errors": ["<text> at <url:line:col>"...], "failed_requests":
        ["<status|failure> <method> <url>"...]}``; static assets count too (a missing script is a failure).

    Raises:
        NotRunning: no stack, or no browser in it.
    """
    from legible.browser.client import call

    state_dir: Path = wt.state_dir
    call(state_dir, "console", {})  # drain what earlier calls left, so only these pages count
    call(state_dir, "network", {})
    for page in pages:
        call(state_dir, "open", {"url": page})
    console = call(state_dir, "console", {})
    network = call(state_dir, "network", {"all": True})
    errors = [
        f"{g['text']} at {g['where']}"
        for g in console.get("groups", [])
        if g.get("level") == "error"
        for _ in range(int(g.get("count", 1)))
    ]
    failed = [
        f"{r.get('failure') or r.get('status')} {r.get('method', 'GET')} {r.get('url')}"
        for r in network.get("failed", [])
    ]
    return {"pages": pages, "console_errors": errors, "failed_requests": failed}
