"""Stack lifecycle benchmark (issues 2 and 12): `legible up --wait` and `legible down` wall times, idle
overhead RSS, and 8 stacks started at once. Run: `python benchmarks/bench_stack.py [--runs N] [--stacks N]
[--baseline-src DIR]` (`--stacks 0` skips the many-stacks figure; ``--baseline-src DIR`` also times `up --wait`
and `down` of the shop with another legible, e.g. ``git archive <rev> legible clis | tar -x -C DIR && mv
DIR/clis DIR/legible/cli``, in the same turns).

Baselines measured in the same run: the example app started alone (python app.py until /healthz answers),
and a bare `python -c pass` (interpreter start), so the figures say how much legible itself adds. The app
alone and the stack are measured in turns (app, stack, app, stack...), so a busy machine weighs on both.
legible's bytecode is compiled first (``compileall``, as ``make setup`` does and as pip does when it installs a
wheel): with ``PYTHONDONTWRITEBYTECODE`` set, an editable checkout without it recompiles every legible module
in every process, about 0.2 s of CPU per ``up`` that no installed copy pays.
Targets: up without the app < 1.5 s median (issue 2); with the example app: the app's own start + at most
500 ms (issue 12); down at most 500 ms (issue 12); supervisor + VictoriaMetrics idle < 100 MB RSS; 8 stacks
at once: all ready, no collision.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from _report import record, venv_env

REPO = Path(__file__).resolve().parent.parent
SHOP = REPO / "examples" / "shop"
BARE_TOML = '[app]\ncommand = "sleep 100000"\nready = { log = "" }\n'
SHOP_TOML = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\nmetrics_path = "/metrics"\n'


def legible(cwd: Path, *args: str, src: Path = REPO) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=venv_env({"PYTHONPATH": str(src)}),
        check=False,
    )
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"legible {' '.join(args)} failed in {cwd}: {out.stdout}{out.stderr}")
    return took, json.loads(out.stdout)


def up_cpu(cwd: Path, src: Path = REPO) -> tuple[float, float]:
    """``legible up --wait`` in ``cwd``: its wall seconds, and the CPU ms every process of it spent until ready.

    The CPU is the command's own (``RUSAGE_CHILDREN``, it is reaped here) plus the supervisor's and every
    service's so far (``/proc/<pid>/stat`` utime + stime, read as soon as ``up`` returns): a figure a busy
    machine barely moves, unlike the wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    took, _ = legible(cwd, "up", "--wait", src=src)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    state = json.loads((cwd / ".legible" / "state.json").read_text())
    pids = [state["supervisor"]["pid"], *(s["pid"] for s in state["services"].values() if s.get("pid"))]
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    return took, cpu


def repo(base: Path, name: str, toml: str, with_shop: bool) -> Path:
    path = base / name
    if with_shop:
        shutil.copytree(SHOP, path, ignore=shutil.ignore_patterns("__pycache__", "legible.toml"))
    else:
        path.mkdir()
    (path / "legible.toml").write_text(toml)
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=path, check=True, capture_output=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_alone_s() -> float:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=SHOP,
        env=venv_env({"PORT": str(port)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5).read()
                return time.perf_counter() - t0
            except OSError:
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait()


def python_start_s() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stacks", type=int, default=8)
    ap.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="a directory with another legible package (and its CLI as legible/cli) to time up/down alternately",
    )
    args = ap.parse_args()
    subprocess.run(  # this tree's only: a --baseline-src is run as it is (compile it too, or not, on purpose)
        [sys.executable, "-m", "compileall", "-q", str(REPO / "legible"), str(REPO / "clis")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    base = Path(tempfile.mkdtemp(prefix="legible-bench-"))
    os.environ["XDG_STATE_HOME"] = str(base / "xdg")
    try:
        bare, shop = repo(base, "bare", BARE_TOML, False), repo(base, "shop", SHOP_TOML, True)
        py = [python_start_s() for _ in range(args.runs)]
        alone: list[float] = []
        up_bare, down_bare, up_shop, down_shop, idle = [], [], [], [], []
        up_base: list[float] = []
        down_base: list[float] = []
        cpu_shop: list[float] = []
        cpu_base: list[float] = []
        for _ in range(args.runs):
            alone.append(app_alone_s())
            t, doc = legible(bare, "up", "--wait")
            up_bare.append(t)
            state = json.loads((bare / ".legible" / "state.json").read_text())
            time.sleep(1.0)
            idle.append(rss_mb([state["supervisor"]["pid"], state["services"]["victoria-metrics"]["pid"]]))
            down_bare.append(legible(bare, "down")[0])
            t, cpu = up_cpu(shop)
            up_shop.append(t)
            cpu_shop.append(cpu)
            down_shop.append(legible(shop, "down")[0])
            if args.baseline_src:  # the other legible, in the same turn: the same machine load
                t, cpu = up_cpu(shop, args.baseline_src)
                up_base.append(t)
                cpu_base.append(cpu)
                down_base.append(legible(shop, "down", src=args.baseline_src)[0])
        print(f"runs={args.runs} (medians)")
        py_ms, alone_ms = med(py) * 1000, med(alone) * 1000
        record(
            "up --wait, stack without the app",
            med(up_bare) * 1000,
            "ms",
            baseline=py_ms,
            baseline_name="python -c pass",
            target="< 1500 ms",
        )
        overhead = med(up_shop) * 1000 - alone_ms
        record(
            "up --wait, with the example app",
            med(up_shop) * 1000,
            "ms",
            baseline=alone_ms,
            baseline_name="app alone to /healthz",
            target="app + <= 500 ms",
            note=f"overhead {overhead:.0f} ms",
        )
        record(
            "CPU until ready, up --wait with the example app",
            med(cpu_shop),
            "ms",
            baseline=med(cpu_base) if cpu_base else None,
            baseline_name="--baseline-src" if cpu_base else "",
            note="the command, the supervisor and every service, until up returns",
        )
        if args.baseline_src:
            record(
                "up --wait, with the example app, --baseline-src",
                med(up_base) * 1000,
                "ms",
                baseline=alone_ms,
                baseline_name="app alone to /healthz",
                target="app + <= 500 ms",
                note=f"overhead {med(up_base) * 1000 - alone_ms:.0f} ms; down {med(down_base) * 1000:.0f} ms; "
                f"this tree / baseline-src: x{med(up_shop) / med(up_base):.2f}",
            )
        record(
            "down",
            med(down_bare + down_shop) * 1000,
            "ms",
            baseline=py_ms,
            baseline_name="python -c pass",
            target="<= 500 ms",
            note=f"bare stack {med(down_bare) * 1000:.0f} ms, with the example app {med(down_shop) * 1000:.0f} ms",
        )
        record("idle RSS supervisor+VM", med(idle), "MB", target="< 100 MB")

        if args.stacks <= 0:
            return
        many = [repo(base, f"wt{i}", SHOP_TOML, True) for i in range(args.stacks)]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "legible.cli.main", "up", "--wait", "--timeout", "120", "--json"],
                cwd=w,
                stdout=subprocess.PIPE,
                text=True,
                env=venv_env(),
            )
            for w in many
        ]
        docs = [json.loads(p.communicate()[0]) for p in procs]
        wall = time.perf_counter() - t0
        ready = sum(d.get("status") == "ready" for d in docs)
        ports = [s["port"] for d in docs for s in d.get("services", {}).values()]
        record(
            f"{args.stacks} stacks up at once",
            wall * 1000,
            "ms",
            baseline=med(up_shop) * 1000,
            baseline_name="one stack",
            target="all ready, no collision",
            note=f"ready={ready}/{args.stacks} port collisions={len(ports) - len(set(ports))}",
        )
        for w in many:
            legible(w, "down")
    finally:
        for d in base.iterdir():
            if (d / ".legible").exists():
                subprocess.run(
                    [sys.executable, "-m", "legible.cli.main", "down"],
                    cwd=d,
                    capture_output=True,
                    env=venv_env(),
                    check=False,
                )
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
