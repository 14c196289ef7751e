"""Deploy records, windows, the stale-code check (real git) and ``legible diff`` over a store built here.

No stack runs: the diff reads the kept DuckDB file, as after ``legible down``. The loop with real processes
is in test_restart.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest

from legible import deploys
from legible._errors import UsageError
from legible.diff import diff, render
from legible.store import migrate, store_path

from ._query_fixtures import LOG_COLS, SPAN_COLS
from .conftest import cli, cli_json, git, make_repo

S = 10**9


def _rec(n: int, started: float, **kw: object) -> dict:
    return {**deploys.new_record(n, "restart", ["app"], None), "started_at": started, **kw}


def test_windows_resolve_current_previous_and_numbered_deploys(tmp_path: Path) -> None:
    for rec in (_rec(1, 100.0), _rec(2, 200.0), _rec(2, 200.0, status="ready"), _rec(3, 300.0)):
        deploys.append(tmp_path, rec)
    found = deploys.load(tmp_path)
    assert [(d["number"], d["status"]) for d in found] == [(1, "starting"), (2, "ready"), (3, "starting")]
    cur = deploys.window(found, "deploy")
    assert (cur.since_ns, cur.until_ns, cur.label) == (300 * S, None, "deploy 3")
    prev = deploys.window(found, "deploy~1")
    assert (prev.since_ns, prev.until_ns) == (200 * S, 300 * S)
    assert deploys.window(found, "deploy:1").until_ns == 200 * S
    assert deploys.window_args("deploy~1", None, tmp_path)[2:] == ("deploy 2", "deploy 3")
    assert deploys.window_args("15m", None, tmp_path) == ("15m", None, None, None)
    for bad, msg in (("deploy:9", "there is no deploy 9"), ("deploy~3", "only 3 deploys"), ("deploy5", "not a")):
        with pytest.raises(UsageError, match=msg):
            deploys.window(found, bad)
    assert oct(deploys.deploys_path(tmp_path).stat().st_mode & 0o777) == "0o600"
    assert deploys.next_number(tmp_path) == 4


def test_stale_check_compares_file_by_file_with_the_deployed_content(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "[app]\ncommand = 'true'\n", {"a.py": "a = 1\n", "b.py": "b = 1\n"})
    (root / "a.py").write_text("a = 2\n")  # deployed dirty
    snap = deploys.git_snapshot(root)
    assert snap.dirty and list(snap.files) == ["a.py"] and snap.commit == git(root, "rev-parse", "HEAD")
    dep = {"commit": snap.commit, "files": snap.files}
    assert deploys.changed_since(root, dep) == []
    (root / "b.py").write_text("b = 2\n")
    (root / "a.py").write_text("a = 3\n")
    assert deploys.changed_since(root, dep) == ["a.py", "b.py"]
    (root / "a.py").write_text("a = 2\n")
    (root / "b.py").write_text("b = 1\n")
    git(root, "commit", "-qam", "the deployed content")  # a commit of what runs is not a change
    assert deploys.changed_since(root, dep) == []
    (root / "notes.txt").write_text("untracked files are not code that runs\n")
    assert deploys.changed_since(root, dep) == []


def test_a_running_stack_whose_collector_is_not_ready_is_said_first(tmp_path: Path) -> None:
    """The query commands' first lines: a failed collector (nothing stored since it stopped) or one restarting;
    nothing when it is ready, or when the stack is not running. ``state.json`` as the supervisor writes it,
    this process standing in as the live supervisor."""
    import os

    from legible._procs import ProcRef

    root = make_repo(tmp_path / "r", "[app]\ncommand = 'true'\n", {"a.py": "a = 1\n"})
    ref = ProcRef.of(os.getpid())
    assert ref is not None

    def state(status: str, collector: dict[str, object], supervisor: dict | None = None) -> None:
        doc = {"schema": "legible.state/v1", "status": status, "services": {"collector": collector}, "endpoints": {}}
        doc["supervisor"] = supervisor or dict(ref.to_dict())
        (root / ".legible").mkdir(exist_ok=True)
        (root / ".legible" / "state.json").write_text(json.dumps(doc))

    failed = {"status": "failed", "restarts": 6, "error": "collector exited with code -9; gave up after 5 restarts"}
    state("degraded", failed)
    assert deploys.warning_lines(root) == [
        "warning: collector failed (collector exited with code -9; gave up after 5 restarts): logs and spans "
        "after it stopped are not stored; legible down && legible up"
    ]
    state("degraded", {"status": "backoff", "restarts": 2, "error": None})
    assert deploys.warning_lines(root) == [
        "warning: collector backoff (restarts=2): new logs and spans may be missing until it is ready; legible status"
    ]
    state("ready", {"status": "ready", "restarts": 2})
    assert deploys.warning_lines(root) == []
    state("stopped", failed)  # after `legible down` the file is the answer, and nothing is missing from it
    assert deploys.warning_lines(root) == []
    state("degraded", failed, supervisor={"pid": 2**22 + 1, "create_time": 1.0})  # a supervisor long gone
    assert deploys.warning_lines(root) == []


def _store(root: Path, now: int) -> None:
    """Deploy 1 (20 min .. 10 min ago) and deploy 2 (10 min ago .. now) with routes and error lines."""
    path = store_path(root / ".legible")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    migrate(con)
    spans, logs = [], []

    def span(t: int, name: str, ms: float, *, svc: str = "app", parent: str | None = None) -> None:
        i = len(spans)
        tid = f"{i:032x}"
        spans.append(
            (i, tid, f"{i:016x}", parent, None, svc, name, "server" if parent is None else "internal", t,
             t + int(ms * 1e6), ms, "unset", None, "{}", "{}", "s", "[]", "[]", None, None, t)
        )  # fmt: skip

    def line(t: int, body: str, tid: str | None, svc: str = "app", level: str = "error") -> None:
        i = len(logs)
        head = body.splitlines()[-1]
        logs.append((i, t, t, svc, level, 17, level.upper(), body, head, "{}", "{}", None, tid, None, "stdout"))

    d1, d2 = now - 1200 * S, now - 600 * S
    for k in range(10):  # deploy 1: 10 minutes, deploy 2: 10 minutes with twice the traffic
        span(d1 + 2 * S + k * 50 * S, "GET /slow", 1200.0)
        span(d1 + k * 50 * S + S, "GET /", 10.0)
    for k in range(20):
        span(d2 + 2 * S + k * 25 * S, "GET /slow", 2400.0)
        span(d2 + k * 25 * S + S, "GET /", 10.5)
    span(d1 + 5 * S, "GET /rare", 5.0)
    span(d2 + 5 * S, "GET /rare", 50.0)
    span(d2 + 7 * S, "journey report", 9000.0, svc="browser")
    line(d1 + 9 * S, "GET /error 500", "a" * 32)
    line(d1 + 9 * S, 'Traceback (most recent call last):\n  File "app.py", line 3, in f\nValueError: old', "a" * 32)
    line(d2 + 9 * S, "POST /order 500", "b" * 32)
    line(d2 + 9 * S, "Traceback (most recent call last):\n  File \"app.py\", line 9, in g\nKeyError: 'sku'", "b" * 32)
    line(d2 + 9 * S, "Uncaught TypeError: x is undefined", None, svc="browser")
    con.executemany(f"INSERT INTO spans ({SPAN_COLS}) VALUES ({', '.join('?' * 21)})", spans)
    con.executemany(f"INSERT INTO logs ({LOG_COLS}) VALUES ({', '.join('?' * 15)})", logs)
    con.close()
    for n, t, ready in ((1, d1, 300.0), (2, d2, 330.0)):
        deploys.append(root / ".legible", _rec(n, t / S, status="ready", ready={"app": ready}, ready_ms=ready))
    for n, status in ((1, "pass"), (2, "fail")):
        with (root / ".legible" / deploys.CHECKS_FILE).open("a") as fh:
            fh.write(json.dumps({"deploy": n, "time": 0, "checks": {"report": {"status": status, "summary": "s"}}}))
            fh.write("\n")


def test_diff_flags_the_slower_route_normalises_rates_and_folds_incidents(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "[app]\ncommand = 'true'\n")
    _store(root, time.time_ns())
    doc = diff(root)
    assert doc["schema"] == "legible.diff/v1" and (doc["before"]["deploy"], doc["after"]["deploy"]) == (1, 2)
    routes = {r["name"]: r for r in doc["routes"]}
    slow = routes["GET /slow"]
    assert slow["flagged"] and slow["note"] == "slower" and slow["change_p50_pct"] == 100.0
    # rates, not counts: 10 requests in deploy 1's 10 minutes; 20 in deploy 2, which lasts until now
    assert slow["before"]["rate_per_min"] == pytest.approx(1.0, rel=0.001) and doc["before"]["seconds"] == 600
    assert slow["after"]["rate_per_min"] == pytest.approx(20 / doc["after"]["seconds"] * 60, rel=0.001)
    assert not routes["GET /"]["flagged"] and routes["GET /"]["change_p50_pct"] == 5.0
    assert routes["GET /rare"]["change_p50_pct"] is None and "too few for a percentage" in routes["GET /rare"]["note"]
    assert "journey report" not in routes  # the browser's spans are not routes
    assert [e["headline"] for e in doc["errors"]["new"]] == ["KeyError: 'sku'"]
    assert doc["errors"]["new"][0]["trace_id"] == "b" * 32 and doc["errors"]["new"][0]["related"] == ["POST /order 500"]
    assert [e["headline"] for e in doc["errors"]["gone"]] == ["ValueError: old"]
    assert [e["headline"] for e in doc["console_errors"]["new"]] == ["Uncaught TypeError: x is undefined"]
    assert doc["ready"] == [{"service": "app", "before_ms": 300.0, "after_ms": 330.0, "change_pct": 10.0}]
    assert doc["checks"] == [{"name": "report", "before": "pass", "after": "fail", "summary": "s"}]
    text = render(doc)
    assert text[0].startswith("deploy 2 (no commit) vs deploy 1 (no commit): 1 route slower, 1 new error group, 1 gone")
    assert len(text) <= 40
    assert any(ln.startswith("! GET /slow [app]  1 -> ") and "p50 1.2 s -> 2.4 s +100%" in ln for ln in text), text
    # the same through the CLI, and the usage errors
    code, same = cli_json(root, "diff", "--against", "deploy:1")
    flags = [(r["name"], r["flagged"], r["change_p50_pct"]) for r in doc["routes"]]
    assert code == 0 and [(r["name"], r["flagged"], r["change_p50_pct"]) for r in same["routes"]] == flags
    res = cli(root, "diff", "--against", "deploy:2")
    assert res.returncode == 2 and res.stderr.startswith("error: both sides are deploy 2")
    res = cli(root, "diff", "--deploy", "deploy:1")
    assert res.returncode == 2 and "deploy 1 is the first deploy" in res.stderr
    code, logs = cli_json(root, "logs", "--since", "deploy~1", "--level", "error")
    assert code == 0 and logs["total"] == 2


def test_diff_against_a_proof_run_uses_its_window_and_verdicts(tmp_path: Path) -> None:
    import datetime as dt

    root = make_repo(tmp_path / "r", "[app]\ncommand = 'true'\n")
    now = time.time_ns()
    _store(root, now)
    run = root / ".legible" / "proof" / "20261129-0100-abc"
    run.mkdir(parents=True)

    def iso(ns: int) -> str:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()

    manifest = {
        "started_at": iso(now - 1200 * S),
        "finished_at": iso(now - 600 * S),
        "commit": "f" * 40,
        "dirty": False,
        "passed": True,
        "startup_ms": 280.0,
        "checks": {"checks": [{"name": "report", "status": "pass", "summary": "ok"}]},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    doc = diff(root, against="proof:20261129-0100-abc")
    assert doc["before"]["label"] == "proof 20261129-0100-abc" and doc["before"]["seconds"] == 600
    slow = next(r for r in doc["routes"] if r["name"] == "GET /slow")
    assert slow["before"]["count"] == 10 and slow["flagged"]
    assert doc["ready"][0]["before_ms"] == 280.0 and doc["checks"][0]["before"] == "pass"
    assert render(doc)[0].startswith("deploy 2 (no commit) vs proof 20261129-0100-abc (fffffff): 1 route slower")
    with pytest.raises(UsageError, match="no proof run 'nope'"):
        diff(root, against="proof:nope")
