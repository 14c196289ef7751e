"""Fleet benchmark (issue 12): N worktrees of the example shop with the browser on, started at once.

Run: `python benchmarks/bench_fleet.py [--stacks 20] [--browse 3]`. Reports the time until every stack is
ready, port collisions, and memory per stack as PSS (psutil ``memory_full_info().pss``: shared pages split
between the processes that map them, so a sum over stacks is the machine's real cost), summed over every
process carrying the stack's ``LEGIBLE_STACK`` marker (supervisor, VictoriaMetrics, collector, app, browser
agent) and the stack's fork server with its spare child (waited for: it starts once the stack is ready). The
browser is lazy (Chromium starts at the first browser call), so idle stacks are measured as `up` leaves them; then
``--browse`` stacks get one browser call each and their PSS is measured again (what a stack whose agent uses
the browser costs). Baselines in the same run: a bare ``python -c pass``'s PSS and the example app alone.
Idle CPU: every process of every stack (the same set), CPU ms per second over ``--idle-seconds`` after all are
ready and serving, median over the stacks, the app apart (its own exporter and scrapes).
Target (issue 12): all ready, no collision, at most 200 MiB PSS per stack; idle CPU under 15 ms/s per stack.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import record  # noqa: E402
from bench_stack import REPO, legible, repo  # noqa: E402

FLEET_TOML = (
    '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\nmetrics_path = "/metrics"\n\n'
    "[stack]\nbrowser = true\n"
)
MIB = 2**20


def stack_procs(key: str, root: Path | None = None) -> list[psutil.Process]:
    """The stack's supervisor (``root/.legible/state.json``), its fork server and spare child (``run/forkserver.json``:
    they have no ``LEGIBLE_STACK``) and the live processes marked ``LEGIBLE_STACK=key``."""
    out = []
    if root is not None:
        for doc, field in (
            ("state.json", ("supervisor", "pid")),
            ("run/forkserver.json", ("pid",)),
            ("run/forkserver.json", ("spare",)),  # its idle child forked for the next call (0: none)
        ):
            try:
                value = json.loads((root / ".legible" / doc).read_text())
                for name in field:
                    value = value[name]
                if value:
                    out.append(psutil.Process(value))
            except (OSError, ValueError, KeyError, TypeError, psutil.Error):
                pass
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("LEGIBLE_STACK") == key and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def pss_mib(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / MIB


def by_kind(procs: list[psutil.Process]) -> dict[str, float]:
    """PSS in MiB by process kind (supervisor, victoria-metrics, collector, app, agent, chromium, driver)."""
    out: dict[str, float] = {}
    for p in procs:
        try:
            cmd = " ".join(p.cmdline())
            pss = p.memory_full_info().pss / MIB
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        kind = next(
            (
                k
                for k, needle in (
                    ("supervisor", "legible.supervisor"),
                    ("forkserver", "legible.forkserver"),
                    ("victoria-metrics", "victoria-metrics"),
                    ("collector", "legible.collector"),
                    ("browser-agent", "legible.browser.agent"),
                    ("playwright-driver", "playwright"),
                    ("chromium", "chrom"),
                    ("app", "app.py"),
                )
                if needle in cmd
            ),
            "other",
        )
        out[kind] = out.get(kind, 0.0) + pss
    return out


def idle_cpu(stacks: dict[str, list[psutil.Process]], seconds: float) -> dict[str, tuple[float, float]]:
    """CPU ms per second of each stack over the same ``seconds``: ``{key: (ours, app)}``.

    ``ours`` is every process of the stack but the app (``app.py``: its OpenTelemetry SDK's periodic exports
    and scrapes are the app's own); CPU is user + system from psutil ``cpu_times``, of processes alive at both
    ends.
    """

    def cpu(p: psutil.Process) -> float | None:
        try:
            t = p.cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return None

    before = {k: [(p, cpu(p)) for p in procs] for k, procs in stacks.items()}
    t0 = time.monotonic()
    time.sleep(seconds)  # the measurement: every stack left alone
    wall = time.monotonic() - t0
    out = {}
    for k, pairs in before.items():
        ours = app = 0.0
        for p, a in pairs:
            b = cpu(p)
            if a is None or b is None:
                continue
            try:
                is_app = "app.py" in " ".join(p.cmdline())
            except psutil.Error:
                continue
            ms = (b - a) * 1000 / wall
            if is_app:
                app += ms
            else:
                ours += ms
        out[k] = (ours, app)
    return out


def python_pss_mib() -> float:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        time.sleep(0.5)
        return psutil.Process(p.pid).memory_full_info().pss / MIB
    finally:
        p.kill()
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stacks", type=int, default=20)
    ap.add_argument("--browse", type=int, default=3, help="stacks that get one browser call (launch Chromium)")
    ap.add_argument("--runs", type=int, default=1, help="ignored (run.py passes it to every benchmark)")
    ap.add_argument("--idle-seconds", type=float, default=20.0, help="idle CPU sampled over this long (>= 20)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="legible-fleet-"))
    os.environ["XDG_STATE_HOME"] = str(base / "xdg")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    many: list[Path] = []
    try:
        py = python_pss_mib()
        many = [repo(base, f"wt{i:02d}", FLEET_TOML, True) for i in range(args.stacks)]
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "legible.cli.main", "up", "--wait", "--timeout", "300", "--json"],
                cwd=w,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            for w in many
        ]
        docs = [json.loads(p.communicate()[0] or "{}") for p in procs]
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        ready = sum(d.get("status") == "ready" for d in docs)
        ports = [s["port"] for d in docs for s in d.get("services", {}).values() if s.get("port")]
        time.sleep(3.0)  # let start-up garbage settle (first scrapes, pushes)
        deadline = time.monotonic() + 60  # each stack's fork server starts once it is ready: measure it too
        while time.monotonic() < deadline and not all((w / ".legible/run/forkserver.json").exists() for w in many):
            time.sleep(0.2)
        servers = sum((w / ".legible/run/forkserver.json").exists() for w in many)
        keys = [d["key"] for d in docs if d.get("key")]
        roots = dict(zip(keys, many, strict=False))
        idle = [pss_mib(stack_procs(k, roots[k])) for k in keys]
        kinds = by_kind(stack_procs(keys[0], roots[keys[0]])) if keys else {}
        cpu = idle_cpu({k: stack_procs(k, roots[k]) for k in keys}, args.idle_seconds) if keys else {}
        browsed = []
        for w, k in list(zip(many, keys, strict=False))[: args.browse]:
            out = subprocess.run(
                [sys.executable, "-m", "legible.cli.main", "browser", "open", "/"],
                cwd=w,
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            browsed.append((pss_mib(stack_procs(k, w)), out.returncode))
            if out.returncode:  # say why: a failed call is a finding, not just a count
                print(f"  browser open failed in {w.name} (exit {out.returncode}): {(out.stderr or out.stdout)[-400:]}")
        kinds_b = by_kind(stack_procs(keys[0], roots[keys[0]])) if keys and args.browse else {}
        print(f"stacks={args.stacks} with the browser (lazy), loadavg {load0:.1f} before, {load1:.1f} at all-ready")
        print(f"baseline python -c pass PSS        {py:7.1f} MiB")
        print(
            f"{args.stacks} stacks up at once, all ready in {wall:7.1f} s  ready={ready}/{args.stacks} "
            f"port collisions={len(ports) - len(set(ports))}"
        )
        print(
            f"PSS per stack, idle browser        {statistics.median(idle):7.1f} MiB median, {max(idle):.1f} max, "
            f"{sum(idle):.0f} MiB total  target <= 200 MiB"
        )
        print(f"  fork servers serving: {servers}/{args.stacks} (included in the PSS)")
        if cpu:
            ours = statistics.median(o for o, _ in cpu.values())
            app = statistics.median(a for _, a in cpu.values())
            print(
                f"idle CPU per stack, our processes  {ours:7.1f} ms/s median over {len(cpu)} stacks "
                f"({args.idle_seconds:.0f} s, all at once), max {max(o for o, _ in cpu.values()):.1f}; "
                f"the app's own {app:.1f} ms/s apart; all stacks {sum(o + a for o, a in cpu.values()):.0f} ms/s "
                "target < 15 ms/s"
            )
            record("idle CPU per stack, our processes (fleet)", ours, "ms/s", target="< 15 ms/s", note=f"app {app:.1f}")
        print("  by process (first stack, idle): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(kinds.items())))
        if browsed:
            b = [m for m, _ in browsed]
            print(
                f"PSS per stack after a browser call {statistics.median(b):7.1f} MiB median of {len(b)} "
                f"(calls ok: {sum(rc == 0 for _, rc in browsed)}/{len(b)})"
            )
            print(
                "  by process (first stack, browsing): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(kinds_b.items()))
            )
        t1 = time.perf_counter()
        for w in many:
            legible(w, "down")
        each = (time.perf_counter() - t1) / args.stacks * 1000
        print(f"down of {args.stacks} stacks, one after another  {each:7.0f} ms each")
    finally:
        for d in many:
            subprocess.run(
                [sys.executable, "-m", "legible.cli.main", "down"], cwd=d, capture_output=True, env=env, check=False
            )
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
