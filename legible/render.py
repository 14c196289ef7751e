"""Text renderers of the commands' documents: stack, doctor, checks, proof, journeys, browser, skills.

Each function takes the ``--json`` document a core function returned (``legible.up/v1``,
``legible.check/v1``, a browser agent result, ...) and returns the compact text lines the CLI prints:
bounded (a cut line says how much is hidden and how to see it), no colour, no borders, durations by
:func:`legible._duration.format_ms`. Pure and cheap to import: the CLI only prints what they return.
The query commands' renderers live with their queries (:mod:`legible.queries`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from legible._duration import format_ms, format_seconds

__all__ = [
    "render_browser",
    "render_check",
    "render_doctor",
    "render_down",
    "render_gc",
    "render_init",
    "render_journey",
    "render_journey_list",
    "render_proof",
    "render_ps",
    "render_skills",
    "render_status",
    "render_up",
    "table",
]

#: Rows of a long listing (gc) printed before the cut line.
LIST_ROWS = 20


def table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """Left-aligned columns separated by two spaces; no borders, no colour (cheap for an agent)."""
    all_rows = ([header] if header else []) + rows
    if not all_rows:
        return ""
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    out = []
    for r in all_rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)


# -- stack --------------------------------------------------------------------------------------------
def _service_rows(services: Mapping[str, Any], endpoints: dict[str, str]) -> list[list[str]]:
    vm = endpoints.get("victoria-metrics", "")
    urls = {
        "app": endpoints.get("app", ""),
        "victoria-metrics": endpoints.get("vmui") or (f"{vm}/" if vm else ""),  # vmui, else VM's home page
        "collector": endpoints.get("otlp-http", ""),
    }
    rows = []
    for name, s in services.items():
        extra = []
        if s.get("restarts"):
            extra.append(f"restarts={s['restarts']}")
        if s.get("error") and s.get("status") != "ready":
            extra.append(s["error"])
        url = urls.get(name) or (f"127.0.0.1:{s['port']}" if s.get("port") else "")
        ready = format_ms(s.get("first_ready_ms") or s.get("ready_ms"))
        rows.append([f"  {name}", s.get("status", "?"), ready, url, " ".join(extra)])
    return rows


def render_up(res: Mapping[str, Any], out: Path | None = None) -> list[str]:
    """Lines for a ``legible.up/v1`` document; one summary line when the document went to ``out``."""
    head = "already running" if res["already_running"] else res["status"]
    when = f" in {format_ms(res['ready_ms'])}" if res["ready_ms"] and not res["already_running"] else ""
    if out:
        return [f"stack {res['key']} {head}{when}: app {res['endpoints'].get('app', '?')}; json: {out}"]
    lines = [f"stack {res['key']} {head}{when}", table(_service_rows(res["services"], res["endpoints"]))]
    lines.append(f"env: set -a; . {shlex.quote(res['env_file'])}; set +a")
    if res["status"] == "starting":
        lines.append("services are still starting: `legible status` shows progress, `legible up --wait` blocks")
    if res["status"] == "degraded":
        lines.append("warning: a service failed after start; see `legible status` and .legible/logs/")
    if res["note"]:
        lines.append(f"note: {res['note']}")
    lines.extend(f"warning: {w}" for w in res.get("warnings", []))
    return lines


def render_down(res: Mapping[str, Any]) -> list[str]:
    """The one line for a ``legible.down/v1`` document."""
    if res["was_running"]:
        msg = f"stack {res['key']} stopped in {format_ms(res['took_ms'])} ({', '.join(res['stopped'])})"
    else:
        msg = f"stack {res['key']} was not running"
    if res["killed_orphans"]:
        msg += f"; killed {len(res['killed_orphans'])} orphaned processes"
    for k in res.get("sigkilled", []):
        msg += f"; {k['service']} ignored SIGTERM: killed after {k['after_s']:g} s"
    return [msg + ("; .legible/ purged" if res["purged"] else "; data kept in .legible/ (use --purge to delete)")]


def render_status(res: Mapping[str, Any]) -> list[str]:
    """Lines for a ``legible.status/v1`` document: the stack, then one row per service."""
    if res["status"] == "down":
        return [f"stack {res['key']}: down (no stack has run here; `legible up --wait` starts one)"]
    ready = f", ready in {format_ms(res['ready_ms'])}" if res["ready_ms"] else ""
    lines = [f"stack {res['key']}: {res['status']}{ready}"]
    if res["error"]:
        lines.append(f"error: {res['error']}")
    lines.append(table(_service_rows(res["services"], res["endpoints"])))
    if res.get("forward"):
        lines.append(render_forward(res["forward"]))
    if not res["alive"]:
        lines.append("not running: `legible up --wait` starts it; queries still read the kept data")
    else:
        from legible.deploys import collector_line

        if line := collector_line(res, in_status=True):  # what a collector that is not ready means for the signals
            lines.append(line)
    return lines


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


def render_forward(entries: list[Mapping[str, Any]], now_ns: int | None = None) -> str:
    """One line of forwarding health (``forward`` of ``legible.status/v1``), one clause per destination.

    ``forward: otlp retrying, queue 12.0 KiB, sent 340, dropped 0, last ok 35 s ago (ConnectionError...);
    remote_write ok, queue 0 B, ...``
    """
    import time

    now = time.time_ns() if now_ns is None else now_ns
    parts = []
    for e in entries:
        last = e.get("last_success_ns")
        if last:
            ago = f"last ok {format_seconds(max(0, round((now - last) / 1e9)))} ago"
        else:  # vmagent 1.79 exports no time of its last success
            ago = "last ok: time not reported" if e["sent"] else "never ok yet"
        text = (
            f"{e['kind']} {e['state']}, queue {_size(int(e['queue_bytes']))}, sent {e['sent']},"
            f" dropped {e['dropped']}, {ago}"
        )
        if e.get("error"):
            text += f" ({e['error'][:80]})"
        parts.append(text)
    return "forward: " + "; ".join(parts)


def render_ps(res: Mapping[str, Any]) -> list[str]:
    """Lines for a ``legible.ps/v1`` document: one row per stack on this machine."""
    stacks = res["stacks"]
    if not stacks:
        return ["no stacks on this machine"]
    rows = [
        [
            s["key"],
            s["status"],
            s["ports"],
            s["app"],
            str(s["restarts"]),
            format_seconds(round(s["uptime_s"])) if s["uptime_s"] is not None else "-",
            s["worktree"],
        ]
        for s in stacks
    ]
    return [
        f"{len(stacks)} stacks ({sum(s['alive'] for s in stacks)} alive)",
        table(rows, ["KEY", "STATUS", "PORTS", "APP", "RESTARTS", "UP", "WORKTREE"]),
    ]


def render_gc(res: Mapping[str, Any], dry_run: bool = False) -> list[str]:
    """Lines for a ``legible.gc/v1`` document: counts, then at most :data:`LIST_ROWS` leases and orphans."""
    verb = "would reclaim" if dry_run else "reclaimed"
    kill = "would kill" if dry_run else "killed"
    lines = [f"{verb} {len(res['leases'])} leases, {kill} {len(res['orphans'])} orphaned processes"]
    lines += [f"  lease {x['key']}: {x['why']} ({x['worktree']})" for x in res["leases"][:LIST_ROWS]]
    lines += [f"  pid {o['pid']} of {o['key']}: {o['cmdline'][:100]}" for o in res["orphans"][:LIST_ROWS]]
    cut = max(0, len(res["leases"]) - LIST_ROWS) + max(0, len(res["orphans"]) - LIST_ROWS)
    if cut:
        lines.append(f"... {cut} more not shown; --json lists all")
    return lines


def render_init(res: Mapping[str, Any], out: Path | None = None) -> list[str]:
    """Lines for a ``legible.init/v1`` document (no next step when the document went to ``out``)."""
    if not res["written"]:
        return [f"kept {res['path']} (already there)"]
    lines = [f"wrote {res['path']} (app: {res['command']}; guessed from {res['guessed_from']})"]
    if not out:
        lines.append("next: check the command, then `legible up --wait`")
    return lines


def render_doctor(res: Mapping[str, Any]) -> list[str]:
    """Lines for a ``legible.doctor/v1`` document: what was installed, then one row per component."""
    lines = [f"install: {a}" for a in res.get("installed", [])]
    rows = [
        [
            c["name"],
            "ok" if c["path"] else ("MISSING" if c["required"] else "absent"),
            c["version"][:40],
            c["path"] or f"install: {c['install']}",
        ]
        for c in res["components"]
    ]
    return [*lines, table(rows, ["COMPONENT", "STATE", "VERSION", "PATH / HOW TO INSTALL"])]


def render_skills(doc: Mapping[str, Any]) -> list[str]:
    """Lines for a ``legible.skills-list/v1`` document: each skill and its description (cut at 110)."""
    found = doc["skills"]
    lines = [f"{len(found)} skills"]
    for s in found:
        lines.append(f"  {s['name']}: {s['description'][:110]}{'…' if len(s['description']) > 110 else ''}")
    return lines


# -- checks and proof ---------------------------------------------------------------------------------
_MARK = {"pass": "PASS ", "fail": "FAIL ", "error": "ERROR"}


def render_check(doc: Mapping[str, Any], out: Path | None = None) -> list[str]:
    """Lines for a ``legible.check/v1`` document: the verdict, then failures first, one line per check.

    With ``out`` (the document went to that file), only the verdict line and the path.
    """
    c = doc["counts"]
    total = sum(c.values())
    verdict = "PASS" if doc["passed"] else "FAIL"
    extra = f", {c['error']} could not be measured" if c["error"] else ""
    head = f"{verdict}: {c['pass']} of {total} checks passed, {c['fail']} failed{extra} ({format_ms(doc['took_ms'])})"
    if out:
        return [f"{head}; json: {out}"]
    lines = [head]
    rows = sorted(doc["checks"], key=lambda r: {"fail": 0, "error": 1, "pass": 2}[r["status"]])
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        line = f"{_MARK[r['status']]} {r['name'].ljust(width)}  {r['summary']}"
        if r["status"] != "pass" and r["evidence"]:
            line += f"  -> {r['evidence']}"
        lines.append(line)
    return lines


def render_proof(manifest: Mapping[str, Any], summary: Path, posted: Mapping[str, Any] | None = None) -> list[str]:
    """The one line for a ``legible.proof/v1`` manifest: verdict, counts, time, the summary's path, the post."""
    c = manifest["checks"]["counts"]
    total = sum(c.values())
    jn = manifest["journeys"]
    jtext = f", {sum(1 for j in jn.values() if j.get('passed'))}/{len(jn)} journeys" if jn else ""
    verdict = "PASS" if manifest["passed"] else "FAIL"
    line = f"proof {verdict}: {c['pass']}/{total} checks{jtext} in {format_ms(manifest['took_ms'])} -> {summary}"
    if posted:
        line += f"; {posted['action']} comment on PR #{posted['pr']}"
    return [line]


# -- journeys -----------------------------------------------------------------------------------------
def render_journey_list(res: Mapping[str, Any]) -> list[str]:
    """Lines for a ``legible.journeys/v1`` document: one row per journey of legible.toml."""
    rows = res["journeys"]
    if not rows:
        return ["no journeys in legible.toml: add [journeys.<name>] with steps (see docs/browser.md)"]
    listed = [
        [r["name"], f"script {r['script']}" if r["script"] else f"{r['steps']} steps", r["description"]] for r in rows
    ]
    return [f"{len(rows)} journeys", table(listed, ["NAME", "STEPS", "DESCRIPTION"])]


def render_journey(doc: Mapping[str, Any]) -> list[str]:
    """Text lines for a ``legible.journey/v1`` document: steps, verdict, backend spans, video, failure."""
    verdict = "passed" if doc["ok"] else "FAILED"
    out = [
        f"journey {doc['name']}: {verdict} in {format_ms(doc['duration_ms'])} "
        f"({len(doc['steps'])} steps run) trace {doc['trace_id']}"
    ]
    rows = []
    for s in doc["steps"]:
        rows.append(["  ok" if s["ok"] else "  FAIL", str(s["n"]), s["title"][:70], format_ms(s.get("ms"))])
    if rows:
        out.append(table(rows))
    failed = doc.get("failed")
    if failed:
        out.append(f"reason: {failed['error']}")
        if failed.get("screenshot"):
            out.append(f"screenshot: {failed['screenshot']}")
    b = doc.get("backend") or {}
    if b.get("error"):
        out.append(f"backend spans: not read ({b['error']})")
    elif b.get("spans"):
        out.append(f"backend: {b['spans']} spans in this trace; slowest:")
        out.append(
            table(
                [
                    [
                        "  " + r["service"],
                        r["name"][:60],
                        format_ms(r["duration_ms"]),
                        "ERROR" if r["status_code"] == "error" else "",
                    ]
                    for r in b["slowest"]
                ]
            )
        )
        out.append(f"the whole trace: legible trace {doc['trace_id'][:12]}")
    else:
        why = b.get("none_because") or "is the app instrumented with OpenTelemetry?"
        out.append(f"backend: no spans joined this trace ({why})")
    v = doc.get("video")
    if v:
        if v.get("error"):
            out.append(f"video: not written: {v['error']}")
        else:
            out.append(f"video {format_seconds(v['duration_s'])}, {_kb(v['bytes'])}: {v['video']}")
            out.append(f"gif: {v['gif']} · poster: {v['poster']}")
    if doc.get("export_error"):
        out.append(f"warning: spans not exported: {doc['export_error']}")
    return out


# -- browser ----------------------------------------------------------------------------------------
#: Lines of a long snapshot printed before the cut line.
SNAPSHOT_LINES = 60
#: Rows of console groups and requests printed before the cut line.
ROWS = 20


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _errors_line(res: Mapping[str, Any]) -> list[str]:
    n = res.get("new_console_errors") or 0
    return [f"console: {n} new error{'s' if n != 1 else ''} (see `legible browser console`)"] if n else []


def render_browser(op: str, res: Mapping[str, Any]) -> list[str]:
    """Text lines for the browser agent's result ``res`` of ``op`` (a few lines and paths, never image data)."""
    page = f"{res.get('title') or '(no title)'} · {res.get('url', '')}"
    if op == "open":
        return [
            f"opened {res['url']} ({res.get('status') or '-'}, {format_ms(res.get('ms'))}): "
            f"{res.get('title') or '(no title)'}"
        ] + _errors_line(res)  # noqa: E501
    if op == "snapshot":
        lines: list[str] = res["text"].splitlines()
        out = lines
        if res["bytes"] > 4000 or len(lines) > SNAPSHOT_LINES * 2:
            out = lines[:SNAPSHOT_LINES] + [
                f"... {len(lines) - SNAPSHOT_LINES} more lines cut; the whole snapshot: {res['path']}"
            ]
        return out + [f"snapshot {_kb(res['bytes'])}, {res['refs']} refs: {res['path']}", f"page: {page}"]
    if op in ("click", "fill", "press"):
        verb = {"click": "clicked", "fill": "filled", "press": "pressed"}[op]
        what = res.get("target") or ""
        nav = " (navigated)" if res.get("navigated") else ""
        return [f"{verb} {what}{nav}".replace("  ", " ").rstrip(), f"page: {page}"] + _errors_line(res)
    if op == "wait":
        return [f"visible after {format_ms(res.get('ms'))}", f"page: {page}"]
    if op == "screenshot":
        return [f"screenshot {res['width']}x{res['height']} {res['format']} {_kb(res['bytes'])}: {res['path']}"]
    if op == "console":
        return _render_console(res)
    if op == "network":
        return _render_network(res)
    if op == "vitals":
        return _render_vitals(res)
    if op == "status":
        rec = " · recording" if res.get("recording") else ""
        return [f"tab: {page}{rec}", f"cdp: 127.0.0.1:{res.get('cdp_port')} (loopback only)"]
    if op == "record.start":
        return [f"recording to {res['dir']}; `legible browser record stop` encodes it"]
    if op == "record.chapter":
        return ["chapter card shown"]
    if op == "record.stop":
        return _render_video(res)
    return [str(res)]


def _render_console(res: Mapping[str, Any]) -> list[str]:
    groups = res["groups"]
    e, w = res["errors"], res["warnings"]
    head = f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''} since the last call"
    if not groups:
        return [head]
    out = [f"{head} ({len(groups)} distinct)"]
    for g in groups[:ROWS]:
        times = f" x{g['count']}" if g["count"] > 1 else ""
        out.append(f"  {g['level']:<7} {g['text'][:300]}{times}")
        out.append(f"          at {g['where']}")
    if len(groups) > ROWS:
        out.append(f"... {len(groups) - ROWS} more groups cut; --json lists all")
    return out


def _render_network(res: Mapping[str, Any]) -> list[str]:
    failed, slow = res["failed"], res["slow"]
    hidden = f", {res['hidden_static']} static hidden (--all shows them)" if res["hidden_static"] else ""
    out = [
        f"{res['requests']} requests since the last call{hidden}: {len(failed)} failed, "
        f"{len(slow)} slow (>= {format_ms(res['slow_ms'])})"
    ]
    rows = [("failed", r) for r in failed] + [("slow", r) for r in slow]
    rows += [("", r) for r in res.get("all", []) if r not in failed and r not in slow]
    for kind, r in rows[:ROWS]:
        status = r["failure"] or str(r["status"])
        out.append(f"  {kind:<6} {r['method']:<6} {status:<5} {format_ms(r['ms']):>8}  {r['url'][:200]}")
    if len(rows) > ROWS:
        out.append(f"... {len(rows) - ROWS} more requests cut; --json lists all")
    return out


def _rate(value: float | None, good: float, poor: float) -> str:
    if value is None:
        return ""
    return " (good)" if value <= good else " (poor)" if value > poor else " (needs improvement)"


def _render_vitals(v: Mapping[str, Any]) -> list[str]:
    lcp, cls, inp = v.get("lcp_ms"), v.get("cls"), v.get("inp_ms")
    inp_s = f"INP {format_ms(inp)}{_rate(inp, 200, 500)}" if inp is not None else "INP - (no interaction yet)"
    cls_s = f"CLS {cls:.3f}{_rate(cls, 0.1, 0.25)}" if cls is not None else "CLS -"
    return [
        f"vitals of {v.get('url')}",
        f"  LCP {format_ms(lcp)}{_rate(lcp, 2500, 4000)} · {cls_s} · {inp_s}",
        f"  FCP {format_ms(v.get('fcp_ms'))} · TTFB {format_ms(v.get('ttfb_ms'))} · DOMContentLoaded "
        f"{format_ms(v.get('dom_content_loaded_ms'))} · load {format_ms(v.get('load_ms'))} · "
        f"{v.get('resources', 0)} resources",
    ]


def _render_video(res: Mapping[str, Any]) -> list[str]:
    if res.get("error"):
        return [f"video: not written: {res['error']}"]
    took = format_seconds(res["duration_s"])
    return [
        f"video {took}, {_kb(res['bytes'])}, {len(res['chapters'])} chapters: {res['video']}",
        f"gif {_kb(res['gif_bytes'])}: {res['gif']}",
        f"poster: {res['poster']}",
    ]
