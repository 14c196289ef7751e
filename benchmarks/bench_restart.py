"""The inner loop's speed (issue 10): `legible restart` overhead over the app's own start, `legible diff` latency.

1. restart: the example shop under a stack without a browser; ``legible restart --json`` N times. Figures:
   the command's wall time, the app's spawn-to-ready (``ready_ms``, the app's own start as the supervisor
   sees it), the supervisor's side (``took_ms``: request received to ready, so stop + spawn + probe), and
   as baselines the shop started alone (``python app.py`` until ``/healthz`` answers) and ``legible --help``
   (command start). Overhead = wall - ready_ms, reported with and without ``stop_ms`` (the old app's own
   shutdown, SIGTERM to exit) (target < 150 ms).
2. diff: a store with ``--spans`` spans (200k) and ``--logs`` lines over 10 minutes, two deploys of 5 minutes
   each; ``legible diff`` N times, command start included (target < 500 ms).

Run: ``python benchmarks/bench_restart.py [--runs 9] [--spans 200000] [--logs 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHOP = REPO / "examples" / "shop"
SHOP_TOML = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\nmetrics_path = "/metrics"\n'
sys.path.insert(0, str(Path(__file__).resolve().parent))
#: Commands run as users run them: with bytecode caching (a PYTHONDONTWRITEBYTECODE=1 shell would add the
#: compilation of every module to every command).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(REPO)}


def legible(cwd: Path, env: dict[str, str], *args: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    took = (time.perf_counter() - t0) * 1000
    if out.returncode != 0:
        raise SystemExit(f"legible {' '.join(args)} failed in {cwd}: {out.stdout}{out.stderr}")
    return took, json.loads(out.stdout)


def git_repo(path: Path) -> None:
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=path, check=True, capture_output=True)


def app_alone_ms(root: Path) -> float:
    """Start the shop alone on a free port; ms until /healthz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "OTEL_SDK_DISABLED": "true"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5):  # noqa: S310 - loopback
                    return (time.perf_counter() - t0) * 1000
            except OSError:
                time.sleep(0.005)
        raise SystemExit("the shop did not answer /healthz in 60 s")
    finally:
        proc.terminate()
        proc.wait(10)


def bench_restart(tmp: Path, runs: int) -> dict:
    root = tmp / "shop"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns("__pycache__", "legible.toml"))
    (root / "legible.toml").write_text(SHOP_TOML)
    git_repo(root)
    env = {**ENV, "XDG_STATE_HOME": str(tmp / "xdg")}
    alone = [app_alone_ms(root) for _ in range(runs)]
    helps = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "legible.cli.main", "--help"], env=env, capture_output=True, check=True)
        helps.append((time.perf_counter() - t0) * 1000)
    legible(root, env, "up", "--wait", "--timeout", "120")
    walls, ready, took, stops = [], [], [], []
    try:
        for _ in range(runs):
            wall, doc = legible(root, env, "restart")
            walls.append(wall)
            ready.append(float(doc["ready_ms"]))
            took.append(float(doc["deploy"]["took_ms"]))
            stops.append(float(doc["deploy"]["stop_ms"]))
    finally:
        legible(root, env, "down")
    over = [w - r for w, r in zip(walls, ready, strict=True)]
    sup = [t - r - s for t, r, s in zip(took, ready, stops, strict=True)]
    return {
        "runs": runs,
        "restart_wall_ms": round(statistics.median(walls), 1),
        "app_ready_ms": round(statistics.median(ready), 1),
        "app_alone_ms": round(statistics.median(alone), 1),
        "overhead_ms": round(statistics.median(over), 1),
        "supervisor_overhead_ms": round(statistics.median(sup), 1),
        "old_app_stop_ms": round(statistics.median(stops), 1),
        "overhead_without_stop_ms": round(statistics.median([o - s for o, s in zip(over, stops, strict=True)]), 1),
        "help_ms": round(statistics.median(helps), 1),
        "wall_over_alone_ms": round(statistics.median(walls) - statistics.median(alone), 1),
    }


def bench_diff(tmp: Path, runs: int, n_spans: int, n_logs: int) -> dict:
    from bench_queries import build

    root = tmp / "wt"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    build(root, n_logs, n_spans)  # spans and lines over the last 10 minutes
    now = time.time()
    with (root / ".legible" / "deploys.jsonl").open("w") as fh:
        for n, age in ((1, 600), (2, 300)):
            rec = {"number": n, "started_at": now - age, "trigger": "up", "services": ["app"], "status": "ready"}
            fh.write(json.dumps({**rec, "ready_ms": 300.0 + n, "ready": {"app": 300.0 + n}, "commit": None}) + "\n")
    env = {**ENV, "XDG_STATE_HOME": str(tmp / "xdg")}
    walls = []
    doc: dict = {}
    for _ in range(runs):
        wall, doc = legible(root, env, "diff")
        walls.append(wall)
    return {
        "runs": runs,
        "spans": n_spans,
        "logs": n_logs,
        "diff_wall_ms": round(statistics.median(walls), 1),
        "diff_took_ms_in_process": doc.get("took_ms"),
        "routes": len(doc.get("routes", [])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--logs", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="legible-bench-restart-"))
    try:
        r = bench_restart(tmp, args.runs)
        d = bench_diff(tmp, args.runs, args.spans, args.logs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"restart: wall {r['restart_wall_ms']:.0f} ms, app ready {r['app_ready_ms']:.0f} ms (alone "
        f"{r['app_alone_ms']:.0f} ms): overhead {r['overhead_ms']:.0f} ms, of which stopping the old app "
        f"{r['old_app_stop_ms']:.0f} ms; without it {r['overhead_without_stop_ms']:.0f} ms "
        f"({'ok' if r['overhead_without_stop_ms'] < 150 else 'OVER 150 ms'}): supervisor "
        f"{r['supervisor_overhead_ms']:.0f} ms, command start ~{r['help_ms']:.0f} ms (legible --help)"
    )
    print(
        f"diff: {d['spans']:,} spans, {d['logs']:,} lines: {d['diff_wall_ms']:.0f} ms median wall "
        f"({'ok' if d['diff_wall_ms'] < 500 else 'OVER 500 ms'}), {d['diff_took_ms_in_process']} ms in process"
    )
    print(json.dumps({"schema": "legible.bench.restart/v1", "restart": r, "diff": d}))


if __name__ == "__main__":
    main()
