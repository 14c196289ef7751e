"""MCP and bundle benchmark (issue 11): one question asked through `legible mcp` (one stdio session, the
CLI run in-process per call) versus `legible` as a subprocess per question, and `legible logs --from`
a proof bundle versus the live store.

Run: `python benchmarks/bench_mcp.py [--runs N]`. A throwaway copy of the example shop (no browser) is
booted in a temp git repository, given some traffic, and stopped at the end. Figures are medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOML = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\nmetrics_path = "/metrics"\n'
QUESTIONS = [
    ("status", {}, ["status"]),
    ("logs", {"level": "error"}, ["logs", "--level", "error"]),
    ("traces", {"errors": True}, ["traces", "--errors"]),
]


def legible(cwd: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    return time.perf_counter() - t0, res


async def mcp_times(root: Path, runs: int) -> dict[str, list[float]]:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "legible.cli.main", "mcp"],
        cwd=str(root),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    times: dict[str, list[float]] = {name: [] for name, _, _ in QUESTIONS}
    t0 = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        times["session start"] = [time.perf_counter() - t0]
        for _ in range(runs):
            for name, args, _ in QUESTIONS:
                t = time.perf_counter()
                await session.call_tool(name, args)
                times[name].append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    runs = ap.parse_args().runs
    tmp = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    root = tmp / "shop"
    shutil.copytree(REPO / "examples" / "shop", root, ignore=shutil.ignore_patterns("__pycache__", "legible.toml"))
    (root / "legible.toml").write_text(TOML)
    for cmd in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "i"],
    ):
        subprocess.run(["git", *cmd], cwd=root, check=True)
    try:
        _, up = legible(root, "up", "--wait", "--timeout", "90")
        assert up.returncode == 0, up.stderr
        app = next(ln.split()[-1] for ln in up.stdout.splitlines() if ln.strip().startswith("app "))
        for path in ("/", "/error", "/slow?ms=20") * 5:
            try:
                urllib.request.urlopen(app + path, timeout=10).read()  # noqa: S310 - loopback
            except OSError:
                pass
        time.sleep(2)  # let the collector store the last batch (a benchmark, not a test)
        cli = {name: [legible(root, *argv)[0] for _ in range(runs)] for name, _, argv in QUESTIONS}
        via_mcp = asyncio.run(mcp_times(root, runs))
        print(f"{'question':<16}{'CLI subprocess':>16}{'MCP tool call':>16}")
        for name, _, _ in QUESTIONS:
            c, m = statistics.median(cli[name]), statistics.median(via_mcp[name])
            print(f"{name:<16}{c * 1000:>13.0f} ms{m * 1000:>13.0f} ms   x{c / m:.1f}")
        print(f"mcp session start (spawn + initialize): {via_mcp['session start'][0] * 1000:.0f} ms")
        _, proof = legible(root, "proof", "--no-record")
        bundle = sorted((root / ".legible" / "proof").iterdir())[-1]
        live = [legible(root, "logs", "--level", "error", "--since", "all")[0] for _ in range(runs)]
        from_bundle = [legible(tmp, "logs", "--from", str(bundle), "--level", "error")[0] for _ in range(runs)]
        size = sum(f.stat().st_size for f in (bundle / "signals").iterdir())
        print(
            f"logs --level error: live {statistics.median(live) * 1000:.0f} ms, "
            f"--from bundle {statistics.median(from_bundle) * 1000:.0f} ms; bundle Parquet {size / 1024:.0f} KB"
        )
    finally:
        legible(root, "down", "--purge")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
