"""Benchmark the fork server's per-command overhead (issue 12): routed ``legible logs --help`` against ``--help``.

Starts a stack (a static file server as the app) in a temp git worktree and times, round robin so load
drifts hit every command alike: ``python -c pass``, ``legible --help`` (answered without typer, never
routed), ``legible logs --help`` routed through the stack's fork server (typer's parse and help in a forked
child: the fixed cost of every routed command) and a routed ``legible status``. With ``--baseline-tree DIR``
(a copy of an older source tree, e.g. ``git archive`` of a commit, with ``legible/cli`` -> ``../clis``,
``legible/stacks`` -> ``../stacks`` and ``legible/skills`` -> ``../skills`` symlinks as the package maps
them), a second stack runs on that tree and its rows are timed in the same rounds: before and after in one
run, as ratios.

Usage: ``python benchmarks/bench_forkserver.py [--runs 21] [--baseline-tree DIR]``.
Target (issue 12, session 5): routed ``legible logs --help`` at most ~1.25x ``legible --help``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import REPO, record, venv_env

#: The app: a static file server on ``$PORT`` (the fork server is what is measured).
APP = """import http.server, os
http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(os.environ["PORT"])), http.server.SimpleHTTPRequestHandler
).serve_forever()
"""


def worktree(base: Path, name: str) -> Path:
    """A git worktree with the app and its ``legible.toml``."""
    root = base / name
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "app.py").write_text(APP)
    (root / "legible.toml").write_text('[app]\ncommand = "python app.py"\nready = { http = "/" }\n')
    return root


def served(root: Path) -> int:
    """The count of calls the stack's fork server served (``-1``: not running)."""
    try:
        return int(json.loads((root / ".legible" / "run" / "forkserver.json").read_text())["served"])
    except (OSError, ValueError, KeyError):
        return -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--baseline-tree", type=Path, help="an older source tree, timed in the same rounds")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="legible-bench-fs-"))
    trees = {"": REPO}
    if args.baseline_tree:
        trees[" (baseline)"] = args.baseline_tree.resolve()
    stacks: dict[str, tuple[Path, dict[str, str]]] = {}
    py = sys.executable
    try:
        for suffix, tree in trees.items():
            root = worktree(tmp, f"wt{len(stacks)}")
            env = venv_env({"XDG_STATE_HOME": str(tmp / "xdg"), "COLUMNS": "80", "PYTHONPATH": str(tree)})
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            up = subprocess.run([py, "-m", "legible.cli.main", "up", "--wait"], cwd=root, env=env, capture_output=True)
            if up.returncode != 0:
                raise SystemExit(f"legible up failed ({tree}): {up.stdout!r}{up.stderr!r}")
            deadline = time.monotonic() + 30
            while served(root) < 0:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no fork server in {root}")
                time.sleep(0.05)
            stacks[suffix] = (root, env)
        cases = [("python -c pass", [py, "-c", "pass"], *stacks[""])]
        for suffix, (root, env) in stacks.items():
            legible = [py, "-m", "legible.cli.main"]
            cases += [
                (f"legible --help{suffix}", [*legible, "--help"], root, env),
                (f"legible logs --help (routed){suffix}", [*legible, "logs", "--help"], root, env),
                (f"legible status (routed){suffix}", [*legible, "status"], root, env),
            ]
        times: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for _name, cmd, root, env in cases:  # warm-up: .pyc files, page cache
            subprocess.run(cmd, cwd=root, env=env, capture_output=True)
        before = {suffix: served(root) for suffix, (root, _env) in stacks.items()}
        for _ in range(args.runs):
            for name, cmd, root, env in cases:
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True)
                times[name].append((time.perf_counter() - t0) * 1000)
                if proc.returncode != 0:
                    raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
        for suffix, (root, _env) in stacks.items():
            got = served(root) - before[suffix]
            if got != 2 * args.runs:
                raise SystemExit(f"the fork server{suffix} served {got} calls, not {2 * args.runs}: not all routed")
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"{'command':44} {'median':>9} {'x --help':>9}")
        for name, ms in med.items():
            suffix = " (baseline)" if name.endswith(" (baseline)") else ""
            print(f"{name:44} {ms:7.1f}ms {ms / med['legible --help' + suffix]:8.2f}x")
        for suffix in stacks:
            help_name = f"legible --help{suffix}"
            for row in ("legible logs --help (routed)", "legible status (routed)"):
                record(
                    row + suffix,
                    round(med[row + suffix], 1),
                    "ms",
                    baseline=round(med[help_name], 1),
                    baseline_name=help_name,
                    target="<= 1.25x" if row.startswith("legible logs") else "",
                    note=f"median of {args.runs}",
                )
        if args.baseline_tree:
            for row in ("legible logs --help (routed)", "legible status (routed)"):
                over_new = med[row] - med["legible --help"]
                over_old = med[row + " (baseline)"] - med["legible --help (baseline)"]
                print(f"{row}: {over_old:.1f} ms over --help before, {over_new:.1f} ms after")
        print(json.dumps({"schema": "legible.bench.forkserver/v1", "runs": args.runs, "median_ms": med}))
    finally:
        for root, env in stacks.values():
            subprocess.run([py, "-m", "legible.cli.main", "down"], cwd=root, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
