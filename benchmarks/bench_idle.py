"""Idle CPU of one running stack (issue 12), with a per-process breakdown, and the log line latency.

Run: `python benchmarks/bench_idle.py [--runs 3] [--seconds 20] [--baseline-src DIR]` (under a minute for one
run). A copy of the example shop (browser on, so lazy: no Chromium until a browser call) is started with
`legible up --wait`; once its fork server serves and a few seconds have passed, the CPU time (user + system,
psutil ``cpu_times``) of every process of the stack (:func:`bench_fleet.stack_procs`: supervisor, fork server
and its spare, VictoriaMetrics, collector, app, browser agent) is read at the start and the end of
``--seconds`` untouched seconds: the figure is CPU ms per wall second, by process kind. "ours" is every
process but the app (the app's own OpenTelemetry SDK exports and scrapes are the app's, reported apart).

Then the latency that the idle savings must not cost: once a second a line ``GET /idle-probe-<uuid> 404`` is
appended to the app's log file (what the app's stdout writes), and the collector's ``/query`` is polled every
2 ms until the line is stored: time from the write to the line being queryable, median over the probes. The
first probe comes after the quiet period.

``--baseline-src DIR`` runs another legible (e.g. ``git worktree add DIR <rev>``, or ``git archive <rev> legible
| tar -x -C DIR``) in alternating turns with this one (A, B, A, B...), so a busy machine weighs on both.
``--quiet-app`` runs ``python -m http.server`` as the app instead (no OpenTelemetry, no periodic job, no
browser): the floor of what the stack itself costs. The example shop is not idle: its restock job writes a
span and a log line every 2 s, each a store write of the collector.
Target (issue 12): under 15 ms/s per idle stack for our processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
from _report import record, venv_env

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fleet import stack_procs  # noqa: E402
from bench_stack import REPO, legible, repo  # noqa: E402

SHOP_TOML = (
    '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\nmetrics_path = "/metrics"\n\n'
    "[stack]\nbrowser = true\n"
)
#: A quiet app (no OpenTelemetry, no periodic job, no browser): the floor of the stack's own idle CPU.
QUIET_TOML = '[app]\ncommand = "python -m http.server $PORT --bind 127.0.0.1"\nready = { http = "/" }\n'
KINDS = (
    ("supervisor", "legible.supervisor"),
    ("forkserver", "legible.forkserver"),
    ("victoria-metrics", "victoria-metrics"),
    ("collector", "legible.collector"),
    ("browser-agent", "legible.browser.agent"),
    ("app", "app.py"),
    ("app", "http.server"),
)


def kind_of(p: psutil.Process) -> str:
    """The process's kind (a name of :data:`KINDS`, else ``other``)."""
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return "gone"
    return next((k for k, needle in KINDS if needle in cmd), "other")


def cpu_s(p: psutil.Process) -> float | None:
    try:
        t = p.cpu_times()
    except psutil.Error:
        return None
    return float(t.user + t.system)


def idle_cpu(key: str, root: Path, seconds: float) -> dict[str, float]:
    """CPU ms per second of each process kind of the stack over ``seconds`` (processes alive throughout)."""
    procs = {p.pid: p for p in stack_procs(key, root)}
    before = {pid: cpu_s(p) for pid, p in procs.items()}
    t0 = time.monotonic()
    time.sleep(seconds)  # the measurement itself: the stack left alone
    wall = time.monotonic() - t0
    out: dict[str, float] = {}
    for pid, p in procs.items():
        a, b = before[pid], cpu_s(p)
        if a is None or b is None:
            continue
        k = kind_of(p)
        out[k] = out.get(k, 0.0) + (b - a) * 1000 / wall
    return out


def query(port: int, token: str, sql: str, params: list[object]) -> list[list[object]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/query",
        data=json.dumps({"sql": sql, "params": params}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        return list(json.loads(resp.read())["rows"])


def line_latency_ms(root: Path, probes: int) -> list[float]:
    """Line appended to the app's log file -> queryable from the tailer, in ms; one probe a second.

    The line is appended (``O_APPEND``, as the supervisor's own descriptor writes) to ``.legible/logs/app.log``
    rather than asked of the app: the app's OTLP copy of a line can arrive first and the stdout copy is then
    merged into it, which would hide the file tailer's latency.
    """
    state = json.loads((root / ".legible" / "state.json").read_text())
    col_port = state["services"]["collector"]["port"]
    token = (root / ".legible" / "collector.token").read_text().strip()
    log = root / ".legible" / "logs" / "app.log"
    out = []
    for _ in range(probes):
        mark = f"idle-probe-{uuid.uuid4().hex[:12]}"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            t0 = time.perf_counter()
            os.write(fd, f"GET /{mark} 404\n".encode())
        finally:
            os.close(fd)
        deadline = t0 + 10
        while time.perf_counter() < deadline:
            rows = query(col_port, token, "SELECT count(*) FROM logs WHERE body LIKE ?", [f"%{mark}%"])
            if rows and rows[0][0]:
                out.append((time.perf_counter() - t0) * 1000)
                break
            time.sleep(0.002)
        else:
            out.append(float("nan"))
        time.sleep(1.0)  # the tailer and writer go idle again
    return out


def one_run(
    base: Path, name: str, src: Path, seconds: float, probes: int, quiet: bool = False
) -> tuple[dict[str, float], list[float]]:
    w = repo(base, name, QUIET_TOML if quiet else SHOP_TOML, not quiet)
    try:
        _, doc = legible(w, "up", "--wait", src=src)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (w / ".legible/run/forkserver.json").exists():
            time.sleep(0.1)
        time.sleep(3.0)  # start-up work settles (first scrapes and pushes, the fork server's spare)
        kinds = idle_cpu(doc["key"], w, seconds)
        lat = line_latency_ms(w, probes)
        return kinds, lat
    finally:
        legible(w, "down", src=src)


def summary(label: str, rows: list[dict[str, float]], lats: list[float]) -> tuple[float, float, float]:
    """Print the medians by kind; return (ours, app, latency) medians."""
    kinds = sorted({k for r in rows for k in r})
    ours = statistics.median(sum(v for k, v in r.items() if k != "app") for r in rows)
    app = statistics.median(r.get("app", 0.0) for r in rows)
    good = [x for x in lats if x == x]
    lat = statistics.median(good) if good else float("nan")
    print(f"[{label}] idle CPU ms/s, median of {len(rows)} runs: ours {ours:.1f}, app {app:.1f}")
    print("   " + ", ".join(f"{k} {statistics.median(r.get(k, 0.0) for r in rows):.2f}" for k in kinds))
    print(
        f"   line write -> queryable: median {lat:.0f} ms, max {max(good) if good else float('nan'):.0f} ms, "
        f"{len(lats) - len(good)} of {len(lats)} not seen in 10 s"
    )
    return ours, app, lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20.0, help="idle seconds measured (>= 20 for the figure)")
    ap.add_argument("--probes", type=int, default=5, help="log line latency probes per run")
    ap.add_argument("--quiet-app", action="store_true", help="a quiet app (http.server), no browser: the floor")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another legible source, run in turns")
    args = ap.parse_args()
    venv_env()
    base = Path(tempfile.mkdtemp(prefix="legible-idle-"))
    srcs = [("this", REPO)] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])
    rows: dict[str, list[dict[str, float]]] = {label: [] for label, _ in srcs}
    lats: dict[str, list[float]] = {label: [] for label, _ in srcs}
    try:
        for i in range(args.runs):
            for label, src in srcs if i % 2 == 0 else srcs[::-1]:
                kinds, lat = one_run(base, f"{label}{i}", src, args.seconds, args.probes, args.quiet_app)
                rows[label].append(kinds)
                lats[label] += lat
                print(f"  run {i} {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(kinds.items())), flush=True)
        got = {label: summary(label, rows[label], lats[label]) for label, _ in srcs}
        ours, app, lat = got["this"]
        base_ours = got["baseline"][0] if args.baseline_src else None
        base_lat = got["baseline"][2] if args.baseline_src else None
        what = " (quiet app)" if args.quiet_app else ""
        record(
            "idle CPU per stack, our processes" + what,
            ours,
            "ms/s",
            baseline=base_ours,
            baseline_name="baseline src" if base_ours is not None else "",
            target="< 15 ms/s",
            note=f"app's own {app:.1f} ms/s apart",
        )
        record(
            "log line write -> queryable (idle stack)" + what,
            lat,
            "ms",
            baseline=base_lat,
            baseline_name="baseline src" if base_lat is not None else "",
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
