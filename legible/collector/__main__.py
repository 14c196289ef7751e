"""Command line of the collector process (``python -m legible.collector --help``).

Exit codes: 0 after SIGTERM/SIGINT and a clean flush; 2 bad arguments or the store cannot be opened
(for instance another process holds it); 5 a port cannot be bound.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (every listener binds 127.0.0.1)."""
    p = argparse.ArgumentParser(prog="python -m legible.collector", description="legible's per-worktree collector")
    p.add_argument("--http-port", type=int, required=True, help="OTLP/HTTP, /query, /health, /metrics port")
    p.add_argument("--grpc-port", type=int, required=True, help="OTLP/gRPC port (-1: no gRPC)")
    p.add_argument("--db", required=True, help="the DuckDB store file (created if missing)")
    p.add_argument("--logs-dir", default="", help="directory of <service>.log files to tail")
    p.add_argument("--vm-url", default="", help="VictoriaMetrics base URL for derived metrics")
    p.add_argument("--worktree", required=True, help="worktree key: the worktree label and the /query guard")
    p.add_argument(
        "--token-file", default="", help="where to write the bearer token of /query, /flush, /status (mode 0600)"
    )
    p.add_argument("--memory-limit", default="128MB", help="DuckDB's buffer pool (larger work spills to disk)")
    p.add_argument("--query-timeout", type=float, default=30.0, help="seconds before a /query is interrupted")
    p.add_argument("--max-db-mb", type=int, default=512, help="store size cap in MiB; oldest rows go first")
    p.add_argument(
        "--forward-config", default="", help="JSON file: forward spans and logs to a shared OTLP/HTTP endpoint"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the collector until it is told to stop; return the exit code."""
    from legible.collector._server import serve

    return serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Everything is flushed and closed; skip interpreter teardown (daemon threads, native bindings).
    os._exit(code)
