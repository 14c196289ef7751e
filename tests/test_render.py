"""The text renderers of legible.render on fixed documents: bounded, failures first, durations by one rule."""

from __future__ import annotations

from pathlib import Path

from legible.render import render_browser, render_check, render_gc, render_proof, render_up


def _check(name: str, status: str, summary: str, evidence: str = "") -> dict[str, object]:
    return {"name": name, "status": status, "summary": summary, "evidence": evidence}


def test_check_lines_put_failures_first_and_point_at_the_evidence() -> None:
    doc = {
        "passed": False,
        "took_ms": 1234.5,
        "counts": {"pass": 1, "fail": 1, "error": 1},
        "checks": [
            _check("fast-start", "pass", "app ready in 312 ms <= 800 ms", "legible status"),
            _check("no-data", "error", "no span matched", "legible traces --since 1h"),
            _check("slow", "fail", "1.21 s > 1 s", "legible trace abc"),
        ],
    }
    lines = render_check(doc)
    assert lines[0] == "FAIL: 1 of 3 checks passed, 1 failed, 1 could not be measured (1.23 s)"
    assert lines[1] == "FAIL  slow        1.21 s > 1 s  -> legible trace abc"
    assert lines[2].startswith("ERROR no-data ") and lines[3] == "PASS  fast-start  app ready in 312 ms <= 800 ms"
    assert render_check(doc, Path("out.json")) == [f"{lines[0]}; json: out.json"]


def test_proof_line() -> None:
    manifest = {
        "passed": True,
        "took_ms": 14_200,
        "checks": {"counts": {"pass": 3, "fail": 0, "error": 0}},
        "journeys": {"a": {"passed": True}, "b": {"passed": True}},
    }
    line = render_proof(manifest, Path("p/summary.md"), {"action": "updated", "pr": 12})
    assert line == ["proof PASS: 3/3 checks, 2/2 journeys in 14.2 s -> p/summary.md; updated comment on PR #12"]


def test_long_snapshot_is_cut_with_the_path_of_the_whole() -> None:
    text = "\n".join(f"- item {i}" for i in range(200))
    res = {"text": text, "bytes": len(text), "refs": 3, "path": "/s.yaml", "title": "T", "url": "http://x/"}
    lines = render_browser("snapshot", res)
    assert len(lines) == 63 and lines[60] == "... 140 more lines cut; the whole snapshot: /s.yaml"
    assert lines[-2] == f"snapshot {len(text) / 1024:.1f} KB, 3 refs: /s.yaml" and lines[-1] == "page: T · http://x/"


def test_gc_lists_at_most_20_of_each_then_a_cut_line() -> None:
    leases = [{"key": f"k{i}", "why": "worktree gone", "worktree": f"/w{i}"} for i in range(25)]
    lines = render_gc({"leases": leases, "orphans": []}, dry_run=True)
    assert lines[0] == "would reclaim 25 leases, would kill 0 orphaned processes"
    assert len(lines) == 22 and lines[-1] == "... 5 more not shown; --json lists all"


def test_up_prints_ready_times_by_the_one_duration_rule() -> None:
    res = {
        "key": "shop-1",
        "status": "ready",
        "already_running": False,
        "ready_ms": 1590.0,
        "endpoints": {"app": "http://127.0.0.1:1"},
        "services": {"app": {"status": "ready", "first_ready_ms": 312.4, "port": 1}},
        "env_file": "/w/.legible/env",
        "note": "",
    }
    lines = render_up(res)
    assert lines[0] == "stack shop-1 ready in 1.59 s" and lines[1].split() == [
        "app",
        "ready",
        "312",
        "ms",
        "http://127.0.0.1:1",
    ]
    assert render_up(res, Path("o.json")) == ["stack shop-1 ready in 1.59 s: app http://127.0.0.1:1; json: o.json"]


def test_status_says_what_a_collector_that_is_not_ready_means() -> None:
    """The service row says ``failed``; the last line says what that costs (no signals stored) and the fix."""
    from legible.render import render_status

    collector = {"status": "failed", "restarts": 6, "error": "collector exited with code -9; gave up after 5 restarts"}
    res = {
        "key": "shop-1",
        "status": "degraded",
        "alive": True,
        "ready_ms": 600.0,
        "error": "",
        "endpoints": {"app": "http://127.0.0.1:1"},
        "services": {"app": {"status": "ready", "first_ready_ms": 312.4, "port": 1}, "collector": collector},
    }
    assert render_status(res)[-1] == (
        "warning: collector failed (collector exited with code -9; gave up after 5 restarts): logs and spans after "
        "it stopped are not stored; legible down && legible up"
    )
    collector.update(status="backoff", error="")  # restarting: `legible status` is this very command
    assert render_status(res)[-1] == (
        "warning: collector backoff (restarts=6): new logs and spans may be missing until it is ready"
    )
    collector.update(status="ready")
    assert not render_status(res)[-1].startswith("warning:")
    res["alive"] = False  # after `down`: the kept data is all there is
    assert render_status(res)[-1].startswith("not running:")
