"""Benchmark CLI start and the query CLIs end to end over 1M log lines and 200k spans.

Builds a store file in a temp git worktree with the store's migrations and set-based INSERTs (DuckDB
``generate_series``), then runs each command as a subprocess N times (command start included), round
robin so load drifts hit every command alike, and prints the medians next to baselines measured in the
same run: ``python -c pass``, ``python -c "import _duckdb"`` (the floor of a query on the file: the CLI loads DuckDB's
engine without the ``duckdb`` package's Python layer, :mod:`legible._dbengine`),
``legible --help`` and ``legible logs --help`` (typer's start). Each query runs on the kept file (no stack:
the CLI opens DuckDB itself), with a stack up on the same store (its collector answers over HTTP; the CLI
imports no DuckDB), where ``legible metrics`` (PromQL to the stack's VictoriaMetrics) is measured too, and
on the file again after ``legible down`` (``(after down)`` rows: a stopped stack's ``state.json`` beside
the store, what an agent queries post-mortem). File rows are also shown against ``import _duckdb``: what a
query costs beyond DuckDB's import, opening the file and the query itself is legible's own start. On a running stack the
commands go to its fork server (:mod:`legible.forkserver`; the count it served is printed); the
``(no fork server)`` rows run the same queries with ``LEGIBLE_FORKSERVER=0``, a cold process each.

Commands run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed from their environment, one
warm-up run each): an installed legible has its ``.pyc`` files, so recompiling legible's modules on every
run (what an agent sandbox with that variable set pays) is not what a user waits for.

With the stack up, each query is also timed inside one warm process (``(in-process)`` rows: import
``legible.cli.main.app`` once, then median of ``--in-process-runs`` calls, stdout to a buffer): the cost of the
query itself once a fork server has taken the interpreter and typer's start away.

Usage: ``python benchmarks/bench_queries.py [--runs 15] [--in-process-runs 9] [--logs 1000000] [--spans 200000]
[--no-file] [--no-stack] [--keep]``
Targets (issue 3): each query under 300 ms. Issue 12: ``legible --help`` at most 2x ``python -c pass``,
each query at most 2x ``legible --help``; in a warm process, each query at most about 35 ms.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from _report import record, venv_env

from legible.store import HAS_EXCEPTION_SQL, assign_groups, index_words, migrate, store_path, template_sql


def build(root: Path, n_logs: int, n_spans: int) -> float:
    """Create ``root/.legible/data/signals.duckdb`` with the given row counts; return seconds taken."""
    t0 = time.perf_counter()
    path = store_path(root / ".legible")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    migrate(con)
    now = time.time_ns()
    span_ns = 10 * 60 * 10**9  # everything within the last 10 minutes: the default window sees it all
    # logs: 1 in 2000 an error traceback with a trace id, 1 in 50 a warning, 1 in 10 debug, else info
    con.execute(
        f"""
        INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, severity_text, body,
                          template, attributes, resource, scope, trace_id, span_id, source)
        SELECT i, t, t, svc, lvl, sev, upper(lvl), body, NULL, attrs, '{{}}', NULL, tid, sid, 'stdout'
        FROM (
          SELECT i, {now - span_ns} + (i * {span_ns // max(n_logs, 1)}) AS t,
                 CASE i % 3 WHEN 0 THEN 'app' WHEN 1 THEN 'worker' ELSE 'collector' END AS svc,
                 CASE WHEN i % 2000 = 0 THEN 'error' WHEN i % 50 = 0 THEN 'warn'
                      WHEN i % 10 = 0 THEN 'debug' ELSE 'info' END AS lvl,
                 CASE WHEN i % 2000 = 0 THEN 17 WHEN i % 50 = 0 THEN 13 WHEN i % 10 = 0 THEN 5 ELSE 9 END AS sev,
                 CASE WHEN i % 2000 = 0 THEN
                        'Traceback (most recent call last):' || chr(10) ||
                        '  File "/app/server.py", line 88, in handle' || chr(10) ||
                        'ValueError: card declined for order ' || i
                      WHEN i % 50 = 0 THEN 'slow query took ' || (i % 997) || ' ms on table t' || (i % 7)
                      WHEN i % 10 = 0 THEN 'cache miss key=user:' || i
                      ELSE 'GET /items/' || (i % 1000) || ' 200 ' || (i % 90) || 'ms user=' || md5(i::VARCHAR)
                 END AS body,
                 '{{"http.route": "/items/{{id}}"}}' AS attrs,
                 CASE WHEN i % 2000 = 0 THEN md5((i // 2000)::VARCHAR) END AS tid,
                 CASE WHEN i % 2000 = 0 THEN left(md5(i::VARCHAR), 16) END AS sid
          FROM range({n_logs}) r(i))
        """
    )
    # the columns the collector computes at ingest (legible.collector._writer)
    con.execute(f"UPDATE logs SET template = {template_sql()}, has_exception = {HAS_EXCEPTION_SQL}")
    assign_groups(con)
    index_words(con)  # the word index the collector writes at ingest (logs --grep)
    # spans: traces of 10 spans (a root and 9 children), 1 trace in 100 with an error
    per = 10
    con.execute(
        f"""
        INSERT INTO spans (seq, trace_id, span_id, parent_span_id, trace_state, service, name, kind, start_ns,
                           end_ns, duration_ms, status_code, status_message, attributes, resource, scope,
                           events, links, exception_type, exception_message, received_ns)
        SELECT i, md5((i // {per})::VARCHAR), left(md5('s' || i), 16),
               CASE WHEN i % {per} = 0 THEN NULL ELSE left(md5('s' || (i - i % {per})), 16) END,
               NULL, CASE WHEN i % {per} = 0 THEN 'app' ELSE 'db' END,
               CASE WHEN i % {per} = 0 THEN 'GET /items/{{id}}' ELSE 'SELECT' END,
               CASE WHEN i % {per} = 0 THEN 'server' ELSE 'client' END,
               st, st + dur, dur / 1e6,
               CASE WHEN i % {per * 100} = 1 THEN 'error' ELSE 'unset' END, NULL,
               '{{"http.route": "/items/{{id}}"}}', '{{}}', 'bench', '[]', '[]', NULL, NULL, st
        FROM (SELECT i, {now - span_ns} + (i // {per}) * {span_ns // max(n_spans // per, 1)}
                        + (i % {per}) * 1000000 AS st,
                     ((hash(i // {per}) % 5000) + CASE WHEN i % {per} = 0 THEN 100 ELSE 1 END) * 100000 AS dur
              FROM range({n_spans}) r(i))
        """
    )
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - t0


def timed(cases: list[tuple[str, list[str]]], cwd: Path, env: dict[str, str], runs: int) -> dict[str, dict]:
    """Run every command of ``cases`` ``runs`` times, round robin; return name -> medians and output lines.

    Each result has ``median_ms`` (wall) and ``cpu_ms``: the median CPU time (user + system, every thread)
    of the command's process, from ``getrusage(RUSAGE_CHILDREN)`` around its run, which a loaded machine
    moves far less than the wall time.
    """
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    cpu: dict[str, list[float]] = {name: [] for name, _ in cases}
    lines: dict[str, int] = {}
    for _name, cmd in cases:  # warm-up: writes the .pyc files, fills the page cache
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
    for _ in range(runs):
        for name, cmd in cases:
            c0 = _children_cpu_ms()
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
            times[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append(_children_cpu_ms() - c0)
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
            lines[name] = proc.stdout.count("\n")
    return {
        name: {
            "median_ms": round(statistics.median(t), 1),
            "cpu_ms": round(statistics.median(cpu[name]), 1),
            "lines": lines[name],
        }
        for name, t in times.items()
    }


def _children_cpu_ms() -> float:
    """User + system CPU of this process's waited-for children so far, in ms."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


#: Times ``legible`` commands inside one warm process (run as ``python -c`` in the worktree): imports
#: ``legible.cli.main.app`` once, calls every command once (its first call: the imports it pays), then
#: ``runs`` rounds of all of them, round robin, stdout to a buffer. Then, per command, ``runs`` calls in a row
#: with the CPU they cost: this process's (``time.process_time``) and the collector's (``utime + stime`` of
#: ``/proc/PID/stat``, all its threads, exited ones included; divided by ``runs``), figures a loaded machine
#: moves far less than wall times. Prints one JSON object: name -> ``{"median_ms", "first_ms",
#: "client_cpu_ms", "collector_cpu_ms", "lines"}``. What a CLI call on a running stack costs beyond the
#: interpreter and typer's start, which the per-stack fork server takes away (issue 12).
IN_PROCESS = """
import contextlib, io, json, os, statistics, sys, time
from legible.cli.main import app
cases, runs = json.loads(sys.argv[1]), int(sys.argv[2])
pid = json.load(open(".legible/state.json"))["services"]["collector"]["pid"]
tick = 1000 / os.sysconf("SC_CLK_TCK")
def collector_ms():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * tick
def call(args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = app(args, standalone_mode=False)
    if code != 0:
        raise SystemExit(f"{args} failed ({code})")
    return buf.getvalue().count(chr(10))
times = {name: [] for name, _ in cases}
first, lines, cpu = {}, {}, {}
for rnd in range(runs + 1):
    for name, args in cases:
        t0 = time.perf_counter()
        lines[name] = call(args)
        ms = (time.perf_counter() - t0) * 1000
        (times[name].append(ms) if rnd else first.__setitem__(name, ms))
for name, args in cases:
    c0, k0 = time.process_time(), collector_ms()
    for _ in range(runs):
        call(args)
    cpu[name] = ((time.process_time() - c0) * 1000 / runs, (collector_ms() - k0) / runs)
print(json.dumps({n: {"median_ms": round(statistics.median(t), 1), "first_ms": round(first[n], 1),
                      "client_cpu_ms": round(cpu[n][0], 1), "collector_cpu_ms": round(cpu[n][1], 1),
                      "lines": lines[n]} for n, t in times.items()}))
"""


def in_process(cases: list[tuple[str, list[str]]], cwd: Path, env: dict[str, str], runs: int) -> dict[str, dict]:
    """Time ``cases`` (name, legible arguments) with :data:`IN_PROCESS` in one child process in ``cwd``."""
    cmd = [sys.executable, "-c", IN_PROCESS, json.dumps(cases), str(runs)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"in-process timing failed: {proc.stderr.strip()[-2000:]}")
    return {f"{name} (in-process)": r for name, r in json.loads(proc.stdout.splitlines()[-1]).items()}


#: The app of the stack-up phase: a static file server on ``$PORT`` (the store is what is measured).
APP = """import http.server, os
http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(os.environ["PORT"])), http.server.SimpleHTTPRequestHandler
).serve_forever()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--in-process-runs", type=int, default=9, help="warm calls per query in one process")
    ap.add_argument("--no-file", action="store_true", help="skip the file rows (the store read with no stack)")
    ap.add_argument("--no-stack", action="store_true", help="only the file rows (no stack up on the store)")
    ap.add_argument("--keep", action="store_true", help="keep the temp worktree and print its path")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="legible-bench-"))
    try:
        root = tmp / "wt"
        root.mkdir()
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        took = build(root, args.logs, args.spans)
        size = store_path(root / ".legible").stat().st_size / 2**20
        print(f"store: {args.logs:,} log lines, {args.spans:,} spans, {size:.0f} MiB, built in {took:.1f} s")
        env = venv_env({"XDG_STATE_HOME": str(tmp / "xdg"), "COLUMNS": "80"})
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        py = sys.executable
        legible = [py, "-m", "legible.cli.main"]
        base_cases = [
            ("python -c pass", [py, "-c", "pass"]),
            ("python -c 'import _duckdb'", [py, "-c", "import _duckdb"]),
            ("legible --help", [*legible, "--help"]),
            ("legible logs --help", [*legible, "logs", "--help"]),
        ]
        queries = [
            ("legible logs", ["logs"]),
            ("legible logs --level warn", ["logs", "--level", "warn"]),
            ("legible logs --raw", ["logs", "--raw"]),
            ("legible logs --grep declined", ["logs", "--grep", "declined"]),
            ("legible traces", ["traces"]),
            ("legible traces --slowest 10", ["traces", "--slowest", "10"]),
            ("legible traces --errors", ["traces", "--errors"]),
            ("legible trace ID", ["trace", trace_id(root)]),
            (
                "legible check --logs --span",
                ["check", "--logs", "level=error,max_count=1000", "--span", "max=2s,percentile=99"],
            ),
        ]
        (root / "app.py").write_text(APP)  # `check` reads legible.toml, with or without a stack
        (root / "legible.toml").write_text('[app]\ncommand = "python app.py"\nready = { http = "/" }\n')
        cases = [*base_cases, *(() if args.no_file else ((f"{n} (file)", [*legible, *a]) for n, a in queries))]
        results = timed(cases, root, env, args.runs)
        if not args.no_stack:
            up = subprocess.run([*legible, "up", "--wait"], cwd=root, env=env, capture_output=True, text=True)
            if up.returncode != 0:
                raise SystemExit(f"legible up failed: {up.stdout}{up.stderr}")
            try:
                stack_cases = [
                    *((f"{n} (stack up)", c) for n, c in base_cases),
                    *((f"{n} (collector)", [*legible, *a]) for n, a in queries),
                    ("legible metrics up (collector)", [*legible, "metrics", "up"]),
                    (
                        "legible metrics --range (collector)",
                        [*legible, "metrics", "sum(legible_collector_received_total)", "--range", "5m"],
                    ),
                ]
                results.update(timed(stack_cases, root, env, args.runs))
                served = _forkserver_counts(root)
                print(f"fork server: {served}")
                # the same queries with the fork server off: what a cold process pays (the query's own work shows)
                local = {**env, "LEGIBLE_FORKSERVER": "0"}
                results.update(
                    timed(
                        [
                            (f"{n} (no fork server)", [*legible, *a])
                            for n, a in queries[:-1] + [("legible metrics up", ["metrics", "up"])]
                        ],
                        root,
                        local,
                        args.runs,
                    )
                )
                warm = [*queries, ("legible metrics up", ["metrics", "up"])]
                results.update(in_process(warm, root, env, args.in_process_runs))
            finally:
                subprocess.run([*legible, "down"], cwd=root, env=env, capture_output=True)
            if not args.no_file:  # the same file, now beside a stopped stack's state.json (the post-mortem case)
                after = [
                    ("python -c 'import _duckdb' (after down)", [py, "-c", "import _duckdb"]),
                    ("legible --help (after down)", [*legible, "--help"]),
                    *((f"{n} (after down)", [*legible, *a]) for n, a in queries),
                ]
                results.update(timed(after, root, env, args.runs))
        report(results)
        print(
            json.dumps(
                {
                    "schema": "legible.bench.queries/v1",
                    "runs": args.runs,
                    "logs": args.logs,
                    "spans": args.spans,
                    "results": results,
                }
            )
        )
        if args.keep:
            print(f"kept: {root}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _forkserver_counts(root: Path) -> str:
    """What the stack's fork server served and refused so far (``.legible/run/forkserver.json``)."""
    try:
        doc = json.loads((root / ".legible" / "run" / "forkserver.json").read_text())
    except (OSError, ValueError):
        return "not running (every stack-up row started cold)"
    return f"{doc['served']} calls served, {doc['refused']} refused"


def trace_id(root: Path) -> str:
    """One root trace id of the store (the ``trace ID`` rows)."""
    con = duckdb.connect(str(store_path(root / ".legible")), read_only=True)
    try:
        return str(con.execute("SELECT trace_id FROM spans WHERE parent_span_id IS NULL LIMIT 1").fetchone()[0])
    finally:
        con.close()


def report(results: dict[str, dict]) -> None:
    """Print the table and record the figures: --help against python, each query against --help and duckdb."""
    base = results["python -c pass"]["median_ms"]
    helpm = results["legible --help"]["median_ms"]
    duck = results["python -c 'import _duckdb'"]["median_ms"]
    duck_cpu = results["python -c 'import _duckdb'"].get("cpu_ms")
    print(f"{'command':48} {'median':>9} {'x python':>9} {'x --help':>9} {'x duckdb':>9} {'CPU':>9} {'lines':>6}")
    for name, r in results.items():
        ms = r["median_ms"]
        cpu = f"{r['cpu_ms']:7.1f}ms" if "cpu_ms" in r else f"{'':9}"
        print(f"{name:48} {ms:7.1f}ms {ms / base:8.1f}x {ms / helpm:8.2f}x {ms / duck:8.2f}x {cpu} {r['lines']:6d}")
    if duck_cpu:
        print(f"(CPU: median user+system time of the command's process; python -c 'import _duckdb': {duck_cpu} ms)")
    record("legible --help", helpm, "ms", baseline=base, baseline_name="python -c pass", target="<= 2x")
    record(
        "legible logs --help",
        results["legible logs --help"]["median_ms"],
        "ms",
        baseline=helpm,
        baseline_name="legible --help",
        note="typer's start: the floor of every command but the root help",
    )
    for name, r in results.items():
        if name.endswith("(in-process)") and "legible --help (stack up)" in results:
            record(
                name,
                r["median_ms"],
                "ms",
                baseline=results["legible --help (stack up)"]["median_ms"],
                baseline_name="legible --help (stack up)",
                target="<= 35 ms",
                note=f"warm calls in one process; first call {r['first_ms']} ms; CPU per call: client "
                f"{r['client_cpu_ms']} ms, collector {r['collector_cpu_ms']} ms",
            )
        if name.endswith(("(file)", "(collector)", "(no fork server)")) or (
            name.endswith("(after down)") and name.startswith("legible ") and "--help" not in name
        ):
            stack_up = name.endswith(("(collector)", "(no fork server)"))
            help_name = "legible --help" + (" (stack up)" if stack_up else " (after down)" * name.endswith("down)"))
            help_ms = results[help_name]["median_ms"]
            note = ""
            if name.endswith(("(file)", "(after down)")):  # the floor of a query on the file, same phase
                duck_name = "python -c 'import _duckdb'" + " (after down)" * name.endswith("down)")
                duck_ms, duck_cpu_ms = results[duck_name]["median_ms"], results[duck_name]["cpu_ms"]
                note = (
                    f"{r['median_ms'] / duck_ms:.2f}x {duck_name} ({duck_ms} ms), its engine import the floor; "
                    f"CPU {r['cpu_ms']} ms, {r['cpu_ms'] / duck_cpu_ms:.2f}x its {duck_cpu_ms} ms"
                )
            record(
                name,
                r["median_ms"],
                "ms",
                baseline=help_ms,
                baseline_name=help_name,
                target="<= 2x; < 300 ms",
                note=note,
            )


if __name__ == "__main__":
    main()
