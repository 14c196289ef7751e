"""Collector start-up, phase by phase (issue 12): the CPU a collector spends from spawn to ready, and on what.

Run: ``python benchmarks/bench_collector_start.py [--runs N] [--src DIR]``. Each run is a fresh interpreter
(``-X importtime``, which inflates the import figures) that imports the collector as the prewarmed process does,
creates and migrates a new store (:class:`~legible.collector._writer.Writer`) and closes it, builds a
:class:`~legible.collector.Collector` on that file (the store reopened as at every ``up`` but the first, ports
bound, gRPC server made) and starts it, reading ``time.process_time()`` (CPU of every thread, ms) between the
phases, then times the first flush of a few rows; the interpreter's own start is a bare ``python -c pass``'s CPU.
Then it prints whether the heaviest modules were imported at ready (cumulative ``-X importtime`` ms, last run).
``--src DIR``: another legible checkout (e.g. a ``git archive`` of the base) measured the same way.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import REPO, record, venv_env

PROBE = r"""
import sys, time, json
t = [time.process_time()]
import legible.collector._server as server
t.append(time.process_time())
from pathlib import Path
from legible.collector._writer import Writer
d = Path(sys.argv[1])
Writer(d / "signals.duckdb").close()
t.append(time.process_time())
col = server.Collector(d / "signals.duckdb", d / "logs", "", "bench", http_port=0, grpc_port=0)
t.append(time.process_time())
col.start()
t.append(time.process_time())
ready_modules = sorted(sys.modules)
row = (1, 2, "svc", "info", 9, "INFO", "hello 1", "{}", "{}", "{}", None, None, "stdout")
col.writer.add("logs", [row] * 10)
col.writer.flush()
t.append(time.process_time())
col.stop()
print(json.dumps({"t": t, "modules": ready_modules}))
"""

PHASES = ("imports", "new store: create+migrate+close", "Collector(): reopen store+bind+grpc", "start", "first flush")


def cpu_of_bare_python() -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000


def one_run(src: Path) -> tuple[dict[str, float], dict[str, int], list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "logs").mkdir()
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", PROBE, tmp],
            capture_output=True,
            text=True,
            env=venv_env({"PYTHONPATH": str(src)}),
            check=True,
        )
    doc = json.loads(out.stdout)
    t = doc["t"]
    ms = [(b - a) * 1000 for a, b in zip(t, t[1:], strict=False)]
    phases = dict(zip(PHASES, ms, strict=True))
    cumulative: dict[str, int] = {}
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            cumulative[parts[2].strip()] = int(parts[1])
    return phases, cumulative, doc["modules"]


def main() -> None:
    """Run the probe ``--runs`` times and print each phase's median CPU in ms."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--src", type=Path, default=REPO)
    args = ap.parse_args()
    runs = [one_run(args.src) for _ in range(args.runs)]
    bare = statistics.median(cpu_of_bare_python() for _ in range(args.runs))
    record("collector start: interpreter (python -c pass)", bare, "ms CPU")
    for phase in runs[0][0]:
        record(f"collector start: {phase}", statistics.median(r[0][phase] for r in runs), "ms CPU")
    ready = sum(statistics.median(r[0][p] for r in runs) for p in (PHASES[0], PHASES[2], PHASES[3]))
    record("collector start: CPU until ready, existing store (without the interpreter)", ready, "ms CPU")
    cumulative, modules = runs[-1][1], set(runs[-1][2])
    tops = ["pyarrow", "numpy", "duckdb", "_duckdb", "grpc", "prometheus_client", "google.protobuf"]
    tops += ["opentelemetry.proto.collector.trace.v1.trace_service_pb2", "legible.collector._otlp", "legible.store"]
    for name in tops:
        state = "imported" if name in modules else "not imported"
        print(f"  {name:60s} {state:13s} {cumulative.get(name, 0) / 1000:7.1f} ms")


if __name__ == "__main__":
    main()
