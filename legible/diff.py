"""``legible diff``: what changed between two deploys, summaries first, in about 40 lines.

Both sides are deploy windows (:mod:`legible.deploys`): by default the current deploy (until now) against
the previous one. Compared, in this order:

* error groups (grouped as ``legible logs`` groups them: service, level, template) new in this deploy and
  gone from it; new groups that share a trace are folded into one entry (a 500's access line and its
  traceback are one incident), each with a trace id to follow;
* per route (server spans) and per root span of the app's services (the browser's journey spans are its
  consequences, not routes): request rate per minute (windows of unequal length are compared as rates),
  p50 and p95 before and after with the change in percent; a row is *flagged* when p50 (or, with at least
  ``P95_MIN_COUNT`` requests a side, p95) moved by at least ``threshold_pct`` percent and ``MIN_DELTA_MS``
  ms; a side seen fewer than ``min_count`` times says so instead of a percentage;
* time to ready of each restarted service; new browser console errors; checks whose verdict changed
  (``legible check`` records its verdicts per deploy in ``.legible/checks.jsonl``).

:func:`diff` returns the ``legible.diff/v1`` document; :func:`render` turns it into text.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from legible._errors import UsageError

DIFF_SCHEMA = "legible.diff/v1"
#: A route needs this many requests on both sides for a percentage.
MIN_COUNT = 3
#: Flag a route whose p50 or p95 changed by at least this many percent ...
THRESHOLD_PCT = 20.0
#: ... and by at least this many ms (a 0.4 -> 3 ms background job on a busy machine is not news).
MIN_DELTA_MS = 5.0
#: p95 flags a route only with this many requests on both sides (below, p95 is about the slowest request,
#: which one scheduling hiccup moves); p50 needs ``min_count``.
P95_MIN_COUNT = 20
#: Most routes and error groups listed in text (JSON has all).
MAX_ROUTES = 15
MAX_GROUPS = 6
BROWSER_SERVICE = "browser"


def _side(w: Any, now_ns: int) -> dict[str, Any]:
    d = w.deploy
    return {
        "deploy": d["number"],
        "label": w.label,
        "since_ns": w.since_ns,
        "until_ns": w.until_ns,
        "seconds": round(w.seconds(now_ns), 3),
        "commit": d.get("commit"),
        "dirty": bool(d.get("dirty")),
        "trigger": d.get("trigger"),
        "status": d.get("status"),
        "ready_ms": d.get("ready_ms"),
        "ready": d.get("ready") or {},
    }


def _pct(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return round((after - before) / before * 100, 1)


def _routes(store: Any, a: Any, b: Any, now_ns: int, threshold: float, min_count: int) -> list[dict[str, Any]]:
    """Per (service, name) of entry spans in both windows: count, rate, p50, p95, errors; one DuckDB scan."""
    a_hi = a.until_ns if a.until_ns is not None else now_ns
    b_hi = b.until_ns if b.until_ns is not None else now_ns
    sql = """
SELECT CASE WHEN start_ns >= ? AND start_ns < ? THEN 'after' ELSE 'before' END AS side, service, name,
       count(*), quantile_cont(duration_ms, [0.5, 0.95]),
       count(*) FILTER (WHERE status_code = 'error'), arg_max(trace_id, duration_ms)
FROM spans
WHERE ((start_ns >= ? AND start_ns < ?) OR (start_ns >= ? AND start_ns < ?))
  AND (kind = 'server' OR parent_span_id IS NULL) AND service != ?
GROUP BY ALL"""
    rows = store.query(sql, [b.since_ns, b_hi, a.since_ns, a_hi, b.since_ns, b_hi, BROWSER_SERVICE]).rows
    secs = {"before": a.seconds(now_ns), "after": b.seconds(now_ns)}
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for side, service, name, n, qs, errs, tid in rows:
        p50, p95 = qs
        row = table.setdefault((service, name), {"service": service, "name": name, "before": None, "after": None})
        row[side] = {
            "count": int(n),
            "rate_per_min": round(int(n) / secs[side] * 60, 3),
            "p50_ms": round(float(p50), 3),
            "p95_ms": round(float(p95), 3),
            "errors": int(errs),
            "slowest_trace": tid,
        }
    out = []
    for row in table.values():
        before, after = row["before"], row["after"]
        row["change_p50_pct"] = row["change_p95_pct"] = None
        row["flagged"] = False
        if before is None:
            row["note"] = "new in this deploy"
        elif after is None:
            row["note"] = "not seen in this deploy"
        elif min(before["count"], after["count"]) < min_count:
            row["note"] = f"seen {before['count']} -> {after['count']} times: too few for a percentage (< {min_count})"
        else:
            row["note"] = ""
            row["change_p50_pct"] = _pct(before["p50_ms"], after["p50_ms"])
            row["change_p95_pct"] = _pct(before["p95_ms"], after["p95_ms"])
            p95_ok = min(before["count"], after["count"]) >= P95_MIN_COUNT
            row["flagged"] = any(
                pct is not None and abs(pct) >= threshold and abs(after[k] - before[k]) >= MIN_DELTA_MS
                for pct, k in ((row["change_p50_pct"], "p50_ms"), (row["change_p95_pct"] if p95_ok else None, "p95_ms"))
            )
            if row["flagged"]:
                worse = (row["change_p95_pct"] or 0) + (row["change_p50_pct"] or 0) > 0
                row["note"] = "slower" if worse else "faster"
        out.append(row)
    out.sort(
        key=lambda r: (
            not r["flagged"],
            -((r["after"] or {}).get("count", 0) + (r["before"] or {}).get("count", 0)),
            r["name"],
        )
    )
    return out


def _error_groups(store: Any, w: Any, now_ns: int) -> list[Any]:
    from legible.queries import logs as q

    flt = q.LogFilter(since_ns=w.since_ns, until_ns=w.until_ns, since_text=w.label, min_level="error")
    return q.log_groups(store, flt, limit=200, now=now_ns).groups


def _group_json(g: Any, related: list[Any]) -> dict[str, Any]:
    from legible.queries.logs import compact_location, headline

    text, location = headline(g.example) if g.example else (g.template, None)
    return {
        "service": g.service,
        "level": g.level,
        "template": g.template,
        "headline": text.rsplit(" … ", 1)[-1],  # a traceback's exception line, without the logger's prefix
        "location": compact_location(location) if location else None,
        "count": g.count,
        "trace_id": g.trace_id,
        "related": [r.template for r in related],
    }


def _fold(groups: list[Any]) -> list[dict[str, Any]]:
    """One entry per incident: groups whose newest line shares a trace are one (the traceback leads)."""
    by_trace: dict[str, list[Any]] = {}
    alone: list[Any] = []
    for g in groups:
        (by_trace.setdefault(g.trace_id, []) if g.trace_id else alone).append(g)
    out = []
    for members in by_trace.values():
        members.sort(key=lambda g: (-g.example.count("\n"), -len(g.example)))  # the traceback first
        out.append(_group_json(members[0], members[1:]))
    out.extend(_group_json(g, []) for g in alone)
    out.sort(key=lambda e: -int(e["count"]))
    return out


def _proof_window(state_dir: Path, run: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The window of proof run ``run`` of this worktree (``.legible/proof/RUN/manifest.json``) and its verdicts.

    Raises:
        UsageError: no such run (the message lists the newest ones).

    """
    import datetime as dt
    import json

    from legible.deploys import Window

    path = Path(state_dir) / "proof" / run / "manifest.json"
    try:
        m = json.loads(path.read_text())
        lo = dt.datetime.fromisoformat(m["started_at"]).timestamp()
        hi = dt.datetime.fromisoformat(m["finished_at"]).timestamp()
    except (OSError, ValueError, KeyError) as exc:
        runs = sorted(p.parent.name for p in (Path(state_dir) / "proof").glob("*/manifest.json"))[-5:]
        raise UsageError(
            f"--against proof:{run}: no proof run {run!r} here ({type(exc).__name__})",
            hint=f"runs: {', '.join(runs)}" if runs else "run `legible proof` first",
        ) from None
    startup = m.get("startup_ms")
    rec = {
        "number": f"proof:{run}",
        "started_at": lo,
        "trigger": "proof",
        "status": "passed" if m.get("passed") else "failed",
        "commit": m.get("commit"),
        "dirty": bool(m.get("dirty")),
        "ready": {"app": startup} if startup is not None else {},
        "ready_ms": startup,
    }
    checks = {
        c["name"]: {"status": c["status"], "summary": c["summary"]} for c in m.get("checks", {}).get("checks", [])
    }
    return Window(rec, int(lo * 1e9), int(hi * 1e9), f"proof {run}"), checks


def diff(
    start: Path | None = None,
    *,
    after: str = "deploy",
    against: str | None = None,
    threshold_pct: float = THRESHOLD_PCT,
    min_count: int = MIN_COUNT,
) -> dict[str, Any]:
    """Compare two deploys of the worktree containing ``start``.

    Args:
        start: a path in the worktree (default: the current directory).
        after: the deploy looked at: ``deploy`` (current), ``deploy~N`` or ``deploy:N``.
        against: the deploy it is compared with (default: the one before ``after``), or ``proof:RUN`` (the
            window of that ``legible proof`` run of this worktree, its verdicts and startup figure).
        threshold_pct: flag routes whose p50 or p95 moved at least this many percent.
        min_count: fewer requests than this on a side: no percentage.

    Returns:
        ``legible.diff/v1``: ``{"schema", "key", "after": side, "before": side, "threshold_pct",
        "min_count", "summary": {"flagged", "slower", "faster", "new_errors", "gone_errors",
        "new_console_errors", "checks_changed"}, "errors": {"new": [...], "gone": [...]},
        "console_errors": {"new": [...]}, "routes": [...], "ready": [...], "checks": [...], "took_ms"}``;
        a side is ``{"deploy", "label", "since_ns", "until_ns", "seconds", "commit", "dirty", "trigger",
        "status", "ready_ms", "ready"}``.

    Raises:
        UsageError: fewer than two deploys, an unknown deploy or proof run, the two sides are the same
            deploy, or a bad threshold.
        NotRunning: no store yet.

    """
    from legible import deploys
    from legible.queries.source import worktree_store
    from legible.worktree import find_worktree

    t0 = time.monotonic()
    if threshold_pct <= 0 or min_count < 1:
        raise UsageError("--threshold must be > 0 and --min-count >= 1", hint="e.g. --threshold 20 --min-count 3")
    wt = find_worktree(start)
    found = deploys.load(wt.state_dir)
    b = deploys.window(found, after, what="deploy")
    if against is None:
        i = [d["number"] for d in found].index(b.deploy["number"])
        if i == 0:
            raise UsageError(
                f"{b.label} is the first deploy: nothing to compare with",
                hint="edit, `legible restart`, drive traffic, then `legible diff`",
            )
        against = f"deploy:{found[i - 1]['number']}"
    if against.startswith("proof:"):
        a, va = _proof_window(wt.state_dir, against.removeprefix("proof:"))
    else:
        a = deploys.window(found, against, what="--against")
        va = deploys.check_verdicts(wt.state_dir, a.deploy["number"])
    if a.deploy["number"] == b.deploy["number"]:
        raise UsageError(f"both sides are {a.label}", hint="--against deploy:N with another N (legible deploys)")
    now_ns = time.time_ns()
    store = worktree_store(wt.root)
    routes = _routes(store, a, b, now_ns, threshold_pct, min_count)
    ga, gb = _error_groups(store, a, now_ns), _error_groups(store, b, now_ns)

    def key(g: Any) -> tuple[str, str, str]:
        return (g.service, g.level, g.template)

    seen_a, seen_b = {key(g) for g in ga}, {key(g) for g in gb}
    new = _fold([g for g in gb if key(g) not in seen_a and g.service != BROWSER_SERVICE])
    gone = _fold([g for g in ga if key(g) not in seen_b and g.service != BROWSER_SERVICE])
    console = _fold([g for g in gb if key(g) not in seen_a and g.service == BROWSER_SERVICE])
    ready = []
    for name in sorted(set(a.deploy.get("ready") or {}) | set(b.deploy.get("ready") or {})):
        rb, ra = (a.deploy.get("ready") or {}).get(name), (b.deploy.get("ready") or {}).get(name)
        ready.append({"service": name, "before_ms": rb, "after_ms": ra, "change_pct": _pct(rb, ra)})
    vb = deploys.check_verdicts(wt.state_dir, b.deploy["number"])
    checks = [
        {"name": n, "before": va[n]["status"], "after": vb[n]["status"], "summary": vb[n]["summary"]}
        for n in sorted(set(va) & set(vb))
        if va[n]["status"] != vb[n]["status"]
    ]
    flagged = [r for r in routes if r["flagged"]]
    return {
        "schema": DIFF_SCHEMA,
        "key": wt.key,
        "after": _side(b, now_ns),
        "before": _side(a, now_ns),
        "threshold_pct": threshold_pct,
        "min_count": min_count,
        "summary": {
            "flagged": len(flagged),
            "slower": sum(r["note"] == "slower" for r in flagged),
            "faster": sum(r["note"] == "faster" for r in flagged),
            "new_errors": len(new),
            "gone_errors": len(gone),
            "new_console_errors": len(console),
            "checks_changed": len(checks),
        },
        "errors": {"new": new, "gone": gone},
        "console_errors": {"new": console},
        "routes": routes,
        "ready": ready,
        "checks": checks,
        "took_ms": round((time.monotonic() - t0) * 1000, 1),
    }


# -- text -----------------------------------------------------------------------------------------------
def _ms(v: float | None) -> str:
    from legible._duration import format_ms as fmt_ms

    return fmt_ms(v)


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _signed(p: float | None) -> str:
    return "" if p is None else f"{p:+.0f}%"


def _describe(side: dict[str, Any]) -> str:
    commit = str(side.get("commit") or "")[:7] or "no commit"
    return f"{side['label']} ({commit}{', dirty' if side['dirty'] else ''})"


def render(doc: dict[str, Any]) -> list[str]:
    """The text of ``legible diff``: a summary line, then errors, routes, ready times, console, checks (<= ~40)."""
    s = doc["summary"]
    parts = []
    if s["slower"]:
        parts.append(f"{s['slower']} route{'s' if s['slower'] != 1 else ''} slower")
    if s["faster"]:
        parts.append(f"{s['faster']} faster")
    parts.append(f"{s['new_errors']} new error group{'s' if s['new_errors'] != 1 else ''}")
    if s["gone_errors"]:
        parts.append(f"{s['gone_errors']} gone")
    if s["new_console_errors"]:
        parts.append(f"{s['new_console_errors']} new console errors")
    if s["checks_changed"]:
        parts.append(f"{s['checks_changed']} checks changed")
    lines = [f"{_describe(doc['after'])} vs {_describe(doc['before'])}: {', '.join(parts)}"]

    def groups(title: str, mark: str, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        lines.append(f"{title}:")
        for e in items[:MAX_GROUPS]:
            tid = f"  trace={e['trace_id']}" if e["trace_id"] else ""
            rel = f"  (+{len(e['related'])} related)" if e["related"] else ""
            lines.append(f"  {mark} {e['level']} {e['service']}  {e['headline'][:110]}  x{e['count']}{tid}{rel}")
            if e.get("location"):
                lines.append(f"      at {e['location'][:120]}")
        if len(items) > MAX_GROUPS:
            lines.append(f"  ... {len(items) - MAX_GROUPS} more: --json lists all")

    groups("new error groups", "+", doc["errors"]["new"])
    groups("gone error groups (not seen in this deploy)", "-", doc["errors"]["gone"])
    routes = doc["routes"]
    if routes:
        from legible._duration import format_seconds

        spans = f"{format_seconds(doc['before']['seconds'])} -> {format_seconds(doc['after']['seconds'])}"
        lines.append(
            f"routes over {spans} (requests/min, p50, p95 before -> after; ! beyond {doc['threshold_pct']:g}%):"
        )
        for r in routes[:MAX_ROUTES]:
            b, a = r["before"], r["after"]
            mark = "!" if r["flagged"] else " "
            head = f"{mark} {r['name']} [{r['service']}]"
            if b is None or a is None:
                one = a or b
                assert one is not None
                lines.append(f"{head}  {r['note']}: n={one['count']} p50 {_ms(one['p50_ms'])} p95 {_ms(one['p95_ms'])}")
                continue
            rate = f"{_rate(b['rate_per_min'])} -> {_rate(a['rate_per_min'])}/min"
            if r["change_p50_pct"] is None and r["change_p95_pct"] is None:
                lines.append(f"{head}  {rate}  {r['note']}")
                continue
            lines.append(
                f"{head}  {rate}  p50 {_ms(b['p50_ms'])} -> {_ms(a['p50_ms'])} {_signed(r['change_p50_pct'])}"
                f"  p95 {_ms(b['p95_ms'])} -> {_ms(a['p95_ms'])} {_signed(r['change_p95_pct'])}"
                + (f"  {r['note']}" if r["note"] else "")
            )
        if len(routes) > MAX_ROUTES:
            lines.append(f"  ... {len(routes) - MAX_ROUTES} more routes: --json lists all")
    else:
        lines.append("routes: no requests in either deploy (drive traffic or run a journey, then diff again)")
    if doc["ready"]:
        lines.append(
            "ready: "
            + ", ".join(
                f"{x['service']} {_ms(x['before_ms'])} -> {_ms(x['after_ms'])}"
                + (f" {_signed(x['change_pct'])}" if x["change_pct"] is not None else "")
                for x in doc["ready"]
            )
        )
    groups("new browser console errors", "+", doc["console_errors"]["new"])
    for c in doc["checks"][:MAX_GROUPS]:
        lines.append(f"check {c['name']}: {c['before']} -> {c['after']}  {c['summary'][:100]}")
    return lines
