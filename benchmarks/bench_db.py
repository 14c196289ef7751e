"""Database services' start (issue 14): Postgres and Redis spawn-to-ready under the supervisor.

A temp repository with ``[services.db] kind = "postgres"``, ``[services.cache] kind = "redis"`` and a tiny
app. The first ``legible up --wait`` runs ``initdb`` (reported once); then ``--runs`` times ``up --wait`` /
``down`` (the data kept), reading each service's ``ready_ms`` (spawn to ready, as ``legible status``
shows it). Baselines, same data directory and flags: ``postgres`` started directly (``unshare --user`` as
root) until ``pg_isready`` answers, and ``redis-server`` until ``PING`` answers.
Target: Postgres ready within 1.5 s of start after the first initdb.

Run: ``python benchmarks/bench_db.py [--runs 5]``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPO, record, venv_env  # noqa: E402

sys.path.insert(0, str(REPO))
from legible.services.databases import find_pg_bindir, pg_ready, redis_ready  # noqa: E402

TOML = """[app]
command = "python -m http.server $PORT --bind 127.0.0.1"

[services.db]
kind = "postgres"

[services.cache]
kind = "redis"
"""


def legible(cwd: Path, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"legible {' '.join(args)} failed: {out.stdout}{out.stderr}")
    doc: dict = json.loads(out.stdout)
    return doc


def wait_ready(check: object, port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if check(port):  # type: ignore[operator]
            return
        time.sleep(0.005)
    raise SystemExit(f"{what} was not ready in 30 s")


def alone_ms(argv: list[str], check: object, port: int, what: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(check, port, what)
        return (time.perf_counter() - t0) * 1000
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    """Measure and report; see the module docstring."""
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    bindir = find_pg_bindir()
    if bindir is None or shutil.which("redis-server") is None:
        raise SystemExit("needs postgresql and redis-server (scripts/setup.sh installs them)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-db-"))
    env = venv_env({"XDG_STATE_HOME": str(tmp / "state"), "XDG_CACHE_HOME": str(tmp / "cache")})
    root = tmp / "wt"
    root.mkdir()
    (root / "legible.toml").write_text(TOML)
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, capture_output=True)
    pg, rd = [], []
    try:
        first = legible(root, env, "up", "--wait", "--timeout", "120")
        record("postgres first start (initdb)", first["services"]["db"]["ready_ms"], "ms", note="once")
        db_port, cache_port = first["services"]["db"]["port"], first["services"]["cache"]["port"]
        legible(root, env, "down")
        for _ in range(args.runs):
            doc = legible(root, env, "up", "--wait", "--timeout", "60")
            pg.append(doc["services"]["db"]["ready_ms"])
            rd.append(doc["services"]["cache"]["ready_ms"])
            legible(root, env, "down")
        data = root / ".legible" / "data"
        sock = tmp / "sock"
        sock.mkdir(mode=0o700)
        pg_argv = [str(bindir / "postgres"), "-D", str(data / "db"), "-p", str(db_port)]
        pg_argv += ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock}"]
        pg_argv += ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "fsync=off"]
        if os.geteuid() == 0:
            pg_argv = ["unshare", "--user", *pg_argv]
        pg_alone = [alone_ms(pg_argv, lambda port: pg_ready(port, bindir), db_port, "postgres") for _ in range(3)]
        rd_argv = ["redis-server", "--port", str(cache_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(sock)]
        rd_alone = [alone_ms(rd_argv, redis_ready, cache_port, "redis") for _ in range(3)]
    finally:
        legible(root, env, "down", "--purge") if (root / ".legible").exists() else None
        shutil.rmtree(tmp, ignore_errors=True)
    record(
        "postgres ready after initdb",
        statistics.median(pg),
        "ms",
        baseline=statistics.median(pg_alone),
        baseline_name="postgres alone to pg_isready",
        target="< 1500 ms",
    )
    record(
        "redis ready",
        statistics.median(rd),
        "ms",
        baseline=statistics.median(rd_alone),
        baseline_name="redis-server alone to PING",
    )


if __name__ == "__main__":
    main()
